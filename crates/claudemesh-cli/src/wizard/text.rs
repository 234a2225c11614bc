//! The wizard's words, in English and Spanish (chosen by LC_ALL, LC_MESSAGES,
//! then LANG, as the invite mail's language is).

pub struct Text {
    pub sign_in: &'static str,
    pub paste_token: &'static str,
    pub join_invite: &'static str,
    pub create_account: &'static str,
    pub exit: &'static str,
    pub token_prompt: &'static str,
    pub invite_prompt: &'static str,
    pub create_account_opening: &'static str,
    pub then_sign_in: &'static str,
    pub account: &'static str,
    pub mesh: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub no_role: &'static str,
    pub continue_: &'static str,
    pub change_mesh: &'static str,
    pub change_name: &'static str,
    pub change_role: &'static str,
    pub cancel: &'static str,
    pub name_prompt: &'static str,
    pub role_prompt: &'static str,
    pub bad_name: &'static str,
    pub empty_name: &'static str,
    pub pick_mesh: &'static str,
    pub no_mesh: &'static str,
    pub create_mesh: &'static str,
    pub mesh_name_prompt: &'static str,
}

const EN: Text = Text {
    sign_in: "Sign in (opens the browser)",
    paste_token: "Paste an access token",
    join_invite: "Join via invite URL",
    create_account: "Create account",
    exit: "Exit",
    token_prompt: "Access token (cm_pat_…)",
    invite_prompt: "Invite link",
    create_account_opening: "Create your account at {url} (opening the browser)",
    then_sign_in: "Then approve this terminal:",
    account: "Account",
    mesh: "Mesh",
    name: "Name",
    role: "Role",
    no_role: "(none)",
    continue_: "Continue",
    change_mesh: "Change mesh",
    change_name: "Change name",
    change_role: "Change role",
    cancel: "Cancel",
    name_prompt: "Your name in the mesh",
    role_prompt: "Role (optional, e.g. reviewer)",
    bad_name: "At most 100 characters, no control characters",
    empty_name: "A name is needed; the one before is kept",
    pick_mesh: "Pick a mesh ({n} available):",
    no_mesh: "You are in no mesh yet:",
    create_mesh: "Create a mesh",
    mesh_name_prompt: "Name of the new mesh",
};

const ES: Text = Text {
    sign_in: "Iniciar sesión (abre el navegador)",
    paste_token: "Pegar un token de acceso",
    join_invite: "Unirse con una invitación",
    create_account: "Crear una cuenta",
    exit: "Salir",
    token_prompt: "Token de acceso (cm_pat_…)",
    invite_prompt: "Enlace de invitación",
    create_account_opening: "Crea tu cuenta en {url} (abriendo el navegador)",
    then_sign_in: "Después aprueba este terminal:",
    account: "Cuenta",
    mesh: "Mesh",
    name: "Nombre",
    role: "Rol",
    no_role: "(ninguno)",
    continue_: "Continuar",
    change_mesh: "Cambiar de mesh",
    change_name: "Cambiar el nombre",
    change_role: "Cambiar el rol",
    cancel: "Cancelar",
    name_prompt: "Tu nombre en la mesh",
    role_prompt: "Rol (opcional, p. ej. revisor)",
    bad_name: "Como mucho 100 caracteres, sin caracteres de control",
    empty_name: "Hace falta un nombre; se mantiene el anterior",
    pick_mesh: "Elige una mesh ({n} disponibles):",
    no_mesh: "Aún no estás en ninguna mesh:",
    create_mesh: "Crear una mesh",
    mesh_name_prompt: "Nombre de la nueva mesh",
};

impl Text {
    pub fn for_locale() -> &'static Self {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .unwrap_or_default();
        Self::for_lang(&locale)
    }

    fn for_lang(locale: &str) -> &'static Self {
        if locale.to_ascii_lowercase().starts_with("es") {
            &ES
        } else {
            &EN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_locales_get_spanish() {
        assert_eq!(Text::for_lang("es_ES.UTF-8").sign_in, ES.sign_in);
        assert_eq!(Text::for_lang("es").continue_, "Continuar");
        assert_eq!(Text::for_lang("en_US.UTF-8").sign_in, EN.sign_in);
        assert_eq!(Text::for_lang("").exit, "Exit");
    }
}

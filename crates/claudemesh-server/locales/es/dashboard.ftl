# /dashboard y /dashboard/settings/cli-tokens.
dashboard-title = Panel
dashboard-welcome = Hola,
dashboard-signed-in-as = Sesión iniciada como
dashboard-meshes = Meshes
dashboard-meshes-empty = Aún no estás en ningún mesh.
dashboard-meshes-create = Crea uno en una terminal con { $command }: serás su administrador y podrás invitar a gente desde su página aquí.
dashboard-meshes-invited = ¿Te invitaron al mesh de otra persona? Abre el enlace de invitación que te enviaron.
dashboard-meshes-sync = Para usar estos meshes en una terminal con la sesión de tu cuenta, ejecuta { $command }.
dashboard-manage-tokens = Gestionar tokens y sesiones
dashboard-connect-cli = Conectar una terminal
dashboard-connect-cli-body = Ejecuta { $command } en una terminal y aprueba la solicitud aquí.
dashboard-enter-code = Tengo un código
dashboard-password-body = Al cambiarla se cierran todas las sesiones de la CLI.
dashboard-tokens-summary = { $tokens ->
    [0] Ningún token de acceso personal
    [one] Un token de acceso personal
   *[other] { $tokens } tokens de acceso personal
} y { $sessions ->
    [0] ninguna sesión de la CLI.
    [one] una sesión de la CLI.
   *[other] { $sessions } sesiones de la CLI.
}
tokens-title = Tokens de la CLI
tokens-intro = Los tokens de acceso personal son para CI y scripts; las sesiones de la CLI son las terminales en las que iniciaste sesión con claudemesh login.
tokens-created-title = Tu token nuevo
tokens-created-warning = Cópialo ahora. Este token no se volverá a mostrar.
tokens-created-use = Úsalo con { $command } o con la variable CLAUDEMESH_TOKEN.
tokens-generate = Generar un token nuevo
tokens-name = Nombre
tokens-expiry = Caduca
tokens-generate-submit = Generar token
tokens-never-hint = Un token que nunca caduca sigue siendo válido hasta que lo revoques.
tokens-expiry-days = { $count } días
tokens-expiry-year = 1 año
tokens-expiry-never = Nunca
tokens-error-name = Pon al token un nombre de 1 a 100 caracteres.
tokens-error-expiry = Elige 30 días, 90 días, 1 año o nunca.
tokens-pats = Tokens de acceso personal
tokens-pats-empty = Aún no hay tokens de acceso personal.
tokens-sessions = Sesiones de la CLI
tokens-sessions-empty = No hay ninguna terminal con la sesión iniciada.
tokens-col-name = Nombre
tokens-col-device = Dispositivo
tokens-col-created = Creado
tokens-col-last-used = Último uso
tokens-col-last-seen = Última actividad
tokens-col-expires = Caduca
tokens-revoked-notice = Revocado. Lo que aún lo use ya no puede iniciar sesión.
revoke-pat-title = ¿Revocar este token?
revoke-pat-body = Todos los scripts y trabajos de CI que usen este token dejarán de funcionar al instante. No se puede deshacer.
revoke-session-title = ¿Cerrar esta sesión de la CLI?
revoke-session-body = Esa terminal pierde la sesión al instante y necesitará claudemesh login de nuevo.
revoke-confirm = Revocar
revoke-back = Volver a los tokens de la CLI
revoke-gone-title = Nada que revocar
revoke-gone-body = Este token o sesión ya no existe: ya fue revocado o ha caducado.
dashboard-left-notice = Saliste del mesh. Ejecuta claudemesh sync --prune en tus máquinas para borrar sus claves.
dashboard-deleted-notice = Mesh borrado. Ejecuta claudemesh sync --prune en tus máquinas para borrar sus claves.
tokens-mail-title = Avisos por correo
tokens-mail-label = Enviarme un correo cuando una terminal inicie sesión o se cree un token de acceso personal
tokens-mail-save = Guardar
tokens-mail-on-notice = Recibirás un correo por cada sesión de la CLI y token de acceso personal nuevos.
tokens-mail-off-notice = Ya no recibirás correos sobre sesiones de la CLI ni tokens de acceso personal nuevos.

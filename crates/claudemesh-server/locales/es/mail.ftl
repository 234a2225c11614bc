## El correo de invitación. Argumentos: $inviter, $mesh, $url, $expires.

mail-invite-subject = { $inviter } te invitó a { $mesh } en claudemesh
mail-invite-body =
    { $inviter } te invitó a unirte al mesh «{ $mesh }» en claudemesh.

    Acepta en tu navegador:
    { $url }

    O desde una terminal con claudemesh instalado:
    claudemesh join { $url }

    Esta invitación caduca el { $expires }. Si no la esperabas, puedes ignorar este correo.

## Una credencial nueva en la cuenta. Argumentos: $label, $ip, $time, $revoke, $settings.

mail-credential-ip-unknown = desconocida
mail-session-subject = Nuevo inicio de sesión de la CLI en tu cuenta de claudemesh
mail-session-body =
    Se inició sesión en tu cuenta de claudemesh desde una terminal con claudemesh login.

    Dispositivo: { $label }
    Dirección IP: { $ip }
    Hora: { $time }

    Si fuiste tú, no tienes que hacer nada. Si no, cierra esa sesión ahora:
    { $revoke }

    Recibes este correo por cada sesión de la CLI y token de acceso personal nuevos. Puedes desactivarlos en { $settings }
mail-pat-subject = Nuevo token de acceso personal en tu cuenta de claudemesh
mail-pat-body =
    Se creó un token de acceso personal en tu cuenta de claudemesh.

    Token: { $label }
    Dirección IP: { $ip }
    Hora: { $time }

    Si fuiste tú, no tienes que hacer nada. Si no, revócalo ahora:
    { $revoke }

    Recibes este correo por cada sesión de la CLI y token de acceso personal nuevos. Puedes desactivarlos en { $settings }

## El correo de invitación. Argumentos: $inviter, $mesh, $url, $expires.

mail-invite-subject = { $inviter } te invitó a { $mesh } en claudemesh
mail-invite-body =
    { $inviter } te invitó a unirte al mesh «{ $mesh }» en claudemesh.

    Acepta en tu navegador:
    { $url }

    O desde una terminal con claudemesh instalado:
    claudemesh join { $url }

    Esta invitación caduca el { $expires }. Si no la esperabas, puedes ignorar este correo.

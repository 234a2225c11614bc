## The invite email. Arguments: $inviter, $mesh, $url, $expires.

mail-invite-subject = { $inviter } invited you to { $mesh } on claudemesh
mail-invite-body =
    { $inviter } invited you to join the mesh "{ $mesh }" on claudemesh.

    Accept in your browser:
    { $url }

    Or from a terminal where claudemesh is installed:
    claudemesh join { $url }

    This invitation expires on { $expires }. If you did not expect it, you can ignore this email.

## A new credential on the account. Arguments: $label, $ip, $time, $revoke, $settings.

mail-credential-ip-unknown = unknown
mail-session-subject = New CLI sign-in to your claudemesh account
mail-session-body =
    A terminal was signed in to your claudemesh account with claudemesh login.

    Device: { $label }
    IP address: { $ip }
    Time: { $time }

    If this was you, there is nothing to do. If not, sign it out now:
    { $revoke }

    You get this email for every new CLI session and personal access token. Turn these emails off on { $settings }
mail-pat-subject = New personal access token on your claudemesh account
mail-pat-body =
    A personal access token was created on your claudemesh account.

    Token: { $label }
    IP address: { $ip }
    Time: { $time }

    If this was you, there is nothing to do. If not, revoke it now:
    { $revoke }

    You get this email for every new CLI session and personal access token. Turn these emails off on { $settings }

## The invite email. Arguments: $inviter, $mesh, $url, $expires.

mail-invite-subject = { $inviter } invited you to { $mesh } on claudemesh
mail-invite-body =
    { $inviter } invited you to join the mesh "{ $mesh }" on claudemesh.

    Accept in your browser:
    { $url }

    Or from a terminal where claudemesh is installed:
    claudemesh join { $url }

    This invitation expires on { $expires }. If you did not expect it, you can ignore this email.

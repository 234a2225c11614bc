# /dashboard/meshes/{slug}: a mesh, who is online, its members and (for admins) its invites.
mesh-example-name = Name
role-admin = Admin
role-member = Member
mesh-col-name = Name
mesh-col-slug = Slug
mesh-col-your-role = Your role
mesh-col-members = Members
mesh-col-created = Created
mesh-back-dashboard = ← All meshes
mesh-back = Back to the mesh
mesh-slug = Slug
mesh-your-role = Your role
mesh-members-count = { $count ->
    [one] One member
   *[other] { $count } members
}
mesh-members = Members
member-col-name = Name
member-col-role = Role
member-col-joined = Joined
member-col-machines = Machine keys
member-you = you
mesh-sync-hint = To use this mesh in a terminal signed in to your account, run { $command }: it joins every mesh of yours that the machine has not joined yet.
mesh-not-found-title = Mesh not found
mesh-not-found-body = You have no mesh at this address. It may not exist, or you may not be a member of it.
mesh-not-admin-title = Only admins can do this
mesh-not-admin-body = You are a member of { $mesh }, not an admin, so you cannot manage its invites or remove its members. Ask an admin of { $mesh }.

member-online = online
member-online-sessions = { $count ->
    [one] One session connected
   *[other] { $count } sessions connected
}
mesh-online = Online now
online-empty = No one is connected right now.
online-of-member = of { $member }
online-groups = Groups
online-connected = Connected
online-status-idle = Idle
online-status-working = Working
online-status-dnd = Do not disturb

mesh-invites = Invites
invite-create = Create invite
invite-email = Email
optional = (optional)
invite-email-placeholder = name@example.com
invite-role = Role
invite-days = Expires in (days)
invite-max-uses = Max uses
invite-create-submit = Create invite
invite-form-hint = With an email, the link is also sent there. Without one, share the link yourself.
invite-error-email = That is not a valid email address. Leave it empty to share the link yourself.
invite-error-role = Choose the role Member or Admin.
invite-error-days = Choose an expiry of 1 to { $max } days.
invite-error-uses = Choose a number of uses from 1 to { $max }.
invite-error-other = The invite could not be created with these values. Check them and try again.
invite-created-title = Your new invite link
invite-emailed = Emailed to { $email }.
invite-email-failed = Could not email { $email }: { $reason } — share the link yourself.
invite-email-failed-unknown = unknown reason
invite-email-outbox = No mail server is set up, so the mail to { $email } was only written to the server's outbox and not sent — share the link yourself.
invite-created-share = Anyone with this link can accept it in the browser, or in a terminal with { $command }.
invites-empty = No invites yet.
invite-col-link = Link
invite-col-uses = Uses
invite-col-expires = Expires
invite-col-code = Code
invite-status-valid = Valid
invite-status-expired = Expired
invite-status-revoked = Revoked
invite-status-used-up = Used up
invite-revoked-notice = Invite revoked. Its link no longer works.
invite-revoke-title = Revoke this invite?
invite-revoke-body = Nobody will be able to join { $mesh } with this link any more. People who already joined with it stay members.
invite-revoke-confirm = Revoke invite
invite-gone-title = Nothing to revoke
invite-gone-body = This invite no longer exists or was already revoked.

member-col-actions = Actions
member-leave = Leave
member-remove = Remove
member-removed-notice = Member removed. Their machines can no longer use the mesh.
member-gone-title = Nobody to remove
member-gone-body = This person is no longer a member of the mesh.
member-last-admin-title = You are the only admin
member-last-admin-body = { $mesh } needs an admin. Invite someone with the Admin role first; once they have joined, you can leave.
member-leave-title = Leave { $mesh }?
member-leave-body = Your machines will no longer be part of { $mesh }. Coming back takes a new invite. On each machine, claudemesh sync --prune then deletes its key.
member-leave-confirm = Leave mesh
member-remove-title = Remove { $name } from { $mesh }?
member-remove-body = Their machines will no longer be part of { $mesh }. They can come back only with a new invite.
member-remove-confirm = Remove member

# Grants: what each member allows each other member.
mesh-grants = Who may reach you
mesh-grants-intro = What each member may do to you: send you direct messages, reach you in group and broadcast messages, see your status and summary. The broker enforces it at once.
grants-col-allowed = Allowed
grant-dm = Direct messages
grant-group = Groups and broadcasts
grant-presence = Status and summary
grants-save = Save
grants-saved-notice = Saved. It applies to their sessions now.
mesh-log = Latest events
log-empty = Nothing has happened in this mesh yet.
log-col-when = When
log-col-event = Event
log-col-who = Who
log-hint = Follow every event from a terminal: { $command }. Messages appear as metadata only; their text stays end-to-end encrypted.
log-kind-member-joined = Joined the mesh
log-kind-member-left = Left the mesh
log-kind-member-removed = Was removed
log-kind-invite-created = Invite created
log-kind-invite-accepted = Invite accepted
log-kind-invite-revoked = Invite revoked
log-kind-session-connected = Session connected
log-kind-session-disconnected = Session disconnected
log-kind-message-sent = Message sent

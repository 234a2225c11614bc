# /dashboard and /dashboard/settings/cli-tokens.
dashboard-title = Dashboard
dashboard-welcome = Welcome,
dashboard-signed-in-as = Signed in as
dashboard-meshes = Meshes
dashboard-meshes-empty = You are not in any mesh yet.
dashboard-meshes-create = Create one in a terminal with { $command }: you become its admin, and can invite people from its page here.
dashboard-meshes-invited = Invited to someone else's mesh? Open the invite link you were sent.
dashboard-meshes-sync = To use these meshes in a terminal signed in to your account, run { $command }.
dashboard-manage-tokens = Manage tokens and sessions
dashboard-connect-cli = Connect a terminal
dashboard-connect-cli-body = Run { $command } in a terminal and approve the request here.
dashboard-enter-code = I have a code
dashboard-password-body = Changing it signs out every CLI session.
dashboard-tokens-summary = { $tokens ->
    [0] No personal access tokens
    [one] One personal access token
   *[other] { $tokens } personal access tokens
} and { $sessions ->
    [0] no CLI sessions.
    [one] one CLI session.
   *[other] { $sessions } CLI sessions.
}
tokens-title = CLI tokens
tokens-intro = Personal access tokens are for CI and scripts; CLI sessions are the terminals you signed in with claudemesh login.
tokens-created-title = Your new token
tokens-created-warning = Copy it now. This token will not be shown again.
tokens-created-use = Use it with { $command } or the CLAUDEMESH_TOKEN variable.
tokens-generate = Generate new token
tokens-name = Name
tokens-expiry = Expires
tokens-generate-submit = Generate token
tokens-never-hint = A token that never expires stays valid until you revoke it.
tokens-expiry-days = { $count } days
tokens-expiry-year = 1 year
tokens-expiry-never = Never
tokens-error-name = Give the token a name of 1 to 100 characters.
tokens-error-expiry = Choose 30 days, 90 days, 1 year or never.
tokens-pats = Personal access tokens
tokens-pats-empty = No personal access tokens yet.
tokens-sessions = CLI sessions
tokens-sessions-empty = No terminal is signed in.
tokens-col-name = Name
tokens-col-device = Device
tokens-col-created = Created
tokens-col-last-used = Last used
tokens-col-last-seen = Last seen
tokens-col-expires = Expires
tokens-revoked-notice = Revoked. Anything still using it can no longer sign in.
revoke-pat-title = Revoke this token?
revoke-pat-body = Every script or CI job using this token stops working at once. This cannot be undone.
revoke-session-title = Sign out this CLI session?
revoke-session-body = That terminal is signed out at once and needs claudemesh login again.
revoke-confirm = Revoke
revoke-back = Back to CLI tokens
revoke-gone-title = Nothing to revoke
revoke-gone-body = This token or session no longer exists: it was already revoked or has expired.
dashboard-left-notice = You left the mesh. Run claudemesh sync --prune on your machines to delete its keys.
dashboard-deleted-notice = Mesh deleted. Run claudemesh sync --prune on your machines to delete its keys.
tokens-mail-title = Email notifications
tokens-mail-label = Email me when a terminal signs in or a personal access token is created
tokens-mail-save = Save
tokens-mail-on-notice = You will get an email for each new CLI session and personal access token.
tokens-mail-off-notice = You will no longer get emails about new CLI sessions and personal access tokens.

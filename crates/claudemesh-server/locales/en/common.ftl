# Shared by every page: layout, navigation, generic errors.
lang-switcher-label = Language
nav-label = Account
nav-dashboard = Dashboard
nav-cli-tokens = CLI tokens
nav-password = Password
nav-sign-out = Sign out
footer-tagline = Claude Code, together.
signed-in-as = Signed in as { $name }
cancel = Cancel
never = Never
copy = Copy
copied = Copied ✓
revoke = Revoke

field-name = Name
field-email = Email
field-password = Password
field-current-password = Current password
field-new-password = New password
field-repeat-password = Repeat the new password

ago-just-now = just now
ago-seconds = { $count ->
    [one] one second ago
   *[other] { $count } seconds ago
}
ago-minutes = { $count ->
    [one] one minute ago
   *[other] { $count } minutes ago
}
ago-hours = { $count ->
    [one] one hour ago
   *[other] { $count } hours ago
}
ago-days = { $count ->
    [one] one day ago
   *[other] { $count } days ago
}

csrf-title = Request refused
csrf-body = This form was sent from another site, or it was open too long. Nothing was changed. Open the page again and retry.
csrf-retry = Open the page again
error-title = Something went wrong
error-body-server = The server could not finish this. Nothing you did caused it; it has been logged. Try again in a moment.
error-body-request = The server could not understand this request. Go back and try again.
not-found-title = Page not found
not-found-body = There is nothing at this address. Check the link, or start again from the home page.
not-found-home = Go to claudemesh
method-not-allowed-title = This page cannot be used that way
method-not-allowed-body = The address is right, but your browser asked for it in a way it does not answer. Go back and try again, or start from the home page.

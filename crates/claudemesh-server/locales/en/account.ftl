# Sign in, register, sign out, change password.
login-title = Sign in
login-for-cli = Sign in to approve the login from your terminal.
login-signed-out = You are signed out.
login-error-credentials = Wrong email or password.
login-error-too-many = Too many failed sign-ins for this email or from this network. Wait { $minutes } minutes, then try again.
login-submit = Sign in
login-no-account = No account yet?
login-register-link = Create one
register-title = Create your account
register-error-name = Enter a name of 1 to 100 characters.
register-error-email = That is not a valid email address.
register-error-taken = An account with this email already exists.
register-sign-in-instead = Sign in instead
register-submit = Create account
register-have-account = Already have an account?
register-sign-in-link = Sign in
password-hint = At least { $min } characters.
password-error-weak = A password needs at least { $min } characters (and at most 256).
password-error-mismatch = The two new passwords are not the same.
password-error-current = The current password is wrong.
password-changed = { $count ->
    [0] Password changed. No CLI session needed signing out.
    [one] Password changed. One CLI session was signed out; run claudemesh login there again.
   *[other] Password changed. { $count } CLI sessions were signed out; run claudemesh login there again.
}
password-title = Change password
password-explain = Changing your password signs out your other browsers and every CLI session. Personal access tokens keep working.
password-submit = Change password
logout-title = Sign out
logout-body = Sign out of claudemesh in this browser? Your CLI sessions and tokens keep working.

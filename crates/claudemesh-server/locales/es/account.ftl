# Iniciar sesión, registrarse, cerrar sesión, cambiar la contraseña.
login-title = Iniciar sesión
login-for-cli = Inicia sesión para aprobar el acceso desde tu terminal.
login-signed-out = Has cerrado la sesión.
login-error-credentials = Correo o contraseña incorrectos.
login-error-too-many = Demasiados intentos fallidos para este correo o desde esta red. Espera { $minutes } minutos y vuelve a intentarlo.
login-submit = Iniciar sesión
login-no-account = ¿Aún no tienes cuenta?
login-register-link = Crea una
register-title = Crea tu cuenta
register-error-name = Escribe un nombre de 1 a 100 caracteres.
register-error-email = Esa dirección de correo no es válida.
register-error-taken = Ya existe una cuenta con este correo.
register-sign-in-instead = Inicia sesión
register-submit = Crear cuenta
register-have-account = ¿Ya tienes cuenta?
register-sign-in-link = Inicia sesión
password-hint = Al menos { $min } caracteres.
password-error-weak = La contraseña necesita al menos { $min } caracteres (y como mucho 256).
password-error-mismatch = Las dos contraseñas nuevas no coinciden.
password-error-current = La contraseña actual no es correcta.
password-changed = { $count ->
    [0] Contraseña cambiada. No había sesiones de la CLI que cerrar.
    [one] Contraseña cambiada. Se cerró una sesión de la CLI; vuelve a ejecutar claudemesh login allí.
   *[other] Contraseña cambiada. Se cerraron { $count } sesiones de la CLI; vuelve a ejecutar claudemesh login allí.
}
password-title = Cambiar la contraseña
password-explain = Al cambiar la contraseña se cierran tus otros navegadores y todas las sesiones de la CLI. Los tokens de acceso personal siguen funcionando.
password-submit = Cambiar la contraseña
logout-title = Cerrar sesión
logout-body = ¿Cerrar la sesión de claudemesh en este navegador? Tus sesiones de la CLI y tus tokens siguen funcionando.

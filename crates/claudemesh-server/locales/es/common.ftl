# Compartido por todas las páginas: plantilla, navegación, errores genéricos.
lang-switcher-label = Idioma
nav-label = Cuenta
nav-dashboard = Panel
nav-cli-tokens = Tokens de la CLI
nav-password = Contraseña
nav-sign-out = Cerrar sesión
footer-tagline = Claude Code, en equipo.
signed-in-as = Sesión iniciada como { $name }
cancel = Cancelar
never = Nunca
copy = Copiar
copied = Copiado ✓
revoke = Revocar

field-name = Nombre
field-email = Correo electrónico
field-password = Contraseña
field-current-password = Contraseña actual
field-new-password = Contraseña nueva
field-repeat-password = Repite la contraseña nueva

ago-just-now = hace un momento
ago-seconds = { $count ->
    [one] hace un segundo
   *[other] hace { $count } segundos
}
ago-minutes = { $count ->
    [one] hace un minuto
   *[other] hace { $count } minutos
}
ago-hours = { $count ->
    [one] hace una hora
   *[other] hace { $count } horas
}
ago-days = { $count ->
    [one] hace un día
   *[other] hace { $count } días
}

csrf-title = Solicitud rechazada
csrf-body = Este formulario se envió desde otro sitio, o estuvo abierto demasiado tiempo. No se ha cambiado nada. Abre la página de nuevo e inténtalo otra vez.
csrf-retry = Abrir la página de nuevo
error-title = Algo ha fallado
error-body-server = El servidor no pudo terminar esta acción. No es culpa tuya y ha quedado registrado. Vuelve a intentarlo en un momento.
error-body-request = El servidor no entendió esta solicitud. Vuelve atrás e inténtalo de nuevo.
not-found-title = Página no encontrada
not-found-body = No hay nada en esta dirección. Comprueba el enlace o empieza de nuevo desde la página de inicio.
not-found-home = Ir a claudemesh
method-not-allowed-title = Esta página no se puede usar así
method-not-allowed-body = La dirección es correcta, pero tu navegador la pidió de una forma que no admite. Vuelve atrás e inténtalo de nuevo, o empieza desde la página de inicio.

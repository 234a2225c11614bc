# /dashboard/meshes/{slug}: un mesh, quién está conectado, sus miembros y (para los administradores) sus invitaciones.
mesh-example-name = Nombre
role-admin = Administrador
role-member = Miembro
mesh-col-name = Nombre
mesh-col-slug = Slug
mesh-col-your-role = Tu rol
mesh-col-members = Miembros
mesh-col-created = Creado
mesh-back-dashboard = ← Todos los meshes
mesh-back = Volver al mesh
mesh-slug = Slug
mesh-your-role = Tu rol
mesh-members-count = { $count ->
    [one] Un miembro
   *[other] { $count } miembros
}
mesh-members = Miembros
member-col-name = Nombre
member-col-role = Rol
member-col-joined = Se unió
member-col-machines = Claves de máquina
member-you = tú
mesh-sync-hint = Para usar este mesh en una terminal con la sesión de tu cuenta, ejecuta { $command }: une la máquina a todos tus meshes a los que aún no se haya unido.
mesh-not-found-title = Mesh no encontrado
mesh-not-found-body = No tienes ningún mesh en esta dirección. Puede que no exista o que no seas miembro.
mesh-not-admin-title = Solo los administradores pueden hacer esto
mesh-not-admin-body = Eres miembro de { $mesh }, no administrador, así que no puedes gestionar sus invitaciones ni quitar miembros. Pídeselo a un administrador de { $mesh }.

member-online = en línea
member-online-sessions = { $count ->
    [one] Una sesión conectada
   *[other] { $count } sesiones conectadas
}
mesh-online = Conectados ahora
online-empty = Ahora mismo no hay nadie conectado.
online-of-member = de { $member }
online-groups = Grupos
online-connected = Conectado
online-status-idle = Inactivo
online-status-working = Trabajando
online-status-dnd = No molestar

mesh-invites = Invitaciones
invite-create = Crear invitación
invite-email = Correo electrónico
optional = (opcional)
invite-email-placeholder = nombre@ejemplo.com
invite-role = Rol
invite-days = Caduca en (días)
invite-max-uses = Usos máximos
invite-create-submit = Crear invitación
invite-form-hint = Con un correo, el enlace también se envía allí. Sin él, comparte el enlace tú mismo.
invite-error-email = Esa dirección de correo no es válida. Déjala vacía para compartir el enlace tú mismo.
invite-error-role = Elige el rol Miembro o Administrador.
invite-error-days = Elige una caducidad de 1 a { $max } días.
invite-error-uses = Elige un número de usos de 1 a { $max }.
invite-error-other = No se pudo crear la invitación con estos valores. Revísalos e inténtalo de nuevo.
invite-created-title = Tu nuevo enlace de invitación
invite-emailed = Enviado por correo a { $email }.
invite-email-failed = No se pudo enviar el correo a { $email }: { $reason } — comparte el enlace tú mismo.
invite-email-failed-unknown = motivo desconocido
invite-email-outbox = No hay ningún servidor de correo configurado: el correo a { $email } solo se guardó en la bandeja de salida del servidor y no se envió — comparte el enlace tú mismo.
invite-created-share = Cualquiera con este enlace puede aceptarlo en el navegador, o en una terminal con { $command }.
invites-empty = Aún no hay invitaciones.
invite-col-link = Enlace
invite-col-uses = Usos
invite-col-expires = Caduca
invite-col-code = Código
invite-status-valid = Válida
invite-status-expired = Caducada
invite-status-revoked = Revocada
invite-status-used-up = Agotada
invite-revoked-notice = Invitación revocada. Su enlace ya no funciona.
invite-revoke-title = ¿Revocar esta invitación?
invite-revoke-body = Nadie podrá unirse a { $mesh } con este enlace. Quienes ya se unieron con él siguen siendo miembros.
invite-revoke-confirm = Revocar invitación
invite-gone-title = Nada que revocar
invite-gone-body = Esta invitación ya no existe o ya fue revocada.

member-col-actions = Acciones
member-leave = Salir
member-remove = Quitar
member-removed-notice = Miembro quitado. Sus máquinas ya no pueden usar el mesh.
member-gone-title = No hay nadie que quitar
member-gone-body = Esta persona ya no es miembro del mesh.
member-last-admin-title = Eres el único administrador
member-last-admin-body = { $mesh } necesita un administrador. Invita primero a alguien con el rol Administrador; cuando se haya unido, podrás salir.
member-leave-title = ¿Salir de { $mesh }?
member-leave-body = Tus máquinas dejarán de formar parte de { $mesh }. Para volver hará falta una invitación nueva. En cada máquina, claudemesh sync --prune borra después su clave.
member-leave-confirm = Salir del mesh
member-remove-title = ¿Quitar a { $name } de { $mesh }?
member-remove-body = Sus máquinas dejarán de formar parte de { $mesh }. Solo podrá volver con una invitación nueva.
member-remove-confirm = Quitar miembro

# Permisos: lo que cada miembro permite a cada otro miembro.
mesh-grants = Quién puede contactarte
mesh-grants-intro = Lo que cada miembro puede hacerte: enviarte mensajes directos, llegarte en mensajes de grupo y a todos, ver tu estado y resumen. El broker lo aplica al instante.
grants-col-allowed = Permitido
grant-dm = Mensajes directos
grant-group = Grupos y mensajes a todos
grant-presence = Estado y resumen
grants-save = Guardar
grants-saved-notice = Guardado. Se aplica ya a sus sesiones.
mesh-log = Últimos sucesos
log-empty = Todavía no ha pasado nada en este mesh.
log-col-when = Cuándo
log-col-event = Suceso
log-col-who = Quién
log-hint = Sigue cada suceso desde una terminal: { $command }. Los mensajes aparecen solo como metadatos; su texto sigue cifrado de extremo a extremo.
log-kind-member-joined = Se unió al mesh
log-kind-member-left = Dejó el mesh
log-kind-member-removed = Fue expulsado
log-kind-invite-created = Invitación creada
log-kind-invite-accepted = Invitación aceptada
log-kind-invite-revoked = Invitación revocada
log-kind-session-connected = Sesión conectada
log-kind-session-disconnected = Sesión desconectada
log-kind-message-sent = Mensaje enviado

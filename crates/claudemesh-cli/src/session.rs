//! A session of this machine's member key in one mesh, for `peers`, `send`
//! and `inbox`: which mesh ([`pick_mesh`]), the async runtime only these
//! commands use ([`runtime`]), and the connection to the broker
//! ([`MeshSession`]).
//!
//! The rest of the CLI is synchronous; these commands build a
//! current-thread tokio runtime and run the `claudemesh-client` session on
//! it. The session key is fresh for each command (and for each
//! `inbox --follow`), attested by the member key in `config.json`.

use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::output::Output;
use crate::base::when;
use crate::context::{Account, Context};
use crate::stores::config_store::JoinedMesh;
use claudemesh_api::Slug;
use claudemesh_api::broker::{MAX_NAME_CHARS, Priority, is_clean_label};
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{Client, ClientError, Event, Presence, Received, SessionIdentity};
use std::time::Duration;

/// The role a one-off command's session (`peers`, `send`, `inbox`) shows to
/// the others: `inbox --follow` leaves their comings and goings out.
pub const ONE_OFF_ROLE: &str = "cli";
/// The role of `inbox --follow`'s session, which stays.
pub const FOLLOWER_ROLE: &str = "inbox";
/// The role `stream subscribe` says hello with (no one sees it: an
/// observer is in no peer list; the mesh log shows it).
pub const OBSERVER_ROLE: &str = "observer";
/// How long a one-shot command's session key is attested for.
pub const SHORT_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// How long `inbox --follow` attests its session key for at a time: under
/// the broker's 24 hours, with room for a clock that runs ahead. The session
/// is attested again (same key) when it runs out.
pub const FOLLOW_LIFETIME: Duration = Duration::from_secs(23 * 60 * 60);

/// What a session of this CLI is: it sets the role shown to the others and
/// how long the session key is attested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A command that connects, does one thing and leaves.
    OneOff,
    /// `inbox --follow`: connected until stopped.
    Follower,
    /// `approve`/`deny`: a one-off command that acknowledges only the
    /// permission requests it takes, so other messages still wait for
    /// `inbox`.
    Answer,
    /// `stream subscribe`: an observer (see `Client::observe`), connected
    /// until stopped.
    Observer,
}

impl SessionKind {
    pub fn role(self) -> &'static str {
        match self {
            Self::OneOff | Self::Answer => ONE_OFF_ROLE,
            Self::Follower => FOLLOWER_ROLE,
            Self::Observer => OBSERVER_ROLE,
        }
    }

    pub fn lifetime(self) -> Duration {
        match self {
            Self::OneOff | Self::Answer => SHORT_LIFETIME,
            Self::Follower | Self::Observer => FOLLOW_LIFETIME,
        }
    }
}
/// How long to wait for the broker's welcome.
const CONNECT_WITHIN: Duration = Duration::from_secs(20);
/// How long closing may take before the command just exits.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// The mesh a command acts in: `--mesh SLUG` (joined on this machine), else
/// the only mesh joined here for the account on its server.
pub fn pick_mesh(
    ctx: &Context,
    account: &Account,
    given: Option<&Slug>,
    command: &str,
) -> CliResult<JoinedMesh> {
    let config = ctx.config().load(&ctx.out)?;
    let records: Vec<&JoinedMesh> = config.meshes(&account.server, &account.user.id).collect();
    choose(&records, given, command).cloned()
}

/// The signed-in account and the mesh a command acts in, from its
/// `--mesh` flag (checked) or the only mesh joined here.
pub fn account_and_mesh(
    ctx: &Context,
    mesh_flag: Option<&str>,
    command: &str,
) -> CliResult<(Account, JoinedMesh)> {
    let given = mesh_flag
        .map(|text| crate::base::args::slug_arg(text, "--mesh"))
        .transpose()?;
    let account = ctx.account()?;
    let mesh = pick_mesh(ctx, &account, given.as_ref(), command)?;
    Ok((account, mesh))
}

/// [`pick_mesh`] over the records already read.
pub fn choose<'a>(
    records: &[&'a JoinedMesh],
    given: Option<&Slug>,
    command: &str,
) -> CliResult<&'a JoinedMesh> {
    if let Some(slug) = given {
        // A record the last sync flagged is still tried (the broker has the
        // last word), but one still on the server comes first.
        let mut named: Vec<&JoinedMesh> = records
            .iter()
            .copied()
            .filter(|m| m.slug == slug.as_str())
            .collect();
        named.sort_by_key(|m| !m.on_server());
        return named.first().copied().ok_or_else(|| {
            CliError::new(
                Exit::NotFound,
                format!("No mesh called `{slug}` is joined on this machine"),
            )
            .with_hint(
                "See `claudemesh list`; `claudemesh sync` joins here every mesh your account is in.",
            )
        });
    }
    let joined: Vec<&JoinedMesh> = records.iter().copied().filter(|m| m.on_server()).collect();
    match joined.as_slice() {
        [one] => Ok(one),
        [] => Err(
            CliError::new(Exit::NotFound, "No mesh is joined on this machine").with_hint(
                "Create one with `claudemesh create \"Name\"`, join one with \
                 `claudemesh join <invite link>`, or run `claudemesh sync` if your account is in some already.",
            ),
        ),
        many => {
            let slugs: Vec<&str> = many.iter().map(|m| m.slug.as_str()).collect();
            Err(CliError::invalid_args(format!(
                "Which mesh? This machine has joined {}: {}",
                slugs.len(),
                slugs.join(", ")
            ))
            .with_hint(format!(
                "Give one with --mesh, e.g. `claudemesh {command} --mesh {}`.",
                slugs[0]
            )))
        }
    }
}

/// The runtime `peers`, `send` and `inbox` run their session on.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::failure(format!("Could not start the async runtime: {err}")))
}

/// A display name the broker takes (1 to MAX_NAME_CHARS characters, no control
/// characters, no surrounding spaces); the server allows longer ones.
pub fn presence_name(display_name: &str) -> String {
    let cleaned: String = display_name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim_end().to_owned();
    if is_clean_label(&cleaned, false) {
        cleaned
    } else {
        // A name the broker would refuse: go by what the session is.
        ONE_OFF_ROLE.to_owned()
    }
}

/// The broker's priority for `--priority`.
pub fn priority(arg: crate::cli::PriorityArg) -> Priority {
    match arg {
        crate::cli::PriorityArg::Now => Priority::Now,
        crate::cli::PriorityArg::Next => Priority::Next,
        crate::cli::PriorityArg::Low => Priority::Low,
    }
}

/// A connected session of this machine's member key in one mesh.
pub struct MeshSession<'a> {
    pub client: Client,
    pub mesh: &'a JoinedMesh,
    server: &'a str,
    /// The session key's secret, to attest the same key again.
    session_secret: String,
    kind: SessionKind,
}

impl<'a> MeshSession<'a> {
    /// Connects to the broker of `server` with a fresh session key attested
    /// for as long as a session of this `kind` needs.
    pub async fn connect(
        server: &'a str,
        mesh: &'a JoinedMesh,
        kind: SessionKind,
    ) -> CliResult<Self> {
        let session = KeyPair::generate().map_err(|err| {
            CliError::failure(format!(
                "Could not make a session key: the system's random source failed ({err})"
            ))
        })?;
        Self::connect_as(server, mesh, session.secret_hex(), kind).await
    }

    /// Connects again with the same session key, attested anew: messages
    /// sealed for it meanwhile still reach it.
    pub async fn reconnect(self) -> CliResult<Self> {
        let Self {
            client,
            mesh,
            server,
            session_secret,
            kind,
        } = self;
        client.close();
        drop(client);
        Self::connect_as(server, mesh, session_secret, kind).await
    }

    async fn connect_as(
        server: &'a str,
        mesh: &'a JoinedMesh,
        session_secret: String,
        kind: SessionKind,
    ) -> CliResult<Self> {
        let lifetime = kind.lifetime();
        let keys = |secret: &str| {
            KeyPair::from_secret_hex(secret).ok_or_else(|| {
                CliError::failure(format!(
                    "The key of mesh `{}` in config.json is malformed",
                    mesh.slug
                ))
            })
        };
        let member = keys(&mesh.secret_key)?;
        let session = keys(&session_secret)?;
        let lifetime_ms = i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2);
        let expires_at = now_ms().saturating_add(lifetime_ms);
        let identity = SessionIdentity::with_session(&mesh.mesh_id, member, session, expires_at);
        let presence = Presence {
            display_name: presence_name(&mesh.display_name),
            role: kind.role().to_owned(),
            ..Presence::default()
        };
        let connecting = async {
            if kind == SessionKind::Observer {
                Client::observe(server, identity, presence).await
            } else {
                let options = claudemesh_client::Options {
                    ack_on_receipt: kind != SessionKind::Answer,
                };
                Client::connect_with(server, identity, presence, options).await
            }
        };
        let client = tokio::time::timeout(CONNECT_WITHIN, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Connection(format!(
                    "no welcome within {} seconds",
                    CONNECT_WITHIN.as_secs()
                )))
            })
            .map_err(|err| match err {
                // A broker older than observers refuses the hello's unknown
                // field: the server, not this client, is behind.
                ClientError::Refused {
                    code: claudemesh_api::broker::BrokerErrorCode::BadFrame,
                    ref message,
                    ..
                } if kind == SessionKind::Observer && message.contains("observer") => {
                    CliError::failure(format!(
                        "The broker at {server} does not know observer sessions (it is older than this claudemesh)"
                    ))
                    .with_hint("Ask its operator to upgrade it; until then `--events log` works without the broker.")
                }
                err => CliError::from_broker(&err, server, &mesh.slug),
            })?;
        Ok(Self {
            client,
            mesh,
            server,
            session_secret,
            kind,
        })
    }

    /// What a failure of this session means for the user.
    pub fn error(&self, err: &ClientError) -> CliError {
        CliError::from_broker(err, self.server, &self.mesh.slug)
    }

    /// The connection ended (`Event::Closed`), or its events ran out.
    pub fn closed(
        &self,
        code: Option<claudemesh_api::broker::BrokerErrorCode>,
        message: &str,
    ) -> CliError {
        CliError::broker_closed(code, message, &self.mesh.slug)
    }

    /// Closes politely and waits (briefly) for the connection to end. A
    /// message that reached this short session meanwhile is shown on stderr
    /// rather than lost (it has been acknowledged).
    pub async fn close(self, out: &Output) {
        for message in self.close_collecting().await {
            if matches!(
                claudemesh_api::permission::Payload::parse(&message.text),
                Some(claudemesh_api::permission::Payload::PermissionRequest(_))
            ) {
                // Not acknowledged: it stays for `inbox` and `approve`.
                out.warn(format!(
                    "A permission request of {} is waiting: `claudemesh inbox` shows it",
                    message.from.display_name
                ));
                continue;
            }
            out.warn(format!(
                "A message reached this session meanwhile: {}",
                one_line(&message)
            ));
        }
    }

    /// Closes politely and returns the messages that arrived meanwhile.
    pub async fn close_collecting(self) -> Vec<Received> {
        self.client.close();
        let mut arrived = Vec::new();
        let drained = tokio::time::timeout(CLOSE_WITHIN, async {
            while let Some(event) = self.client.next_event().await {
                match event {
                    Event::Message(message) => arrived.push(message),
                    Event::Closed { .. } => break,
                    _ => {}
                }
            }
        });
        let _ = drained.await;
        arrived
    }
}

/// Ctrl-C, listened for from the moment this is made (so a Ctrl-C right
/// after the command says it is ready is not missed).
pub struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    /// Must run inside the runtime.
    pub fn listen() -> CliResult<Self> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|err| CliError::failure(format!("Could not listen for Ctrl-C: {err}")))?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves at the next Ctrl-C.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// `Bob → you: text`, on one line, for a message seen in passing.
fn one_line(message: &Received) -> String {
    format!(
        "{} → {}: {}",
        message.from.display_name,
        addressee(message),
        printable(&message.text).replace('\n', " ")
    )
}

/// Whom a message was for, as the reader sees it: `you`, `@ops`, `everyone`.
pub fn addressee(message: &Received) -> String {
    use claudemesh_api::broker::MessageKind;
    match (message.kind, &message.group) {
        (MessageKind::Direct, _) => "you".to_owned(),
        (MessageKind::Group, Some(group)) => format!("@{group}"),
        (MessageKind::Group, None) => "a group".to_owned(),
        (MessageKind::Broadcast, _) => "everyone".to_owned(),
    }
}

/// Text from another member, safe to print on a terminal: control
/// characters other than newlines and tabs (escape sequences that could
/// rewrite the screen) are shown escaped.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Milliseconds since the Unix epoch, as attestations count them.
fn now_ms() -> i64 {
    i64::try_from(when::now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::wire::{MeshRole, MeshSummary};

    fn record(slug: &str, flagged: bool) -> JoinedMesh {
        let summary = MeshSummary {
            id: format!("msh_{slug}"),
            slug: slug.into(),
            name: slug.into(),
            role: MeshRole::Member,
            member_id: format!("mem_{slug}"),
            display_name: "Alice".into(),
            member_count: 2,
            created_at: "2026-01-01T00:00:00Z".into(),
            archived_at: None,
        };
        let mut mesh = JoinedMesh::new(
            &summary,
            "usr_a",
            &crate::base::keys::KeyPair::generate().unwrap(),
            "2026-01-01T00:00:00Z",
        );
        if flagged {
            mesh.missing_on_server_since = Some("2026-01-02T00:00:00Z".into());
        }
        mesh
    }

    fn slug(text: &str) -> Slug {
        Slug::parse(text).unwrap()
    }

    #[test]
    fn the_mesh_is_the_one_given_or_the_only_one_joined_here() {
        let (dev, ops, old) = (
            record("dev", false),
            record("ops", false),
            record("old", true),
        );
        let one = [&dev, &old];
        assert_eq!(choose(&one, None, "peers").unwrap().slug, "dev");
        assert_eq!(
            choose(&one, Some(&slug("old")), "peers").unwrap().slug,
            "old"
        );

        let two = [&dev, &ops, &old];
        let err = choose(&two, None, "send").err().unwrap();
        assert_eq!(err.exit, Exit::InvalidArgs);
        assert_eq!(
            err.message,
            "Which mesh? This machine has joined 2: dev, ops"
        );
        assert_eq!(
            err.hint.as_deref(),
            Some("Give one with --mesh, e.g. `claudemesh send --mesh dev`.")
        );
        assert_eq!(
            choose(&two, Some(&slug("ops")), "send").unwrap().slug,
            "ops"
        );

        let err = choose(&two, Some(&slug("nope")), "inbox").err().unwrap();
        assert_eq!(err.exit, Exit::NotFound);
        assert_eq!(
            err.message,
            "No mesh called `nope` is joined on this machine"
        );
        let err = choose(&[&old], None, "inbox").err().unwrap();
        assert_eq!(err.exit, Exit::NotFound);
        assert_eq!(err.message, "No mesh is joined on this machine");
        assert!(err.hint.unwrap().contains("claudemesh create"));
    }

    #[test]
    fn a_reused_slug_prefers_the_membership_still_on_the_server() {
        let old = record("dev", true);
        let mut new = record("dev", false);
        new.mesh_id = "msh_new".into();
        assert_eq!(
            choose(&[&old, &new], Some(&slug("dev")), "peers")
                .unwrap()
                .mesh_id,
            "msh_new"
        );
    }

    #[test]
    fn presence_names_fit_the_broker() {
        assert_eq!(presence_name("Alice (laptop)"), "Alice (laptop)");
        assert_eq!(presence_name("  Bob\u{7} "), "Bob");
        assert_eq!(
            presence_name(&"é".repeat(150)).chars().count(),
            MAX_NAME_CHARS
        );
        assert_eq!(
            presence_name(&format!("{} x", "a".repeat(MAX_NAME_CHARS - 1))),
            "a".repeat(MAX_NAME_CHARS - 1)
        );
        assert_eq!(presence_name(" \u{1b} "), "cli");
    }

    #[test]
    fn text_from_others_cannot_drive_the_terminal() {
        assert_eq!(printable("two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(printable("\u{1b}[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(printable("bell\u{7}"), "bell\\u{7}");
    }
}

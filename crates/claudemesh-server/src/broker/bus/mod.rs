//! What one instance tells the others: new messages (their ids, never
//! ciphertext), presence, removals, grants. An instance that hears of new
//! messages reads the rows it needs: the database stays the store of record
//! whichever bus carries the news.
//!
//! - [`Bus::Alone`]: SQLite, one instance; events only ever go to
//!   `Broker::apply` directly.
//! - `postgres`: PostgreSQL's LISTEN/NOTIFY, the default on PostgreSQL (no
//!   other service to run). A write batch's notifications go in its own
//!   transaction, so other instances hear of messages only once durable.
//! - `nats`: core NATS (`--bus nats://…`), for fan-out past what one
//!   PostgreSQL's NOTIFY carries (NOTIFY serialises the commits that use
//!   it). Published right after the batch commits.
//!
//! Either way, events sent while an instance's bus connection is down are
//! lost to it; when it reconnects it is told of the gap and resynchronises
//! from the tables (see `Broker::resync`).

mod nats;
mod postgres;

use crate::metrics::METRICS;
use claudemesh_api::broker::Peer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusEvent {
    /// Messages stored in this mesh, with deliveries waiting.
    Messages {
        mesh_id: String,
        ids: Vec<String>,
    },
    Joined {
        mesh_id: String,
        peer: Peer,
    },
    Left {
        mesh_id: String,
        session_key: String,
    },
    Updated {
        mesh_id: String,
        peer: Peer,
    },
    /// A membership ended: its sessions are closed everywhere.
    Removed {
        mesh_id: String,
        member_id: String,
    },
    /// The mesh was archived or deleted: its sessions close everywhere.
    Closed {
        mesh_id: String,
        deleted: bool,
    },
    /// What `member_id` allows `peer_member_id` changed (bits of
    /// `meshes::grant_store::Caps`).
    Grant {
        mesh_id: String,
        member_id: String,
        peer_member_id: String,
        caps: u8,
    },
    /// `conn_id` now holds this session; any other connection of it closes.
    Kick {
        session_key: String,
        conn_id: String,
    },
}

impl BusEvent {
    /// The events announcing stored messages: per mesh, their ids, at most
    /// 100 an event (a NOTIFY payload stays far below its 8,000 bytes).
    pub fn for_messages<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Self> {
        let mut by_mesh: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (mesh_id, id) in messages {
            by_mesh.entry(mesh_id).or_default().push(id.to_owned());
        }
        by_mesh
            .into_iter()
            .flat_map(|(mesh_id, ids)| {
                ids.chunks(100)
                    .map(|ids| BusEvent::Messages {
                        mesh_id: mesh_id.to_owned(),
                        ids: ids.to_vec(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// An event with the instance it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    /// The sending instance (which has already applied the event itself).
    i: String,
    /// When it was written (wall-clock ms), for the bus lag metric; absent
    /// from older instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    #[serde(flatten)]
    event: BusEvent,
}

/// An event as it travels, stamped with its instance and time.
fn encode(instance_id: &str, event: &BusEvent) -> String {
    serde_json::to_string(&Note {
        i: instance_id.to_owned(),
        at: Some(crate::metrics::wall_ms()),
        event: event.clone(),
    })
    .unwrap_or_default()
}

/// The event in a payload from another instance; `None` for this
/// instance's own (already applied) and for what cannot be read.
fn decode(payload: &[u8], instance_id: &str) -> Option<BusEvent> {
    match serde_json::from_slice::<Note>(payload) {
        Ok(note) if note.i != instance_id => {
            METRICS
                .broker_bus_events
                .with_label_values(&["received"])
                .inc();
            // Instances' clocks may disagree: a stamp from the future is
            // not a lag.
            if let Some(lag) = note.at.and_then(crate::metrics::seconds_since) {
                METRICS.broker_bus_lag.observe(lag);
            }
            Some(note.event)
        }
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(error = %err, "broker: unreadable bus event");
            None
        }
    }
}

fn count_sent(events: usize) {
    METRICS
        .broker_bus_events
        .with_label_values(&["sent"])
        .inc_by(events as u64);
}

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("--bus (CLAUDEMESH_BUS): {0}")]
    Setting(String),
    #[error("--bus (CLAUDEMESH_BUS): cannot connect to NATS at {server}: {source}")]
    Connect {
        server: String,
        source: async_nats::ConnectError,
    },
}

/// How this instance reaches the others.
#[derive(Clone)]
pub enum Bus {
    /// SQLite: one instance, nobody to tell.
    Alone,
    Postgres(postgres::Notify),
    Nats(nats::Subject),
}

impl Bus {
    /// The bus for this store and `--bus`: none on SQLite, NOTIFY on
    /// PostgreSQL unless `bus_url` names a NATS server.
    pub async fn open(
        instance_id: &str,
        database_url: Option<&str>,
        bus_url: Option<&str>,
    ) -> Result<Self, BusError> {
        Ok(match choose(database_url, bus_url)? {
            Choice::Alone => Self::Alone,
            Choice::Postgres(url) => Self::Postgres(postgres::Notify::new(url, instance_id)),
            Choice::Nats { server, subject } => {
                Self::Nats(nats::Subject::connect(&server, subject, instance_id).await?)
            }
        })
    }

    /// Sends an event to the other instances.
    pub async fn send(&self, pool: &sqlx::AnyPool, event: &BusEvent) -> Result<(), String> {
        match self {
            Self::Alone => Ok(()),
            Self::Postgres(notify) => notify
                .send(pool, std::slice::from_ref(event))
                .await
                .map_err(|err| err.to_string()),
            Self::Nats(subject) => subject.send(std::slice::from_ref(event)).await,
        }
    }

    /// The part of a write batch's events that goes in its transaction
    /// (NOTIFY: sent only if the transaction commits).
    pub async fn send_in_transaction(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        events: &[BusEvent],
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(notify) => notify.send(&mut **tx, events).await,
            Self::Alone | Self::Nats(_) => Ok(()),
        }
    }

    /// The part that goes once the batch has committed (NATS: a recipient
    /// that hears of a message must find its row).
    pub async fn send_committed(&self, events: &[BusEvent]) {
        if let Self::Nats(subject) = self
            && let Err(err) = subject.send(events).await
        {
            tracing::warn!(error = %err, "broker: could not tell the other instances of new messages");
        }
    }

    /// Listens for the other instances' events until `shutdown`, calling
    /// `on_event` for each and `on_gap` whenever events may have been
    /// missed (the bus connection dropped and came back).
    pub fn listen(
        &self,
        on_event: impl Fn(BusEvent) + Send + 'static,
        on_gap: impl Fn() + Send + 'static,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = bus.run(on_event, on_gap) => {}
                _ = shutdown.changed() => {}
            }
        });
    }

    async fn run(self, on_event: impl Fn(BusEvent), on_gap: impl Fn()) {
        match self {
            Self::Alone => std::future::pending().await,
            Self::Postgres(notify) => notify.listen(on_event, on_gap).await,
            Self::Nats(subject) => subject.listen(on_event, on_gap).await,
        }
    }
}

/// The bus `--bus` asks for, in words, without connecting to anything
/// (`claudemesh-server check`).
pub fn describe_setting(
    database_url: Option<&str>,
    bus_url: Option<&str>,
) -> Result<String, BusError> {
    Ok(match choose(database_url, bus_url)? {
        Choice::Alone => "none (SQLite: one instance)".into(),
        Choice::Postgres(_) => format!("PostgreSQL NOTIFY, channel {}", postgres::CHANNEL),
        Choice::Nats { server, subject } => format!(
            "NATS at {}, subject {subject} (not connected to)",
            redacted(&server)
        ),
    })
}

enum Choice<'a> {
    Alone,
    Postgres(&'a str),
    Nats { server: String, subject: String },
}

fn choose<'a>(
    database_url: Option<&'a str>,
    bus_url: Option<&str>,
) -> Result<Choice<'a>, BusError> {
    let postgres = database_url.filter(|url| url.starts_with("postgres"));
    match (postgres, bus_url.map(BusUrl::parse).transpose()?) {
        (None, Some(_)) => Err(BusError::Setting(
            "needs PostgreSQL: on SQLite there is one instance, with nobody to tell".into(),
        )),
        (None, None) => Ok(Choice::Alone),
        (Some(url), None | Some(BusUrl::Postgres)) => Ok(Choice::Postgres(url)),
        (Some(_), Some(BusUrl::Nats { server, subject })) => Ok(Choice::Nats { server, subject }),
    }
}

/// What `--bus` may say.
#[derive(Debug, PartialEq, Eq)]
enum BusUrl {
    /// `postgres`: LISTEN/NOTIFY on the database (the default).
    Postgres,
    /// `nats://[user:pass@]host:port[?subject=NAME]`.
    Nats { server: String, subject: String },
}

impl BusUrl {
    fn parse(text: &str) -> Result<Self, BusError> {
        if text == "postgres" {
            return Ok(Self::Postgres);
        }
        let bad = |why: &str| BusError::Setting(format!("`{}` {why}", redacted(text)));
        let Some(rest) = text.strip_prefix("nats://") else {
            return Err(bad("is neither `postgres` nor a nats:// URL"));
        };
        let (server, query) = rest.split_once('?').unwrap_or((rest, ""));
        let server = server.trim_end_matches('/');
        if server.is_empty() || server.contains('/') {
            return Err(bad("should be nats://host:port, with no path"));
        }
        let mut subject = nats::DEFAULT_SUBJECT.to_owned();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("subject", name)) if nats::valid_subject(name) => {
                    name.clone_into(&mut subject)
                }
                Some(("subject", _)) => {
                    return Err(bad(
                        "has a subject that is not letters, digits, `-`, `_` and dots between them",
                    ));
                }
                _ => return Err(bad("has a query other than ?subject=NAME")),
            }
        }
        Ok(Self::Nats {
            server: format!("nats://{server}"),
            subject,
        })
    }
}

/// A bus URL with any password replaced, for messages.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://…@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls_are_read_or_refused_with_a_reason() {
        assert_eq!(BusUrl::parse("postgres").unwrap(), BusUrl::Postgres);
        assert_eq!(
            BusUrl::parse("nats://127.0.0.1:4222").unwrap(),
            BusUrl::Nats {
                server: "nats://127.0.0.1:4222".into(),
                subject: "claudemesh.broker".into()
            }
        );
        assert_eq!(
            BusUrl::parse("nats://u:p@nats.internal:4222/?subject=prod.broker").unwrap(),
            BusUrl::Nats {
                server: "nats://u:p@nats.internal:4222".into(),
                subject: "prod.broker".into()
            }
        );
        for (bad, why) in [
            ("redis://127.0.0.1", "neither"),
            ("nats://", "no path"),
            ("nats://host:4222/x", "no path"),
            ("nats://host?subject=a..b", "subject"),
            ("nats://host?subject=a.*", "subject"),
            ("nats://host?queue=x", "query"),
        ] {
            let err = BusUrl::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("--bus (CLAUDEMESH_BUS): "), "{err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
        let err = BusUrl::parse("nats://user:secret@host/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn stored_messages_are_announced_per_mesh_a_hundred_ids_at_most() {
        let ids: Vec<String> = (0..150).map(|i| format!("msg_{i}")).collect();
        let messages = ids
            .iter()
            .map(|id| ("mesh_b", id.as_str()))
            .chain([("mesh_a", "msg_x")]);
        let events = BusEvent::for_messages(messages);
        let shape: Vec<(String, usize)> = events
            .iter()
            .map(|e| match e {
                BusEvent::Messages { mesh_id, ids } => (mesh_id.clone(), ids.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("mesh_a".into(), 1),
                ("mesh_b".into(), 100),
                ("mesh_b".into(), 50)
            ]
        );
    }

    #[test]
    fn an_instance_ignores_its_own_events_and_unreadable_ones() {
        let event = BusEvent::Left {
            mesh_id: "m".into(),
            session_key: "k".into(),
        };
        let payload = encode("ins_a", &event);
        assert!(decode(payload.as_bytes(), "ins_a").is_none());
        assert!(matches!(
            decode(payload.as_bytes(), "ins_b"),
            Some(BusEvent::Left { session_key, .. }) if session_key == "k"
        ));
        assert!(decode(b"{not json", "ins_b").is_none());
    }
}

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
mod wire;

use wire::redacted;
pub use wire::{BusError, BusEvent};

/// How this instance reaches the others.
#[derive(Clone)]
pub enum Bus {
    /// SQLite: one instance, nobody to tell.
    Alone,
    Postgres(postgres::Notify),
    /// NATS, with the database's NOTIFY as the fallback for what NATS
    /// cannot take at the moment (disconnected, or too slow): every
    /// instance on NATS also listens there, where almost nothing passes.
    Nats(Box<NatsBus>),
}

/// `Bus::Nats`'s parts.
#[derive(Clone)]
pub struct NatsBus {
    subject: nats::Subject,
    fallback: postgres::Notify,
    pool: sqlx::AnyPool,
}

impl Bus {
    /// The bus for this store and `--bus`: none on SQLite, NOTIFY on
    /// PostgreSQL unless `bus_url` names a NATS server.
    pub async fn open(
        instance_id: &str,
        pool: &sqlx::AnyPool,
        database_url: Option<&str>,
        bus_url: Option<&str>,
    ) -> Result<Self, BusError> {
        Ok(match choose(database_url, bus_url)? {
            Choice::Alone => Self::Alone,
            Choice::Postgres(url) => Self::Postgres(postgres::Notify::new(url, instance_id)),
            Choice::Nats {
                database_url,
                server,
                subject,
            } => Self::Nats(Box::new(NatsBus {
                subject: nats::Subject::connect(&server, subject, instance_id).await?,
                fallback: postgres::Notify::new(database_url, instance_id),
                pool: pool.clone(),
            })),
        })
    }

    /// Whether the other instances hear of a write batch only after its
    /// commit (NATS), rather than with it (NOTIFY).
    pub fn announces_after_commit(&self) -> bool {
        matches!(self, Self::Nats(_))
    }

    /// Sends events to the other instances, together: one statement on
    /// NOTIFY, one flush on NATS.
    pub async fn send(&self, pool: &sqlx::AnyPool, events: &[BusEvent]) -> Result<(), String> {
        match self {
            Self::Alone => Ok(()),
            Self::Postgres(notify) => notify
                .send(pool, events)
                .await
                .map_err(|err| err.to_string()),
            Self::Nats(_) => {
                self.send_committed(events).await;
                Ok(())
            }
        }
    }

    /// Tells the other instances of a write batch's stored messages
    /// (`(mesh id, message id)`) in its transaction, where the bus is
    /// NOTIFY: sent only if the transaction commits. Nothing is built for
    /// the other buses.
    pub async fn announce_in_transaction<'a>(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(notify) => {
                notify
                    .send(&mut **tx, &BusEvent::for_messages(messages))
                    .await
            }
            Self::Alone | Self::Nats(_) => Ok(()),
        }
    }

    /// The same once the batch has committed, where the bus announces
    /// after the commit (NATS: a recipient that hears of a message must
    /// find its row).
    pub async fn announce_committed<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        if self.announces_after_commit() {
            self.send_committed(&BusEvent::for_messages(messages)).await;
        }
    }

    /// Events through NATS, or through NOTIFY when NATS cannot take them.
    async fn send_committed(&self, events: &[BusEvent]) {
        let Self::Nats(nats) = self else {
            return;
        };
        let NatsBus {
            subject,
            fallback,
            pool,
        } = nats.as_ref();
        if events.is_empty() {
            return;
        }
        if let Err(why) = subject.send(events).await {
            tracing::warn!(error = %why, "broker: NATS bus unavailable; telling the other instances through the database");
            if let Err(err) = fallback.send(pool, events).await {
                tracing::warn!(error = %err, "broker: could not tell the other instances");
            }
        }
    }

    /// Listens for the other instances' events until `shutdown`, calling
    /// `on_event` for each and `on_gap` whenever events may have been
    /// missed (the bus connection dropped and came back).
    pub fn listen(
        &self,
        on_event: impl Fn(BusEvent) + Send + Sync + 'static,
        on_gap: impl Fn() + Send + Sync + 'static,
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
            Self::Nats(nats) => {
                let NatsBus {
                    subject, fallback, ..
                } = *nats;
                tokio::join!(
                    subject.listen(&on_event, &on_gap),
                    fallback.listen(&on_event, &on_gap)
                );
            }
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
        Choice::Nats {
            server, subject, ..
        } => format!(
            "NATS at {}, subject {subject} (not connected to)",
            redacted(&server)
        ),
    })
}

enum Choice<'a> {
    Alone,
    Postgres(&'a str),
    Nats {
        database_url: &'a str,
        server: String,
        subject: String,
    },
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
        (Some(database_url), Some(BusUrl::Nats { server, subject })) => Ok(Choice::Nats {
            database_url,
            server,
            subject,
        }),
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
}

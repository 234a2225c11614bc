//! What one instance tells the others, through PostgreSQL's LISTEN/NOTIFY.
//!
//! Payloads are small (ids and presence, never ciphertext): an instance that
//! hears of new messages reads the rows it needs. On SQLite there is one
//! instance and events only ever go to [`super::service::Broker::apply`] directly.
//! Notifications sent while an instance's listening connection is down are
//! lost; when it reconnects, the broker resynchronises from the tables (see
//! `Broker::resync`).

use crate::metrics::METRICS;
use claudemesh_api::broker::Peer;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use std::time::Duration;

pub const CHANNEL: &str = "claudemesh_broker";

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

fn payload(instance_id: &str, event: &BusEvent) -> String {
    serde_json::to_string(&Note {
        i: instance_id.to_owned(),
        at: Some(crate::metrics::wall_ms()),
        event: event.clone(),
    })
    .unwrap_or_default()
}

/// Sends an event to the other instances. In a transaction, it is sent
/// only if the transaction commits.
pub async fn notify<'e, E>(
    executor: E,
    instance_id: &str,
    event: &BusEvent,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload(instance_id, event))
        .execute(executor)
        .await?;
    METRICS.broker_bus_events.with_label_values(&["sent"]).inc();
    Ok(())
}

/// Listens for the other instances' events until the process ends, calling
/// `on_event` for each and `on_gap` whenever events may have been missed
/// (the listening connection dropped and came back).
pub fn listen(
    database_url: String,
    instance_id: String,
    on_event: impl Fn(BusEvent) + Send + 'static,
    on_gap: impl Fn() + Send + 'static,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        tokio::select! {
            () = run(database_url, instance_id, on_event, on_gap) => {}
            _ = shutdown.changed() => {}
        }
    });
}

async fn run(
    database_url: String,
    instance_id: String,
    on_event: impl Fn(BusEvent),
    on_gap: impl Fn(),
) {
    {
        let mut listener = loop {
            match connect(&database_url).await {
                Ok(listener) => break listener,
                Err(err) => {
                    tracing::warn!(error = %err, "broker: cannot LISTEN yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Note>(notification.payload()) {
                        Ok(note) if note.i != instance_id => {
                            METRICS
                                .broker_bus_events
                                .with_label_values(&["received"])
                                .inc();
                            // Instances' clocks may disagree: a stamp from the
                            // future is not a lag.
                            if let Some(lag) = note.at.and_then(crate::metrics::seconds_since) {
                                METRICS.broker_bus_lag.observe(lag);
                            }
                            on_event(note.event);
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(error = %err, "broker: unreadable notification"),
                    }
                }
                // The connection dropped; the next call reconnects.
                Ok(None) => {
                    tracing::warn!("broker: LISTEN connection lost; resynchronising");
                    on_gap();
                }
                Err(err) => {
                    tracing::warn!(error = %err, "broker: LISTEN failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    on_gap();
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

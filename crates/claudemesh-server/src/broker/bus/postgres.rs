//! The bus through PostgreSQL's LISTEN/NOTIFY on the channel
//! `claudemesh_broker`: nothing to run beside the database. Every NOTIFY
//! takes one lock on the server's notification queue at commit, so the
//! commits that carry one are serialised: the ceiling that `--bus nats://`
//! lifts (docs/operations.md has the figures).

use super::wire::{BusEvent, count_sent, decode, encode};
use sqlx::postgres::PgListener;
use std::time::Duration;

pub const CHANNEL: &str = "claudemesh_broker";

/// Sends and hears the events of one instance.
#[derive(Clone)]
pub struct Notify {
    database_url: String,
    instance_id: String,
}

impl Notify {
    pub fn new(database_url: &str, instance_id: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            instance_id: instance_id.to_owned(),
        }
    }

    /// Sends events to the other instances. In a transaction, they are
    /// sent only if the transaction commits.
    pub async fn send<'e, E>(&self, executor: E, events: &[BusEvent]) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for all of them: `pg_notify` over an array.
        let payloads: Vec<String> = events
            .iter()
            .map(|event| encode(&self.instance_id, event))
            .collect();
        let json = serde_json::to_string(&payloads).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, p) FROM json_array_elements_text($2::json) AS p")
            .bind(CHANNEL)
            .bind(json)
            .execute(executor)
            .await?;
        count_sent(events.len());
        Ok(())
    }

    /// Hears the other instances' events for as long as it is polled.
    pub async fn listen(self, on_event: impl Fn(BusEvent), on_gap: impl Fn()) {
        let mut listener = loop {
            match connect(&self.database_url).await {
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
                    if let Some(event) =
                        decode(notification.payload().as_bytes(), &self.instance_id)
                    {
                        on_event(event);
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

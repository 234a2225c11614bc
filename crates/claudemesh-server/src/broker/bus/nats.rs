//! The bus through core NATS (`--bus nats://host:port[?subject=NAME]`): the
//! instances publish their events on one subject and all subscribe to it.
//! Nothing is stored in NATS (the database is the store of record), so
//! JetStream is not needed. Every instance of a deployment must use the same
//! subject; deployments sharing a NATS server must use different ones.
//!
//! The client reconnects on its own. Events published while it is
//! disconnected wait in its buffer; events sent to it meanwhile are lost to
//! it, which is why a reconnection (or a subscription NATS found too slow)
//! counts as a gap: the broker resynchronises from the tables.

use super::{BusError, BusEvent, count_sent, decode, encode};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::Notify;

pub const DEFAULT_SUBJECT: &str = "claudemesh.broker";

/// How long a send waits for its events to leave this process.
const FLUSH_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether `name` is a plain NATS subject: tokens of letters, digits, `-`
/// and `_` between dots (no wildcards, no empty token).
pub fn valid_subject(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// One instance's connection to the bus subject.
#[derive(Clone)]
pub struct Subject {
    client: async_nats::Client,
    subject: String,
    instance_id: String,
    /// Woken when events may have been missed (reconnected, or dropped
    /// as a slow consumer).
    gap: Arc<Notify>,
}

impl Subject {
    /// Connects now, so that a wrong address stops the server at start, as
    /// a wrong database URL does; later drops are reconnected.
    pub async fn connect(
        server: &str,
        subject: String,
        instance_id: &str,
    ) -> Result<Self, BusError> {
        let gap = Arc::new(Notify::new());
        let on_event = Arc::clone(&gap);
        let client = async_nats::ConnectOptions::new()
            .name(format!("claudemesh-server {instance_id}"))
            .event_callback(move |event| {
                let gap = Arc::clone(&on_event);
                async move {
                    match event {
                        async_nats::Event::Connected | async_nats::Event::SlowConsumer(_) => {
                            tracing::warn!(%event, "broker: NATS bus: resynchronising");
                            gap.notify_one();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("broker: NATS bus disconnected; reconnecting");
                        }
                        other => tracing::info!(event = %other, "broker: NATS bus"),
                    }
                }
            })
            .connect(server)
            .await
            .map_err(|source| BusError::Connect {
                server: super::redacted(server),
                source,
            })?;
        Ok(Self {
            client,
            subject,
            instance_id: instance_id.to_owned(),
            gap,
        })
    }

    /// Publishes events and, while connected, waits (briefly) until they
    /// have left this process, so that a SIGKILL right after cannot lose
    /// them. While disconnected they wait in the client's buffer, and every
    /// instance that was cut off too resynchronises when it reconnects.
    pub async fn send(&self, events: &[BusEvent]) -> Result<(), String> {
        for event in events {
            self.client
                .publish(
                    self.subject.clone(),
                    encode(&self.instance_id, event).into(),
                )
                .await
                .map_err(|err| err.to_string())?;
        }
        count_sent(events.len());
        if self.client.connection_state() == async_nats::connection::State::Connected {
            match tokio::time::timeout(FLUSH_WITHIN, self.client.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(err.to_string()),
                Err(_) => return Err("NATS did not take the events in time".into()),
            }
        }
        Ok(())
    }

    /// Hears the other instances' events for as long as it is polled.
    pub async fn listen(self, on_event: impl Fn(BusEvent), on_gap: impl Fn()) {
        loop {
            let mut subscription = match self.client.subscribe(self.subject.clone()).await {
                Ok(subscription) => subscription,
                Err(err) => {
                    tracing::warn!(error = %err, "broker: cannot subscribe to the NATS bus yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    message = subscription.next() => match message {
                        Some(message) => {
                            if let Some(event) = decode(&message.payload, &self.instance_id) {
                                on_event(event);
                            }
                        }
                        None => break,
                    },
                    () = self.gap.notified() => on_gap(),
                }
            }
            tracing::warn!("broker: NATS bus subscription ended; subscribing again");
            on_gap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn subjects_are_plain_tokens_between_dots() {
        for good in ["claudemesh.broker", "prod-eu_1.broker", "x"] {
            assert!(valid_subject(good), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "ä"] {
            assert!(!valid_subject(bad), "{bad}");
        }
    }
}

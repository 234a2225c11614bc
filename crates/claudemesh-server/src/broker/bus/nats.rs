//! The bus through core NATS (`--bus nats://host:port[?subject=NAME]`): the
//! instances publish their events on one subject and all subscribe to it.
//! Nothing is stored in NATS (the database is the store of record), so
//! JetStream is not needed. Every instance of a deployment must use the same
//! subject; deployments sharing a NATS server must use different ones.
//!
//! The client reconnects on its own. What this instance cannot hand to NATS
//! at the moment (disconnected, or NATS too slow) goes through the
//! database's NOTIFY instead (see `Bus::Nats`); what was sent to it while
//! disconnected is lost to it, which is why a reconnection (or a
//! subscription NATS found too slow) counts as a gap: the broker
//! resynchronises from the tables.

use super::wire::{BusError, BusEvent, count_sent, decode, encode};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tokio::sync::Notify;

pub const DEFAULT_SUBJECT: &str = "claudemesh.broker";

/// How long a send waits for NATS to take its events.
const SEND_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);
/// After NATS was that slow, sends go another way at once for this long.
const SUSPECT_FOR_MS: i64 = 5_000;

fn now_ms() -> i64 {
    crate::metrics::wall_ms()
}

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
    /// Until when (wall-clock ms) sends skip NATS, after it was too slow.
    suspect_until: Arc<AtomicI64>,
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
        // The first `Connected` is the start, not a gap.
        let started = Arc::new(AtomicBool::new(false));
        let client = async_nats::ConnectOptions::new()
            .name(format!("claudemesh-server {instance_id}"))
            .event_callback(move |event| {
                let gap = Arc::clone(&on_event);
                let started = Arc::clone(&started);
                async move {
                    match event {
                        async_nats::Event::Connected if !started.swap(true, Ordering::Relaxed) => {}
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
                server: super::wire::redacted(server),
                source,
            })?;
        Ok(Self {
            client,
            subject,
            instance_id: instance_id.to_owned(),
            gap,
            suspect_until: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Publishes events and waits until they have left this process (so
    /// that a SIGKILL right after cannot lose them), within [`SEND_WITHIN`]
    /// in all. An error means NATS did not take them: the caller sends
    /// them another way. While disconnected, or for a moment after NATS
    /// was too slow, it fails at once rather than making the writer wait.
    pub async fn send(&self, events: &[BusEvent]) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("not connected to NATS".into());
        }
        if self.suspect_until.load(Ordering::Relaxed) > now_ms() {
            return Err("NATS was too slow a moment ago".into());
        }
        let publish = async {
            for event in events {
                self.client
                    .publish(
                        self.subject.clone(),
                        encode(&self.instance_id, event).into(),
                    )
                    .await
                    .map_err(|err| err.to_string())?;
            }
            self.client.flush().await.map_err(|err| err.to_string())
        };
        match tokio::time::timeout(SEND_WITHIN, publish).await {
            Ok(Ok(())) => {
                count_sent(events.len());
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(_) => {
                self.suspect_until
                    .store(now_ms() + SUSPECT_FOR_MS, Ordering::Relaxed);
                Err("NATS did not take the events in time".into())
            }
        }
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

//! The same shape of load through NATS, the latency to beat
//! (`broker-load nats URL PEERS MESSAGES RATE core|jetstream`).
//!
//! PEERS connections, one per peer, each subscribed to its own subject;
//! each sends MESSAGES messages of [`PAYLOAD_BYTES`] (about the size of one
//! of our sealed direct messages on the wire) to random others, at most
//! RATE a second (0: as fast as it goes), from the same kind of tokio
//! generator as our own load, in the same process shape.
//!
//! - `core`: plain publishes. NATS keeps nothing: a message for a peer who
//!   is not connected is gone, which our broker never allows. The floor.
//! - `jetstream`: a stream with file storage captures every subject, and
//!   each sender waits for the stream's acknowledgement before its next
//!   send (closed loop, like waiting for our `sent`: the message is stored).
//!   Receivers read through core subscriptions, so a message may reach them
//!   before it is acknowledged, which ours never does.
//!
//! Latency is publish → receipt in the receiving task.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes per message: our envelope for a short direct message (JSON with
/// the ciphertext, nonce, key box and sender) is about this size.
const PAYLOAD_BYTES: usize = 600;
const STREAM: &str = "CLAUDEMESH_BENCH";

pub async fn load(
    url: &str,
    peers: usize,
    messages: usize,
    rate: f64,
    jetstream: bool,
) -> Result<Value, BoxError> {
    let mut clients = Vec::with_capacity(peers);
    for _ in 0..peers {
        clients.push(async_nats::connect(url).await?);
    }
    let js = async_nats::jetstream::new(clients[0].clone());
    if jetstream {
        // A fresh stream each run: nothing left over from the last.
        let _ = js.delete_stream(STREAM).await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec!["bench.>".to_owned()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    }
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let mut subscription = client.subscribe(format!("bench.peer.{i}")).await?;
        let received = Arc::clone(&received);
        let mut stopping = stopping.clone();
        receivers.push(tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut latencies = Vec::new();
            loop {
                let message = tokio::select! {
                    message = subscription.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                    _ = stopping.changed() => break,
                };
                let sent_ns = message
                    .payload
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes);
                let now_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                latencies.push(now_ns.saturating_sub(sent_ns));
                received.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    for client in &clients {
        client.flush().await?;
    }

    let acked = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, acked) = (client.clone(), Arc::clone(&acked));
        let js = async_nats::jetstream::new(client.clone());
        senders.push(tokio::spawn(async move {
            let mut pace = (rate > 0.0).then(|| {
                let period = Duration::from_secs_f64(1.0 / rate);
                let offset = period.mul_f64(crate::random::random_below(1000) as f64 / 1000.0);
                tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
            });
            let mut ack_latencies = Vec::with_capacity(messages);
            for _ in 0..messages {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                let mut to = crate::random::random_below(peers - 1);
                if to >= i {
                    to += 1;
                }
                let mut payload = vec![0u8; PAYLOAD_BYTES];
                let sent = start.elapsed();
                let sent_ns = u64::try_from(sent.as_nanos()).unwrap_or(u64::MAX);
                payload[..8].copy_from_slice(&sent_ns.to_le_bytes());
                let subject = format!("bench.peer.{to}");
                if jetstream {
                    let stored = match js.publish(subject, payload.into()).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    };
                    if stored {
                        acked.fetch_add(1, Ordering::Relaxed);
                        ack_latencies.push(start.elapsed().saturating_sub(sent));
                    }
                } else if client.publish(subject, payload.into()).await.is_ok() {
                    acked.fetch_add(1, Ordering::Relaxed);
                    if pace.is_some() {
                        // Paced: each message goes out now, as ours does.
                        let _ = client.flush().await;
                    }
                }
            }
            let _ = client.flush().await;
            ack_latencies
        }));
    }
    let mut ack_latencies = Vec::new();
    for sender in senders {
        ack_latencies.extend(sender.await?);
    }
    let sent_in = start.elapsed();
    let mut last = (received.load(Ordering::Relaxed), Instant::now());
    while received.load(Ordering::Relaxed) < acked.load(Ordering::Relaxed)
        && last.1.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let elapsed = start.elapsed();
    if jetstream {
        let _ = js.delete_stream(STREAM).await;
    }
    let _ = stop.send(true);
    let mut latencies = Vec::new();
    for receiver in receivers {
        latencies.extend(receiver.await?);
    }
    drop(clients);
    latencies.sort_unstable();
    ack_latencies.sort_unstable();
    let pct = |sorted: &[u64], p: f64| {
        sorted
            .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
            .map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    let ack_ns: Vec<u64> = ack_latencies
        .iter()
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .collect();
    let acked = acked.load(Ordering::Relaxed);
    let delivered = received.load(Ordering::Relaxed);
    Ok(json!({
        "system": if jetstream { "nats-jetstream" } else { "nats-core" },
        "peers": peers,
        "messages_per_peer": messages,
        "rate_per_peer": rate,
        "acked": acked,
        "delivered": delivered,
        "lost": acked.saturating_sub(delivered),
        "seconds": elapsed.as_secs_f64(),
        "send_seconds": sent_in.as_secs_f64(),
        "delivered_per_second": delivered as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(&latencies, 0.50),
        "p99_ms": pct(&latencies, 0.99),
        "max_ms": pct(&latencies, 1.0),
        "ack_p50_ms": pct(&ack_ns, 0.50),
        "ack_p99_ms": pct(&ack_ns, 0.99),
    }))
}

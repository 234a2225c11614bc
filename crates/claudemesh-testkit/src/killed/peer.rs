//! One peer of the load: a session kept up across drops the way the MCP
//! link keeps one (`claudemesh-cli`'s `mcp/link.rs`). The same session key
//! on every connection, so what waits for it is delivered when it is back;
//! after a drop, a jittered wait ([`Backoff`]) and a new connection through
//! the forwarder; a message whose `sent` never came is sent again as the
//! same [`Outgoing`] (the same id, which the broker stores once); and each
//! message shown once, by id across connections ([`SeenIds`]).
//!
//! Each message's text names its sender and number (`3#17`), so the same
//! message shown under two ids would be seen too.

use claudemesh_api::broker::{BrokerErrorCode, MessageKind, Priority};
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{
    Backoff, Client, ClientError, Event, Outgoing, Presence, Received, Resolved, SeenIds,
    SessionIdentity,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// A refusal worth another try of the same message shortly (a recipient
/// between two instances, a store that failed under the kill).
const RETRY_SEND_AFTER: Duration = Duration::from_millis(100);

/// Who a peer is.
pub struct Spec {
    pub index: usize,
    pub mesh_id: String,
    pub member: KeyPair,
    /// Kept for the whole run, as a launched session keeps its own.
    pub session: KeyPair,
}

/// What the peers share with the run that watches them.
pub struct Shared {
    /// The forwarder.
    pub url: String,
    /// Every peer's session key, by index: whom they write to.
    pub session_keys: Vec<String>,
    /// Messages a second, per peer.
    pub rate: f64,
    /// When to stop sending (`None` until the load starts).
    pub send_until: watch::Receiver<Option<Instant>>,
    /// Set when the run is over: close and report.
    pub stop: watch::Receiver<bool>,
    /// Peers connected at least once.
    pub connected: AtomicUsize,
    /// Peers still sending (or with a message not yet acknowledged).
    pub sending: AtomicUsize,
    /// Messages the broker acknowledged (`sent`), all peers.
    pub acked: AtomicUsize,
    /// Messages shown for the first time, all peers.
    pub shown: AtomicUsize,
}

/// What one peer did and saw.
#[derive(Default)]
pub struct Record {
    /// Each message the broker acknowledged: its id and recipient (index).
    pub acked: Vec<(String, usize)>,
    /// The ids of the messages shown.
    pub shown: HashSet<String>,
    /// Messages shown a second time: an id again (forgotten by the
    /// dedupe), or a sender and number already shown under another id.
    pub shown_twice: usize,
    /// Copies the broker sent again after a reconnect, hidden by the dedupe.
    pub redelivered: usize,
    /// Messages the client refused to show (failed checks).
    pub rejected: Vec<String>,
    /// Refusals and errors that are no part of an instance dying.
    pub failures: Vec<String>,
    /// Sends tried again after `unknown_recipient` or `internal`.
    pub retried_sends: usize,
    /// Messages sent again on a new connection, their `sent` lost with the
    /// old one.
    pub resent: usize,
    /// When each connection ended.
    pub drops: Vec<Instant>,
    /// For each reconnect: from the drop to the broker's welcome.
    pub back_after: Vec<Duration>,
    /// Dropped and not back when the run ended: since when.
    pub still_out: Option<Instant>,
}

/// Runs the peer until the run says stop.
pub async fn run(spec: Spec, shared: Arc<Shared>) -> Record {
    let mut record = Record::default();
    let mut inbox = Inbox::default();
    let mut outbox = Outbox::new(shared.rate);
    let mut backoff = Backoff::reconnecting();
    let mut stop = shared.stop.clone();
    let mut dropped_at: Option<Instant> = None;
    let mut first = true;
    'session: loop {
        let identity = SessionIdentity::with_session(
            &spec.mesh_id,
            copy(&spec.member),
            copy(&spec.session),
            now_ms() + 3_600_000,
        );
        let presence = Presence {
            display_name: format!("peer{}", spec.index),
            ..Presence::default()
        };
        let connected = tokio::select! {
            connected = Client::connect(&shared.url, identity, presence) => connected,
            _ = stop.wait_for(|stop| *stop) => break 'session,
        };
        let client = match connected {
            Ok(client) => client,
            Err(err) => {
                if matches!(err, ClientError::Refused { .. }) {
                    record.failures.push(format!("connect: {err}"));
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => continue 'session,
                    _ = stop.wait_for(|stop| *stop) => break 'session,
                }
            }
        };
        if let Some(at) = dropped_at.take() {
            record.back_after.push(at.elapsed());
        }
        if first {
            first = false;
            shared.connected.fetch_add(1, Ordering::SeqCst);
        }
        backoff.reset();
        let stopped = tokio::select! {
            () = receive(&client, &mut inbox, &shared) => false,
            () = send(&client, &spec, &mut outbox, &shared) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if stopped {
            close(&client).await;
            break;
        }
        let now = Instant::now();
        record.drops.push(now);
        dropped_at = Some(now);
        tokio::select! {
            () = tokio::time::sleep(backoff.next_wait()) => {}
            _ = stop.wait_for(|stop| *stop) => break 'session,
        }
    }
    record.still_out = dropped_at;
    record.acked = outbox.acked;
    record.failures.extend(outbox.failures);
    record.retried_sends = outbox.retried;
    record.resent = outbox.resent;
    record.shown = inbox.shown;
    record.shown_twice = inbox.shown_twice;
    record.redelivered = inbox.redelivered;
    record.rejected = inbox.rejected;
    record
}

/// Closes politely (acknowledging what arrived) and waits for the close.
async fn close(client: &Client) {
    client.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(event) = client.next_event().await {
            if matches!(event, Event::Closed { .. }) {
                break;
            }
        }
    })
    .await;
}

#[derive(Default)]
struct Inbox {
    /// What a real client remembers to show each message once.
    seen: SeenIds,
    shown: HashSet<String>,
    /// (sender, number) of each message shown.
    shown_texts: HashSet<String>,
    shown_twice: usize,
    redelivered: usize,
    rejected: Vec<String>,
}

impl Inbox {
    fn take(&mut self, message: Received, shared: &Shared) {
        if !self.seen.first_time(&message.id) {
            self.redelivered += 1;
            return;
        }
        let new_id = self.shown.insert(message.id);
        let new_text = self.shown_texts.insert(message.text);
        if new_id && new_text {
            shared.shown.fetch_add(1, Ordering::SeqCst);
        } else {
            self.shown_twice += 1;
        }
    }
}

/// Receives until the connection ends.
async fn receive(client: &Client, inbox: &mut Inbox, shared: &Shared) {
    while let Some(event) = client.next_event().await {
        match event {
            Event::Message(message) => inbox.take(message, shared),
            Event::Rejected { id, reason } => inbox.rejected.push(format!("{id}: {reason}")),
            Event::Closed { .. } => return,
            _ => {}
        }
    }
}

struct Outbox {
    /// The paced sends; ticks missed while disconnected are skipped, as a
    /// person waiting for the connection does not type faster after.
    pace: tokio::time::Interval,
    /// Sealed and sent, no `sent` yet: sent again, as is, until answered.
    pending: Option<(Outgoing, usize)>,
    number: u64,
    acked: Vec<(String, usize)>,
    failures: Vec<String>,
    retried: usize,
    resent: usize,
    done: bool,
}

impl Outbox {
    fn new(rate: f64) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate);
        // Each peer starts at a random point of its period, so the sends
        // spread out instead of arriving together.
        let offset = period.mul_f64(random_below(1_000) as f64 / 1_000.0);
        let mut pace = tokio::time::interval_at(Instant::now() + offset, period);
        pace.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Self {
            pace,
            pending: None,
            number: 0,
            acked: Vec::new(),
            failures: Vec::new(),
            retried: 0,
            resent: 0,
            done: false,
        }
    }
}

/// Sends at the pace until the load ends (then waits for the connection to
/// end or the run to stop); returns when the connection is gone.
async fn send(client: &Client, spec: &Spec, outbox: &mut Outbox, shared: &Shared) {
    let mut send_until = shared.send_until.clone();
    let until = send_until
        .wait_for(Option::is_some)
        .await
        .map(|until| (*until).unwrap_or_else(Instant::now));
    let Ok(until) = until else {
        // The run is gone: nothing more to send.
        return std::future::pending().await;
    };
    if outbox.pending.is_some() {
        outbox.resent += 1;
    }
    loop {
        if outbox.pending.is_none() {
            if outbox.done || Instant::now() >= until {
                if !outbox.done {
                    outbox.done = true;
                    shared.sending.fetch_sub(1, Ordering::SeqCst);
                }
                return std::future::pending().await;
            }
            outbox.pace.tick().await;
            if Instant::now() >= until {
                continue;
            }
            let to = recipient(spec.index, shared.session_keys.len());
            outbox.number += 1;
            let resolved = Resolved {
                kind: MessageKind::Direct,
                group: None,
                keys: vec![shared.session_keys[to].clone()],
                waits: false,
                sessions: 1,
            };
            let text = format!("{}#{}", spec.index, outbox.number);
            match client.seal(&resolved, &text, Priority::Now) {
                Ok(outgoing) if outgoing.id.is_some() => outbox.pending = Some((outgoing, to)),
                Ok(_) => {
                    outbox
                        .failures
                        .push("the broker does not take client-chosen ids".into());
                    continue;
                }
                Err(err) => {
                    outbox.failures.push(format!("seal: {err}"));
                    continue;
                }
            }
        }
        let Some((outgoing, to)) = &outbox.pending else {
            continue;
        };
        match client.send_sealed(outgoing).await {
            Ok(sent) => {
                outbox.acked.push((sent.id, *to));
                shared.acked.fetch_add(1, Ordering::SeqCst);
                outbox.pending = None;
            }
            // Gone with the connection: sent again on the next one.
            Err(ClientError::Connection(_)) => return,
            Err(ClientError::Refused {
                code: BrokerErrorCode::UnknownRecipient | BrokerErrorCode::Internal,
                ..
            }) => {
                outbox.retried += 1;
                tokio::time::sleep(RETRY_SEND_AFTER).await;
            }
            Err(err) => {
                outbox.failures.push(format!("send: {err}"));
                outbox.pending = None;
            }
        }
    }
}

/// Anyone but `me`, at random.
fn recipient(me: usize, peers: usize) -> usize {
    let to = random_below(peers - 1);
    if to >= me { to + 1 } else { to }
}

/// A uniform number in `0..n` (`n` > 0).
fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random");
    usize::try_from(u64::from_le_bytes(bytes) % n as u64).unwrap_or(0)
}

fn copy(key: &KeyPair) -> KeyPair {
    KeyPair::from_secret_hex(&key.secret_hex()).expect("a key pair copies")
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

//! Instances killed under load: several instances of the server binary on
//! one PostgreSQL database behind a round-robin [`Forwarder`], peers of one
//! mesh sending each other direct messages at a steady pace, and one
//! instance SIGKILLed at a fixed interval and started again at once (as a
//! supervisor would), each in turn. The peers reconnect as the MCP link
//! does (see `peer`). The [`Report`] says what was acknowledged, what was
//! shown, what was lost or shown twice, and how long the sessions were out.
//!
//! The server's tests run it short and assert on the report; the bench
//! (`bench/kill.sh`) runs it for minutes and prints it.

mod accounts;
mod peer;

use crate::forward::Forwarder;
use crate::instances::Instances;
use claudemesh_api::e2e::KeyPair;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long the peers get to connect before the load starts.
const CONNECT_WITHIN: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sessions in the mesh, one member each (at least two).
    pub peers: usize,
    /// Messages a second, per peer.
    pub rate: f64,
    /// How long the peers send.
    pub load_for: Duration,
    /// An instance is killed this often during the load, the first after
    /// one interval.
    pub kill_every: Duration,
    /// After the load, how long the last messages get to arrive.
    pub drain_within: Duration,
}

/// One kill.
#[derive(Debug, Clone)]
pub struct Kill {
    pub instance: usize,
    /// Since the load started.
    pub at: Duration,
    /// Until the instance answered again.
    pub down_for: Duration,
    /// Connections that ended from this kill until the next.
    pub dropped: usize,
}

/// What the peers saw.
#[derive(Debug, Clone)]
pub struct Report {
    pub mesh_id: String,
    pub peers: usize,
    /// The ids of the messages the broker acknowledged (`sent`).
    pub acked: Vec<String>,
    /// Acknowledged messages shown to their recipient.
    pub delivered: usize,
    /// Acknowledged messages never shown to their recipient (their ids).
    pub lost: Vec<String>,
    /// Messages shown twice to someone (by id, or the same message under
    /// two ids).
    pub shown_twice: usize,
    /// Copies sent again after a reconnect and hidden by the client's
    /// dedupe, as they should be.
    pub redelivered: usize,
    /// Messages the clients refused to show, with why.
    pub rejected: Vec<String>,
    /// Refusals and errors that are no part of an instance dying.
    pub failures: Vec<String>,
    /// Sends tried again after `unknown_recipient` or `internal`.
    pub retried_sends: usize,
    /// Messages sent again on a new connection (same id), their `sent`
    /// lost with the old one.
    pub resent: usize,
    /// Each reconnect, from the drop to the broker's welcome, shortest first.
    pub reconnects: Vec<Duration>,
    /// Sessions out when the run ended.
    pub still_out: usize,
    pub kills: Vec<Kill>,
    /// From the end of the load until everything acknowledged was shown.
    pub drained_in: Duration,
}

impl Report {
    /// The `p`-quantile (0 to 1) of the reconnect times.
    pub fn reconnect_quantile(&self, p: f64) -> Duration {
        let last = self.reconnects.len().saturating_sub(1);
        let at = ((self.reconnects.len() as f64 * p) as usize).min(last);
        self.reconnects.get(at).copied().unwrap_or_default()
    }
}

/// Runs the plan on `instances` (started with [`Instances::start`]), which
/// are left running: what they stored can be checked before they stop.
pub async fn run(instances: &mut Instances, plan: Plan) -> Report {
    assert!(plan.peers >= 2, "peers write to each other");
    let mesh = accounts::mesh(&instances.url(0), plan.peers).await;
    let forwarder = Forwarder::start(instances.addrs())
        .await
        .expect("the forwarder listens");

    let sessions: Vec<KeyPair> = (0..plan.peers)
        .map(|_| KeyPair::generate().expect("a key pair"))
        .collect();
    let (send_until, send_until_rx) = watch::channel(None);
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(peer::Shared {
        url: forwarder.url(),
        session_keys: sessions.iter().map(KeyPair::public_hex).collect(),
        rate: plan.rate,
        send_until: send_until_rx,
        stop: stop_rx,
        connected: AtomicUsize::new(0),
        sending: AtomicUsize::new(plan.peers),
        acked: AtomicUsize::new(0),
        shown: AtomicUsize::new(0),
    });
    let mut peers = Vec::new();
    for (index, (member, session)) in mesh.keys.into_iter().zip(sessions).enumerate() {
        let spec = peer::Spec {
            index,
            mesh_id: mesh.id.clone(),
            member,
            session,
        };
        peers.push(tokio::spawn(peer::run(spec, Arc::clone(&shared))));
    }
    let connecting = Instant::now();
    while shared.connected.load(Ordering::SeqCst) < plan.peers {
        assert!(
            connecting.elapsed() < CONNECT_WITHIN,
            "the peers did not all connect within {CONNECT_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let load_ends = started + plan.load_for;
    send_until.send_replace(Some(load_ends));
    let mut kills = Vec::new();
    let mut next_kill = started + plan.kill_every;
    while next_kill < load_ends {
        tokio::time::sleep_until(next_kill).await;
        let instance = kills.len() % instances.len();
        let at = started.elapsed();
        instances.kill(instance);
        instances.restart(instance).await;
        kills.push(Kill {
            instance,
            at,
            down_for: started.elapsed() - at,
            dropped: 0,
        });
        next_kill += plan.kill_every;
    }
    tokio::time::sleep_until(load_ends).await;

    // Every sender done (its last message acknowledged), and every
    // acknowledged message shown; or the time is up and the rest is lost.
    let draining = Instant::now();
    while draining.elapsed() < plan.drain_within
        && (shared.sending.load(Ordering::SeqCst) > 0
            || shared.shown.load(Ordering::SeqCst) < shared.acked.load(Ordering::SeqCst))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = draining.elapsed();
    stop.send_replace(true);
    let mut records = Vec::new();
    for peer in peers {
        records.push(peer.await.expect("a peer runs to the end"));
    }
    drop(forwarder);
    tally(mesh.id, plan.peers, records, kills, started, drained_in)
}

fn tally(
    mesh_id: String,
    peers: usize,
    records: Vec<peer::Record>,
    mut kills: Vec<Kill>,
    started: Instant,
    drained_in: Duration,
) -> Report {
    let mut report = Report {
        mesh_id,
        peers,
        acked: Vec::new(),
        delivered: 0,
        lost: Vec::new(),
        shown_twice: 0,
        redelivered: 0,
        rejected: Vec::new(),
        failures: Vec::new(),
        retried_sends: 0,
        resent: 0,
        reconnects: Vec::new(),
        still_out: 0,
        kills: Vec::new(),
        drained_in,
    };
    for record in &records {
        for (id, to) in &record.acked {
            if records[*to].shown.contains(id) {
                report.delivered += 1;
            } else {
                report.lost.push(id.clone());
            }
            report.acked.push(id.clone());
        }
        report.shown_twice += record.shown_twice;
        report.redelivered += record.redelivered;
        report.rejected.extend(record.rejected.iter().cloned());
        report.failures.extend(record.failures.iter().cloned());
        report.retried_sends += record.retried_sends;
        report.resent += record.resent;
        report.reconnects.extend(&record.back_after);
        if let Some(out_since) = record.still_out {
            report.still_out += 1;
            // Out until the end: at least this long, and counted as such.
            report.reconnects.push(out_since.elapsed());
        }
        for drop in &record.drops {
            let since_start = drop.saturating_duration_since(started);
            // The kill before it (drops come after their kill).
            if let Some(kill) = kills.iter_mut().rev().find(|k| k.at <= since_start) {
                kill.dropped += 1;
            }
        }
    }
    report.reconnects.sort_unstable();
    report.kills = kills;
    report
}

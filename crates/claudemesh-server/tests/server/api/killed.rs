//! Instances killed under load (issue 19, item 5): three instances of the
//! real server binary on one PostgreSQL database behind a round-robin
//! forwarder, eight peers sending each other direct messages at a steady
//! pace, one instance SIGKILLed every 5 s and started again at once. The
//! peers reconnect as the MCP link does (jittered backoff, the same session
//! key, a message with no `sent` sent again under its id; see the testkit's
//! `killed`). Every message the broker acknowledged reaches its recipient,
//! none is shown twice, none is stored twice, and every session comes back.
//!
//! How fast they come back is the bench's to measure (`bench/kill.sh`, two
//! minutes): here the bound is one a person would notice, not a timing.

use claudemesh_testkit::instances::{Instances, Settings};
use claudemesh_testkit::killed::{self, Plan, Report};
use claudemesh_testkit::{Engine, TestServer};
use std::collections::HashSet;
use std::time::Duration;

/// Out for this long, a person would say the session was lost.
const BACK_WITHIN: Duration = Duration::from_secs(10);

/// The instances tell each other through the database's NOTIFY…
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_killed_under_load() {
    killed_under_load(&[]).await;
}

/// …or through NATS: the same run on `--bus nats://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_killed_under_load_on_a_nats_bus() {
    let bus = claudemesh_testkit::nats::bus_url();
    killed_under_load(&["--bus", &bus]).await;
}

/// One run at a time: each is three server processes under load, and two
/// at once on a 2-core machine (beside the rest of the tests) would test
/// the machine more than the broker.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The run, with `extra_args` on every instance's command line.
async fn killed_under_load(extra_args: &[&str]) {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A fresh database, migrated by the server in this process, which then
    // stops: the instances are processes of their own.
    let mut server = TestServer::start(Engine::Postgres).await;
    server.stop().await;
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        binary: env!("CARGO_BIN_EXE_claudemesh-server").into(),
        database_url: server.config().database_url.clone().unwrap(),
        data_root: data.path().to_owned(),
        extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
    };
    let mut instances = Instances::start(settings, 3).await;
    let plan = Plan {
        peers: 8,
        rate: 5.0,
        load_for: Duration::from_secs(22),
        kill_every: Duration::from_secs(5),
        drain_within: Duration::from_secs(20),
    };
    let report = killed::run(&mut instances, plan).await;
    let summary = summary(&report);
    eprintln!("{summary}");

    // Four kills, each instance at least once, and they dropped sessions:
    // otherwise nothing here was tested.
    assert_eq!(report.kills.len(), 4, "{summary}");
    let dropped: usize = report.kills.iter().map(|k| k.dropped).sum();
    assert!(dropped > 0, "no kill dropped a session: {summary}");
    assert!(report.acked.len() > 100, "{summary}");

    assert!(
        report.lost.is_empty(),
        "acknowledged, never shown: {summary}"
    );
    assert_eq!(report.shown_twice, 0, "{summary}");
    assert!(report.rejected.is_empty(), "{summary}");
    assert!(report.failures.is_empty(), "{summary}");
    assert_eq!(report.still_out, 0, "sessions not back: {summary}");
    let slowest = report.reconnects.last().copied().unwrap_or_default();
    assert!(slowest < BACK_WITHIN, "{summary}");

    // Stored once each: the messages in the database are the acknowledged
    // ones (a resend stored under a new id would be one more).
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM broker_messages WHERE mesh_id = $1")
            .bind(&report.mesh_id)
            .fetch_all(server.state().pool())
            .await
            .unwrap();
    let stored: HashSet<String> = stored.into_iter().map(|(id,)| id).collect();
    let acked: HashSet<String> = report.acked.iter().cloned().collect();
    assert_eq!(acked.len(), report.acked.len(), "an id acknowledged twice");
    assert_eq!(stored, acked, "{summary}");
    // And each recipient acknowledged what it was shown: nothing waits
    // (once the instances have read the last acknowledgements).
    let mut waiting = i64::MAX;
    for _ in 0..100 {
        (waiting,) = sqlx::query_as(
            "SELECT COUNT(*) FROM broker_deliveries d \
             JOIN broker_messages m ON m.id = d.message_id \
             WHERE m.mesh_id = $1 AND d.delivered_at IS NULL",
        )
        .bind(&report.mesh_id)
        .fetch_one(server.state().pool())
        .await
        .unwrap();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(waiting, 0, "deliveries never acknowledged: {summary}");
    drop(instances);
}

fn summary(report: &Report) -> String {
    let kills: Vec<String> = report
        .kills
        .iter()
        .map(|k| {
            format!(
                "instance {} at {:.1?} (down {:.1?}, {} dropped)",
                k.instance, k.at, k.down_for, k.dropped
            )
        })
        .collect();
    format!(
        "acked {}, delivered {}, lost {}, shown twice {}, redelivered {}, \
         rejected {:?}, failures {:?}, retried sends {}, resent {}, reconnects {} \
         (p50 {:.0?}, max {:.0?}), still out {}, drained in {:.1?}; kills: {}",
        report.acked.len(),
        report.delivered,
        report.lost.len(),
        report.shown_twice,
        report.redelivered,
        report.rejected,
        report.failures,
        report.retried_sends,
        report.resent,
        report.reconnects.len(),
        report.reconnect_quantile(0.5),
        report.reconnects.last().copied().unwrap_or_default(),
        report.still_out,
        report.drained_in,
        kills.join("; "),
    )
}

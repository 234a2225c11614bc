//! `broker-load kill BIN DATABASE_URL DIR INSTANCES PEERS RATE SECONDS
//! KILL_EVERY [SERVER_ARGS…]`: instances killed under load (see
//! `bench/kill.sh`, which builds, makes the database and prints the table).
//!
//! INSTANCES processes of the server binary BIN on the fresh PostgreSQL
//! database DATABASE_URL (data and logs under DIR), behind a round-robin
//! forwarder; PEERS sessions of one mesh send each other direct messages,
//! RATE a second each, for SECONDS; every KILL_EVERY seconds one instance,
//! each in turn, is SIGKILLed and started again at once. The sessions
//! reconnect as the MCP link does (jittered backoff, the same session key, a
//! message without `sent` sent again under its id). The run is the
//! testkit's (`claudemesh_testkit::killed`), the one the server's test runs
//! short. Ends with one JSON line: acknowledged, delivered, lost, shown
//! twice, reconnect times, and each kill.

use claudemesh_testkit::instances::{Instances, Settings};
use claudemesh_testkit::killed::{self, Plan};
use serde_json::json;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str =
    "usage: broker-load kill BIN DATABASE_URL DIR INSTANCES PEERS RATE SECONDS KILL_EVERY [ARGS…]";

/// `args`: what follows `kill` on the command line.
pub async fn run(args: &[String]) -> Result<(), BoxError> {
    let [
        binary,
        database_url,
        dir,
        instances,
        peers,
        rate,
        seconds,
        kill_every,
        extra @ ..,
    ] = args
    else {
        return Err(USAGE.into());
    };
    let count: usize = instances.parse()?;
    let plan = Plan {
        peers: peers.parse()?,
        rate: rate.parse()?,
        load_for: Duration::from_secs_f64(seconds.parse()?),
        kill_every: Duration::from_secs_f64(kill_every.parse()?),
        drain_within: Duration::from_secs(60),
    };
    if count == 0 || plan.peers < 2 || plan.rate <= 0.0 || plan.kill_every.is_zero() {
        return Err(USAGE.into());
    }
    let settings = Settings {
        binary: binary.into(),
        database_url: database_url.clone(),
        data_root: dir.into(),
        extra_args: extra.to_vec(),
    };
    let mut instances = Instances::start(settings, count).await;
    eprintln!(
        "[broker-load] {count} instances; {} peers at {}/s each for {:?}, one instance SIGKILLed every {:?}",
        plan.peers, plan.rate, plan.load_for, plan.kill_every
    );
    let report = killed::run(&mut instances, plan.clone()).await;
    drop(instances);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let kills: Vec<_> = report
        .kills
        .iter()
        .map(|k| {
            json!({
                "instance": k.instance,
                "at_s": k.at.as_secs_f64(),
                "down_ms": ms(k.down_for),
                "dropped": k.dropped,
            })
        })
        .collect();
    let result = json!({
        "instances": count,
        "peers": plan.peers,
        "rate_per_peer": plan.rate,
        "seconds": plan.load_for.as_secs_f64(),
        "kill_every_s": plan.kill_every.as_secs_f64(),
        "acked": report.acked.len(),
        "delivered": report.delivered,
        "lost": report.lost.len(),
        "shown_twice": report.shown_twice,
        "redelivered_hidden": report.redelivered,
        "rejected": report.rejected.len(),
        "failures": report.failures,
        "retried_sends": report.retried_sends,
        "resent": report.resent,
        "reconnects": report.reconnects.len(),
        "reconnect_p50_ms": ms(report.reconnect_quantile(0.50)),
        "reconnect_p99_ms": ms(report.reconnect_quantile(0.99)),
        "reconnect_max_ms": ms(report.reconnects.last().copied().unwrap_or_default()),
        "still_out": report.still_out,
        "drained_in_s": report.drained_in.as_secs_f64(),
        "kills": kills,
        "mesh_id": report.mesh_id,
    });
    println!("{result}");
    Ok(())
}

//! Load for the broker, against a running `claudemesh-server` (see
//! `bench/broker.sh`, which starts one per engine with the limits lifted).
//!
//! `broker-load load URL PID PEERS MESSAGES [RATE]`: PEERS sessions of
//! PEERS accounts in one mesh; each sends MESSAGES direct messages to random
//! others, each waiting for the broker's `sent` before the next (closed
//! loop; with RATE, at most RATE a second per peer, which measures latency
//! at a given load rather than at saturation), while every session decrypts
//! what it receives. Prints delivered
//! messages per second, send-to-decrypted latency, lost and duplicated
//! counts, and the server's RSS. With `BROKER_LOAD_GRANTS=1` every peer
//! first revokes `group` from the next one (a ring), so the broker's
//! in-memory grants are not all the default while the direct messages flow
//! (each send is still checked against them).
//!
//! With `BROKER_LOAD_EXTRA=stopped` one more member joins, in a process
//! of its own that is stopped with SIGSTOP once connected, and every 10th
//! message of each peer goes to it, padded to `BROKER_LOAD_EXTRA_PAD`
//! characters (15,000): a slow consumer among the others, whose latency is
//! still what is measured. `BROKER_LOAD_EXTRA=running` is the same without
//! the stop, to compare with. At the end the consumer is continued and
//! says how many of its messages it got (see `stalled.rs`).
//!
//! With `BROKER_LOAD_URLS=URL2,URL3` (other instances on the same
//! database), peer i connects to the i-th instance modulo their number.
//!
//! Before the measured messages every peer sends one to each other peer
//! and waits until it has got theirs (`BROKER_LOAD_WARM=0` skips this): a
//! session's first message to or from a peer derives the pair's key and
//! checks the peer's attestation (about 0.3 ms of CPU each, 9,900 pairs for
//! 100 peers), which otherwise falls on the first seconds of the run and
//! measures the start-up of the clients rather than the broker.
//!
//! `broker-load idle URL PID SESSIONS PER_MESH`: SESSIONS idle sessions of
//! one account spread over meshes of PER_MESH; prints the server's RSS.
//! With `BROKER_LOAD_AT_ONCE=1` all of them connect in the same moment
//! (failures counted); with `BROKER_LOAD_SPREAD=N` session j connects to
//! 127.0.0.(1 + j mod N), past loopback's ~28,000 ports per address.
//!
//! `broker-load nats URL PEERS MESSAGES RATE core|jetstream`: the same
//! shape of load through NATS (see `nats.rs`), for the side-by-side table.
//!
//! All end with one JSON line for scripts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark: a failure stops the run"
)]

use claudemesh_api::broker::{MessageKind, Priority};
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{Event, Resolved};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod kill;
mod nats;
mod random;
mod session;
mod stalled;

use random::random_below;
use session::connect;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("kill") {
        return kill::run(&args[2..]).await;
    }
    if args.get(1).map(String::as_str) == Some("nats") {
        let usage = "usage: broker-load nats URL PEERS MESSAGES RATE core|jetstream";
        let [_, _, url, peers, messages, rate, mode] = args.as_slice() else {
            return Err(usage.into());
        };
        let jetstream = match mode.as_str() {
            "core" => false,
            "jetstream" => true,
            _ => return Err(usage.into()),
        };
        let result = nats::load(
            url,
            peers.parse()?,
            messages.parse()?,
            rate.parse()?,
            jetstream,
        )
        .await?;
        println!("{result}");
        return Ok(());
    }
    if args.get(1).map(String::as_str) == Some("extra") {
        let [_, _, url, mesh_id, secret_hex] = args.as_slice() else {
            return Err("usage: broker-load extra URL MESH_ID MEMBER_SECRET_HEX".into());
        };
        return stalled::run(url, mesh_id, secret_hex).await;
    }
    let usage =
        "usage: broker-load load URL PID PEERS MESSAGES [RATE] | idle URL PID SESSIONS PER_MESH";
    if !(6..=7).contains(&args.len()) {
        return Err(usage.into());
    }
    let rate: f64 = args.get(6).map_or(Ok(0.0), |r| r.parse())?;
    let (url, pid) = (args[2].clone(), args[3].parse::<u32>()?);
    let (a, b) = (args[4].parse::<usize>()?, args[5].parse::<usize>()?);
    match args[1].as_str() {
        "load" => load(&url, pid, a, b, rate).await,
        "idle" => idle(&url, pid, a, b).await,
        _ => Err(usage.into()),
    }
}

/// The server's resident and peak memory, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An account with a cookie session, as a browser would have.
struct Account {
    http: reqwest::Client,
    url: String,
}

impl Account {
    async fn register(url: &str, name: &str) -> Result<Self, BoxError> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, url.parse()?);
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .build()?;
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix)?;
        let email = format!(
            "{name}.{}@bench.example",
            u64::from_le_bytes([
                suffix[0], suffix[1], suffix[2], suffix[3], suffix[4], suffix[5], 0, 0
            ])
        );
        let account = Self {
            http,
            url: url.to_owned(),
        };
        account
            .post(
                "/api/auth/register",
                json!({ "email": email, "password": "correct horse battery staple", "name": name }),
            )
            .await?;
        Ok(account)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, BoxError> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, BoxError> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}").into());
        }
        Ok(body)
    }

    /// Creates a mesh with this key; its id and slug.
    async fn create_mesh(&self, name: &str, key: &KeyPair) -> Result<(String, String), BoxError> {
        let mesh = self
            .post(
                "/api/my/meshes",
                json!({ "name": name, "public_key": key.public_hex() }),
            )
            .await?;
        Ok((
            mesh["id"].as_str().unwrap_or_default().to_owned(),
            mesh["slug"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}

/// Peer i revokes `group` from peer i+1 (the last from the first): one
/// non-default grant per peer. Returns how many were set.
async fn revoke_group_in_a_ring(accounts: &[Account], slug: &str) -> Result<usize, BoxError> {
    let mesh = accounts[0]
        .request(
            reqwest::Method::GET,
            &format!("/api/my/meshes/{slug}"),
            None,
        )
        .await?;
    let id_of = |i: usize| {
        let name = format!("peer{i}");
        mesh["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["display_name"] == name.as_str())
            .and_then(|m| m["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("no member {name}"))
    };
    for (i, account) in accounts.iter().enumerate() {
        let next = id_of((i + 1) % accounts.len())?;
        account
            .request(
                reqwest::Method::PATCH,
                &format!("/api/my/meshes/{slug}/grants/{next}"),
                Some(json!({ "grant": [], "revoke": ["group"] })),
            )
            .await?;
    }
    eprintln!("[broker-load] every peer revoked `group` from the next");
    Ok(accounts.len())
}

/// A direct message to one connected session.
fn direct_to(session_key: String) -> Resolved {
    Resolved {
        kind: MessageKind::Direct,
        group: None,
        keys: vec![session_key],
        waits: false,
        sessions: 1,
    }
}

/// Every peer sends one message to each other peer, and every peer waits
/// until it has got one from each other (see the module's documentation).
async fn warm_up(
    clients: &[Arc<claudemesh_client::Client>],
    keys: &[String],
) -> Result<(), BoxError> {
    let started = Instant::now();
    let others = clients.len() - 1;
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (sender, receiver) = (Arc::clone(client), Arc::clone(client));
        let to: Vec<String> = keys
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, key)| key.clone())
            .collect();
        tasks.push(tokio::spawn(async move {
            for key in to {
                sender
                    .send_resolved(&direct_to(key), "warm-up", Priority::Now)
                    .await
                    .map_err(|err| err.to_string())?;
            }
            Ok::<_, String>(())
        }));
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < others {
                match tokio::time::timeout(Duration::from_secs(30), receiver.next_event()).await {
                    Ok(Some(Event::Message(_))) => got += 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return Err(format!("warm-up: got {got} of {others}")),
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    eprintln!(
        "[broker-load] warmed up: {} messages, every pair, in {:.1} s",
        clients.len() * others,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn load(
    url: &str,
    pid: u32,
    peers: usize,
    messages: usize,
    rate: f64,
) -> Result<(), BoxError> {
    eprintln!("[broker-load] {peers} accounts joining one mesh");
    let grants = std::env::var("BROKER_LOAD_GRANTS").is_ok_and(|v| v == "1");
    let extra_mode = std::env::var("BROKER_LOAD_EXTRA").unwrap_or_default();
    let stop_extra = match extra_mode.as_str() {
        "" => None,
        "running" => Some(false),
        "stopped" => Some(true),
        other => return Err(format!("BROKER_LOAD_EXTRA={other}: running or stopped").into()),
    };
    let extra_pad: usize = std::env::var("BROKER_LOAD_EXTRA_PAD")
        .ok()
        .map_or(Ok(15_000), |v| v.parse())?;
    let admin = Account::register(url, "peer0").await?;
    let admin_key = KeyPair::generate()?;
    let (mesh_id, slug) = admin.create_mesh("Load", &admin_key).await?;
    let mut keys = vec![admin_key];
    let mut accounts = vec![admin];
    // The extra consumer joins last, so peer i stays account i.
    let members = peers + usize::from(stop_extra.is_some());
    for i in 1..members {
        let name = if i == peers {
            "extra".to_owned()
        } else {
            format!("peer{i}")
        };
        let account = Account::register(url, &name).await?;
        let invite = accounts[0]
            .post(&format!("/api/my/meshes/{slug}/invites"), json!({}))
            .await?;
        let code = invite["code"].as_str().unwrap_or_default();
        let key = KeyPair::generate()?;
        account
            .post(
                &format!("/api/invites/{code}/accept"),
                json!({ "public_key": key.public_hex() }),
            )
            .await?;
        keys.push(key);
        accounts.push(account);
    }
    // The extra consumer is nobody's random peer and in no grant ring.
    let extra_key = if stop_extra.is_some() {
        accounts.pop();
        keys.pop()
    } else {
        None
    };
    let revoked = if grants {
        revoke_group_in_a_ring(&accounts, &slug).await?
    } else {
        0
    };
    // With several instances (`BROKER_LOAD_URLS`: the others, comma
    // separated), peer i connects to instance i mod n, as a round-robin load
    // balancer would place them; most messages then cross the bus.
    let mut instances = vec![url.to_owned()];
    instances.extend(
        std::env::var("BROKER_LOAD_URLS")
            .unwrap_or_default()
            .split(',')
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
    );
    let mut clients = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let instance = &instances[i % instances.len()];
        clients.push(Arc::new(
            connect(instance, &mesh_id, key, &format!("peer{i}")).await?,
        ));
    }
    let session_keys: Arc<Vec<String>> =
        Arc::new(clients.iter().map(|c| c.session_key().to_owned()).collect());
    let extra = match (stop_extra, extra_key) {
        (Some(stop), Some(key)) => {
            let (url, mesh_id) = (url.to_owned(), mesh_id.clone());
            let extra = tokio::task::spawn_blocking(move || {
                stalled::Extra::start(&url, &mesh_id, &key, stop)
            })
            .await??;
            eprintln!(
                "[broker-load] an extra consumer ({}) gets every 10th message, {extra_pad} characters each",
                if stop {
                    "stopped with SIGSTOP"
                } else {
                    "running"
                }
            );
            Some(extra)
        }
        _ => None,
    };
    let extra_key: Option<Arc<str>> = extra.as_ref().map(|e| Arc::from(e.session_key.as_str()));
    let padding = Arc::new("x".repeat(extra_pad));
    let warm = std::env::var("BROKER_LOAD_WARM").map_or(true, |v| v != "0");
    if warm {
        warm_up(&clients, &session_keys).await?;
    }
    eprintln!("[broker-load] {peers} sessions connected; {messages} messages each");

    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    for client in &clients {
        let (client, received, duplicates) = (
            Arc::clone(client),
            Arc::clone(&received),
            Arc::clone(&duplicates),
        );
        receivers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut seen = HashSet::new();
            while let Some(event) = client.next_event().await {
                if let Event::Message(message) = event {
                    let sent_ns: u64 = message
                        .text
                        .split(' ')
                        .next()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    let now_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    latencies.push(now_ns.saturating_sub(sent_ns));
                    if seen.insert(message.id) {
                        received.fetch_add(1, Ordering::Relaxed);
                    } else {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let acked = Arc::new(AtomicU64::new(0));
    let acked_extra = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, keys, acked, acked_extra, failed, extra_key, padding) = (
            Arc::clone(client),
            Arc::clone(&session_keys),
            Arc::clone(&acked),
            Arc::clone(&acked_extra),
            Arc::clone(&failed),
            extra_key.clone(),
            Arc::clone(&padding),
        );
        senders.push(tokio::spawn(async move {
            // Each peer starts at a random point of its period, so the
            // peers' sends spread out instead of arriving in bursts of 100.
            let mut pace = (rate > 0.0).then(|| {
                let period = Duration::from_secs_f64(1.0 / rate);
                let offset = period.mul_f64(random_below(1000) as f64 / 1000.0);
                tokio::time::interval_at(tokio::time::Instant::now() + offset, period)
            });
            for n in 0..messages {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                // Every 10th message, padded, to the extra consumer if
                // there is one; the others to random peers.
                let to_extra = extra_key.as_ref().filter(|_| n % 10 == 9);
                let to = if let Some(extra) = to_extra {
                    extra.to_string()
                } else {
                    let mut to = random_below(keys.len() - 1);
                    if to >= i {
                        to += 1;
                    }
                    keys[to].clone()
                };
                let resolved = direct_to(to);
                let mut text = format!("{} load test message", start.elapsed().as_nanos());
                if to_extra.is_some() {
                    text.push(' ');
                    text.push_str(&padding);
                }
                let counter = if to_extra.is_some() {
                    &acked_extra
                } else {
                    &acked
                };
                match client.send_resolved(&resolved, &text, Priority::Now).await {
                    Ok(_) => counter.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    let sent_in = start.elapsed();
    // Drain: until everything acknowledged arrived, or nothing moves for 5 s.
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
    let (rss, peak) = rss_mib(pid);
    let acked_extra = acked_extra.load(Ordering::Relaxed);
    let extra = match extra {
        Some(extra) => tokio::task::spawn_blocking(move || extra.finish(acked_extra)).await??,
        None => Value::Null,
    };
    for client in &clients {
        client.close();
    }
    drop(clients);
    let mut latencies = Vec::new();
    for receiver in receivers {
        latencies.extend(receiver.await?);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    let acked = acked.load(Ordering::Relaxed);
    let delivered = received.load(Ordering::Relaxed);
    let result = json!({
        "peers": peers,
        "messages_per_peer": messages,
        "rate_per_peer": rate,
        "warmed_up": warm,
        "grants_revoked": revoked,
        "acked": acked,
        "send_failures": failed.load(Ordering::Relaxed),
        "delivered": delivered,
        "lost": acked.saturating_sub(delivered),
        "duplicates": duplicates.load(Ordering::Relaxed),
        "seconds": elapsed.as_secs_f64(),
        "send_seconds": sent_in.as_secs_f64(),
        "delivered_per_second": delivered as f64 / elapsed.as_secs_f64(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "server_rss_mib": rss,
        "server_peak_rss_mib": peak,
        "extra_consumer": extra_mode,
        "extra_acked": acked_extra,
        "extra": extra,
    });
    println!("{result}");
    Ok(())
}

async fn idle(url: &str, pid: u32, sessions: usize, per_mesh: usize) -> Result<(), BoxError> {
    let meshes = sessions.div_ceil(per_mesh);
    eprintln!("[broker-load] {sessions} idle sessions over {meshes} meshes");
    let account = Account::register(url, "idler").await?;
    let (rss_before, _) = rss_mib(pid);
    let mut plan = Vec::new();
    for m in 0..meshes {
        let key = Arc::new(KeyPair::generate()?);
        let (mesh_id, _) = account.create_mesh(&format!("Idle {m}"), &key).await?;
        for _ in 0..per_mesh.min(sessions - m * per_mesh) {
            plan.push((mesh_id.clone(), Arc::clone(&key)));
        }
    }
    // Loopback gives about 28,000 source ports per destination address:
    // past that, session j goes to 127.0.0.(1 + j mod SPREAD) (the server
    // then listens on every address; see broker.sh).
    let spread: usize = std::env::var("BROKER_LOAD_SPREAD")
        .ok()
        .map_or(Ok(1), |v| v.parse())?;
    let at_once = std::env::var("BROKER_LOAD_AT_ONCE").is_ok_and(|v| v == "1");
    let port = url.rsplit(':').next().unwrap_or_default().to_owned();
    let target = |j: usize| {
        if spread <= 1 {
            url.to_owned()
        } else {
            format!("http://127.0.0.{}:{port}", 1 + j % spread)
        }
    };
    let started = Instant::now();
    let mut clients = Vec::with_capacity(sessions);
    let mut failures: Vec<String> = Vec::new();
    // A few hundred handshakes in flight at a time, or (AT_ONCE) all of
    // them: every session connecting in the same moment, as after an
    // instance's restart; then a failure is counted, not fatal.
    let chunk_size = if at_once { plan.len().max(1) } else { 200 };
    for (c, chunk) in plan.chunks(chunk_size).enumerate() {
        let mut handshakes = Vec::new();
        for (k, (mesh_id, key)) in chunk.iter().enumerate() {
            let (url, mesh_id, key) =
                (target(c * chunk_size + k), mesh_id.clone(), Arc::clone(key));
            handshakes.push(tokio::spawn(async move {
                connect(&url, &mesh_id, &key, "idle")
                    .await
                    .map_err(|e| e.to_string())
            }));
        }
        for handshake in handshakes {
            match handshake.await? {
                Ok(client) => clients.push(client),
                Err(err) if at_once => failures.push(err),
                Err(err) => return Err(err.into()),
            }
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, peak) = rss_mib(pid);
    if !failures.is_empty() {
        failures.sort();
        failures.dedup();
        eprintln!("[broker-load] refused or failed: {failures:?}");
    }
    let result = json!({
        "sessions": clients.len(),
        "failed": sessions - clients.len(),
        "at_once": at_once,
        "meshes": meshes,
        "connect_seconds": connect_seconds,
        "server_rss_mib_before": rss_before,
        "server_rss_mib": rss,
        "server_peak_rss_mib": peak,
        "kib_per_session": (rss - rss_before) * 1024.0 / clients.len().max(1) as f64,
    });
    println!("{result}");
    Ok(())
}

//! The mesh log: what is recorded (and what never is), the hash chain and
//! its check after an edit or a deletion in the database, pages by cursor,
//! the SSE follow resumed with `Last-Event-ID`, retention, bad input, and a
//! follower on a second instance.

use claudemesh_api::broker::Priority;
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::mesh_log::{ChainBreak, ChainVerifier};
use claudemesh_api::wire::{LogEntry, LogPage};
use claudemesh_server::meshes::log as mesh_log;
use claudemesh_testkit::{Engine, Mesh, MeshOptions, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};

use super::support::get_with_token;

on_both_engines!(
    the_log_records_joins_invites_sessions_and_message_metadata,
    an_edited_or_deleted_entry_is_named,
    pages_follow_cursors_and_bad_input_is_refused,
    the_stream_resumes_after_last_event_id_without_gaps_or_repeats,
    retention_drops_old_entries_and_the_chain_still_holds,
);

const WAIT: Duration = Duration::from_secs(10);

async fn page(server: &TestServer, mesh: &Mesh, who: &str, query: &str) -> LogPage {
    let token = mesh.member(who).token().await;
    let (status, body) = get_with_token(
        server,
        token,
        &format!("/api/my/meshes/{}/log{query}", mesh.slug),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// Every entry, once the log has at least `count` (the broker's entries are
/// written a moment after the event).
async fn entries_at_least(server: &TestServer, mesh: &Mesh, count: usize) -> Vec<LogEntry> {
    tokio::time::timeout(WAIT, async {
        loop {
            let all = page(server, mesh, "Alice", "?limit=500").await.entries;
            if all.len() >= count {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the entries are written")
}

fn kinds(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.kind.as_str()).collect()
}

fn verify(mesh_id: &str, page: &LogPage) -> Result<u64, ChainBreak> {
    let mut verifier = ChainVerifier::new(mesh_id, page.first_seq);
    for entry in &page.entries {
        verifier.push(entry)?;
    }
    verifier.finish(page.head_seq, &page.head_hash)
}

async fn the_log_records_joins_invites_sessions_and_message_metadata(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let after_setup = page(&server, &mesh, "Bob", "?limit=500").await;
    assert_eq!(
        kinds(&after_setup.entries),
        [
            "member.joined",
            "invite.created",
            "invite.accepted",
            "member.joined"
        ]
    );
    let bob_joined = &after_setup.entries[3];
    assert_eq!(bob_joined.detail["display_name"], "Bob");
    assert_eq!(bob_joined.detail["role"], "member");
    assert_eq!(bob_joined.detail["member_id"], mesh.member("Bob").member_id);

    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    alice
        .send("Bob", "the secret plan", Priority::Next)
        .await
        .unwrap();
    let entries = entries_at_least(&server, &mesh, 7).await;
    let sent = entries
        .iter()
        .find(|e| e.kind == "message.sent")
        .expect("the message is in the log");
    assert_eq!(sent.detail["sender"], "Alice");
    assert_eq!(sent.detail["message_kind"], "direct");
    assert_eq!(sent.detail["recipients"], "1");
    assert!(sent.detail["size"].parse::<u64>().unwrap() > 0);
    let connected: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == "session.connected")
        .map(|e| e.detail["session_key"].as_str())
        .collect();
    assert_eq!(connected, [alice.session_key(), bob.session_key()]);
    // Never a body: not in the detail, not in anything the API returns.
    let raw = serde_json::to_string(&page(&server, &mesh, "Alice", "?limit=500").await).unwrap();
    assert!(!raw.contains("secret plan"), "{raw}");

    bob.close();
    let entries = entries_at_least(&server, &mesh, 8).await;
    let left = entries.last().unwrap();
    assert_eq!(left.kind, "session.disconnected");
    assert_eq!(left.detail["display_name"], "Bob");

    // Bob leaves; the chain still holds, end to end.
    mesh.remove("Bob").await;
    let all = page(&server, &mesh, "Alice", "?limit=500").await;
    assert_eq!(all.entries.last().unwrap().kind, "member.removed");
    assert_eq!(verify(&mesh.id, &all), Ok(all.entries.len() as u64));
    assert!(all.entries.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    drop(alice);
}

async fn an_edited_or_deleted_entry_is_named(engine: Engine) {
    let server = TestServer::start(engine).await;
    let edited = server.mesh(&["Alice", "Bob"]).await;
    let deleted = server
        .mesh_with(&["Alice", "Carol"], MeshOptions::named("Deleted"))
        .await;
    let pool = server.state().pool();
    assert_eq!(mesh_log::verify(pool, &edited.id).await.unwrap(), Ok(4));
    assert!(mesh_log::verify_all(pool).await.unwrap().is_empty());
    // Another instance appending while the check walks is no break: the
    // check ends at the head it read first.
    let head = mesh_log::head(pool, &edited.id).await.unwrap();
    edited.remove("Bob").await;
    assert_eq!(
        mesh_log::verify_to(pool, &edited.id, &head).await.unwrap(),
        Ok(4)
    );
    assert_eq!(mesh_log::verify(pool, &edited.id).await.unwrap(), Ok(5));

    sqlx::query("UPDATE mesh_log SET detail = $1 WHERE mesh_id = $2 AND seq = 2")
        .bind(r#"{"by":"Mallory"}"#)
        .bind(&edited.id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM mesh_log WHERE mesh_id = $1 AND seq = 3")
        .bind(&deleted.id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        mesh_log::verify(pool, &edited.id).await.unwrap(),
        Err(ChainBreak::Edited { seq: 2 })
    );
    let missing = mesh_log::verify(pool, &deleted.id)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(missing.seq(), 3);
    assert_eq!(missing.to_string(), "entry 3 is missing (deleted)");
    // The start-up check finds both.
    let mut broken: Vec<(String, u64)> = mesh_log::verify_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(mesh, b)| (mesh, b.seq()))
        .collect();
    broken.sort();
    let mut expected = vec![(edited.id.clone(), 2), (deleted.id.clone(), 3)];
    expected.sort();
    assert_eq!(broken, expected);
    // A reader of the API sees the same (what `claudemesh log verify` does).
    let page = page(&server, &deleted, "Carol", "?limit=500").await;
    assert_eq!(verify(&deleted.id, &page).unwrap_err().seq(), 3);

    // The last entry deleted: the recorded head names what is missing.
    let truncated = server
        .mesh_with(&["Alice", "Frank"], MeshOptions::named("Truncated"))
        .await;
    sqlx::query("DELETE FROM mesh_log WHERE mesh_id = $1 AND seq = 4")
        .bind(&truncated.id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        mesh_log::verify(pool, &truncated.id).await.unwrap(),
        Err(ChainBreak::Truncated { last: 3, head: 4 })
    );
}

async fn pages_follow_cursors_and_bad_input_is_refused(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let other = server
        .mesh_with(&["Alice", "Dan"], MeshOptions::named("Other"))
        .await;
    for _ in 0..3 {
        mesh.invite(json!({})).await;
    }
    // 4 from the set-up, 3 invites.
    let newest = page(&server, &mesh, "Alice", "?limit=2").await;
    assert_eq!(
        newest.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [6, 7]
    );
    assert_eq!(newest.head_seq, 7);
    let first = page(
        &server,
        &mesh,
        "Alice",
        &format!("?after={}.0&limit=3", mesh.id),
    )
    .await;
    assert_eq!(
        first.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let next = page(
        &server,
        &mesh,
        "Alice",
        &format!("?after={}&limit=3", first.cursor),
    )
    .await;
    assert_eq!(
        next.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    let invites = page(&server, &mesh, "Alice", "?kind=invite.created&limit=500").await;
    assert_eq!(invites.entries.len(), 4);
    assert!(invites.entries.iter().all(|e| e.kind == "invite.created"));
    let since = page(&server, &mesh, "Alice", "?since_ms=0&limit=1").await;
    assert_eq!(since.entries[0].seq, 1);

    let token = mesh.member("Alice").token().await.to_owned();
    let path = |query: &str| format!("/api/my/meshes/{}/log{query}", mesh.slug);
    let (status, body) =
        get_with_token(&server, &token, &path(&format!("?after={}.3", other.id))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "The cursor belongs to another mesh's log");
    for (query, says) in [
        ("?after=nonsense".to_owned(), "cursor"),
        ("?kind=member.exploded".to_owned(), "Unknown log kind"),
        ("?since_ms=yesterday".to_owned(), "since_ms"),
        ("?since_ms=-5".to_owned(), "since_ms"),
        ("?limit=0".to_owned(), "limit"),
        ("?limit=501".to_owned(), "limit"),
    ] {
        let (status, body) = get_with_token(&server, &token, &path(&query)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_request", "{query}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // Nobody reads another mesh's log: Dan is not in `mesh`.
    let dan = other.member("Dan").token().await;
    let (status, body) = get_with_token(&server, dan, &path("")).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get_with_token(&server, dan, &path("/stream")).await;
    assert_eq!(status, 404);
    // A removed member no longer reads it either.
    let bob = mesh.member("Bob").token().await.to_owned();
    mesh.remove("Bob").await;
    let (status, _) = get_with_token(&server, &bob, &path("")).await;
    assert_eq!(status, 404);
}

/// An open SSE response, read event by event.
struct Follow {
    response: reqwest::Response,
    buffer: String,
}

impl Follow {
    async fn open(server: &TestServer, mesh: &Mesh, last_event_id: Option<&str>) -> Self {
        let token = mesh.member("Alice").token().await;
        let mut request = reqwest::Client::new()
            .get(server.url(&format!("/api/my/meshes/{}/log/stream", mesh.slug)))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next entry event: (its id, the entry).
    async fn next(&mut self) -> (String, LogEntry) {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = None;
                    for line in event.lines() {
                        if let Some(rest) = line.strip_prefix("id: ") {
                            id = Some(rest.to_owned());
                        } else if let Some(rest) = line.strip_prefix("data: ") {
                            data = Some(rest.to_owned());
                        }
                    }
                    if let (Some(id), Some(data)) = (id, data) {
                        return (id, serde_json::from_str(&data).unwrap());
                    }
                    continue;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream goes on");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an entry arrives")
    }
}

async fn the_stream_resumes_after_last_event_id_without_gaps_or_repeats(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    // From the start (the cursor before entry 1).
    let mut follow = Follow::open(&server, &mesh, Some(&format!("{}.0", mesh.id))).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (id, entry) = follow.next().await;
        assert_eq!(id, entry.cursor);
        seen.push(entry.seq);
    }
    assert_eq!(seen, [1, 2, 3, 4]);
    // Live: an entry made now arrives on the open stream.
    mesh.invite(json!({})).await;
    let (_, live) = follow.next().await;
    assert_eq!((live.seq, live.kind.as_str()), (5, "invite.created"));
    drop(follow);

    // Entries made while nobody follows come after a reconnect, from right
    // after the last one received, each once.
    mesh.invite(json!({})).await;
    mesh.invite(json!({})).await;
    let mut resumed = Follow::open(&server, &mesh, Some(&live.cursor)).await;
    let (_, a) = resumed.next().await;
    let (_, b) = resumed.next().await;
    assert_eq!((a.seq, b.seq), (6, 7));
    mesh.invite(json!({})).await;
    assert_eq!(resumed.next().await.1.seq, 8);

    // Without Last-Event-ID, only what happens from now on.
    let mut fresh = Follow::open(&server, &mesh, None).await;
    mesh.invite(json!({})).await;
    assert_eq!(fresh.next().await.1.seq, 9);
}

async fn retention_drops_old_entries_and_the_chain_still_holds(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let pool = server.state().pool();
    server.clock.advance(Duration::from_secs(400 * 86_400));
    let now = server.state().now();
    let mut tx = pool.begin().await.unwrap();
    mesh_log::append(
        &mut tx,
        &mesh.id,
        now,
        &mesh_log::LogEvent::new(LogKind::InviteRevoked).with("invite_id", "inv_x"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        mesh_log::sweep(pool, now, 0).await.unwrap(),
        0,
        "0 keeps all"
    );
    assert_eq!(mesh_log::sweep(pool, now, 365).await.unwrap(), 4);
    let page = mesh_log::read(
        pool,
        &mesh.id,
        &mesh_log::Query {
            limit: 500,
            after: Some(0),
            ..mesh_log::Query::default()
        },
    )
    .await
    .unwrap();
    let head = mesh_log::head(pool, &mesh.id).await.unwrap();
    assert_eq!(head.first_seq, 5);
    let page = LogPage {
        mesh_id: mesh.id.clone(),
        entries: page,
        cursor: String::new(),
        head_seq: head.seq,
        head_hash: head.hash,
        first_seq: head.first_seq,
    };
    assert_eq!(page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
    assert_eq!(verify(&mesh.id, &page), Ok(1));
    assert_eq!(mesh_log::verify(pool, &mesh.id).await.unwrap(), Ok(1));
    // Everything old, the last entry stays as the chain's anchor.
    server.clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(
        mesh_log::sweep(pool, server.state().now(), 365)
            .await
            .unwrap(),
        0
    );
    assert_eq!(mesh_log::verify(pool, &mesh.id).await.unwrap(), Ok(1));
}

#[tokio::test]
async fn an_entry_on_one_instance_reaches_a_follower_on_the_other_within_a_second() {
    let server = TestServer::start(Engine::Postgres).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let second = server.second_instance().await;
    let second_url = second.base_url.clone();
    let token = mesh.member("Alice").token().await;
    let response = reqwest::Client::new()
        .get(format!(
            "{second_url}/api/my/meshes/{}/log/stream",
            mesh.slug
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut follow = Follow {
        response,
        buffer: String::new(),
    };
    // The stream is open once its headers came; the event is made on the
    // first instance.
    let started = Instant::now();
    mesh.invite(json!({})).await;
    let (_, entry) = follow.next().await;
    let took = started.elapsed();
    assert_eq!((entry.seq, entry.kind.as_str()), (5, "invite.created"));
    // The follower looks every 200 ms; the figure is printed, not asserted
    // (a slow machine must not fail the test).
    eprintln!("mesh log across instances: {} ms", took.as_millis());
    second.stop().await;
}

#[tokio::test]
async fn the_documented_kinds_are_exactly_the_log_kinds() {
    let server = TestServer::start(Engine::Sqlite).await;
    let doc = server.openapi().await;
    let expected = format!(
        "^({})$",
        LogKind::ALL
            .map(|k| k.as_str().replace('.', "\\."))
            .join("|")
    );
    for path in [
        "/api/my/meshes/{slug}/log",
        "/api/my/meshes/{slug}/log/stream",
    ] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let kind = params.iter().find(|p| p["name"] == "kind").unwrap();
        assert_eq!(kind["schema"]["pattern"], expected.as_str(), "{path}");
    }
}

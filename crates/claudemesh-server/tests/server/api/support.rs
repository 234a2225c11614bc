//! Short forms of the API calls the tests make again and again.

use claudemesh_api::wire::DeviceCodeResponse;
use claudemesh_testkit::{TestServer, TestUser};
use serde_json::{Value, json};
use std::time::Duration;

/// Starts a CLI login as a CLI would.
pub async fn start_login(server: &TestServer) -> DeviceCodeResponse {
    let response = server
        .anonymous()
        .post(server.url("/api/auth/cli/device-code"))
        .json(&json!({ "device_name": "Alice's laptop", "device_os": "linux", "device_arch": "x86_64" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls a device code once: `(status, body)`.
pub async fn poll(server: &TestServer, device_code: &str) -> (u16, Value) {
    let response = server
        .anonymous()
        .get(server.url(&format!("/api/auth/cli/device-code/{device_code}")))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Lets the poll interval pass on the server's frozen clock.
pub fn wait_poll_interval(server: &TestServer) {
    server.clock.advance(Duration::from_millis(1_500));
}

/// A whole device-code login for `user`: returns the session token.
pub async fn login(server: &TestServer, user: &TestUser) -> String {
    let code = start_login(server).await;
    assert_eq!(user.approve(&code.user_code).await.status(), 200);
    let (status, body) = poll(server, &code.device_code).await;
    assert_eq!(status, 200, "{body}");
    wait_poll_interval(server);
    body["token"]
        .as_str()
        .expect("the first poll after approval has the token")
        .to_owned()
}

/// `GET path` with a bearer token: `(status, body)`.
pub async fn get_with_token(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let response = server
        .anonymous()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub async fn whoami(server: &TestServer, token: &str) -> (u16, Value) {
    get_with_token(server, token, "/api/my/whoami").await
}

/// Sends a request and returns `(status, body)`.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How long a test waits for something the broker should do at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next broker event matching `pick`, skipping others; fails after
/// [`WAIT`].
pub async fn next<T>(
    client: &claudemesh_client::Client,
    mut pick: impl FnMut(claudemesh_client::Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = client.next_event().await.expect("the connection is open");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event arrives in time")
}

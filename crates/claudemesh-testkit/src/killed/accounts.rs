//! A mesh of new accounts on a server running elsewhere (an instance's own
//! URL), made over the JSON API as people make one: the first account
//! creates it with a machine key, each other accepts an invite of the
//! first's with a machine key of their own.

use claudemesh_api::e2e::KeyPair;
use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use serde_json::{Value, json};

/// The mesh's id and each member's machine key, in the order they joined.
pub struct Mesh {
    pub id: String,
    pub keys: Vec<KeyPair>,
}

/// A mesh of `members` accounts (at least one) on the server at `url`.
pub async fn mesh(url: &str, members: usize) -> Mesh {
    // Unique per run, as the database may be shared with other runs.
    let run = random_hex();
    let creator = Account::register(url, &format!("peer0.{run}")).await;
    let key = KeyPair::generate().expect("a key pair");
    let created = creator
        .post(
            "/api/my/meshes",
            json!({ "name": "Killed", "public_key": key.public_hex() }),
        )
        .await;
    let slug = created["slug"].as_str().expect("a mesh slug").to_owned();
    let id = created["id"].as_str().expect("a mesh id").to_owned();
    let mut keys = vec![key];
    for i in 1..members {
        let account = Account::register(url, &format!("peer{i}.{run}")).await;
        let invite = creator
            .post(&format!("/api/my/meshes/{slug}/invites"), json!({}))
            .await;
        let code = invite["code"].as_str().expect("an invite code");
        let key = KeyPair::generate().expect("a key pair");
        account
            .post(
                &format!("/api/invites/{code}/accept"),
                json!({ "public_key": key.public_hex() }),
            )
            .await;
        keys.push(key);
    }
    Mesh { id, keys }
}

/// An account signed in with a cookie, as a browser would be.
struct Account {
    http: reqwest::Client,
    url: String,
}

impl Account {
    async fn register(url: &str, name: &str) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(url).expect("an origin"));
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .build()
            .expect("an HTTP client");
        let account = Self {
            http,
            url: url.to_owned(),
        };
        account
            .post(
                "/api/auth/register",
                json!({
                    "email": format!("{name}@killed.example"),
                    "password": "correct horse battery staple",
                    "name": name,
                }),
            )
            .await;
        account
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("random");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

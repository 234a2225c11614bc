//! A broker session of a load's peer: the member's key, a fresh session key
//! attested for an hour, and a display name.

use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{Client, Presence, SessionIdentity};
use std::time::{SystemTime, UNIX_EPOCH};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0)
}

pub fn copy(key: &KeyPair) -> KeyPair {
    KeyPair::from_secret_hex(&key.secret_hex()).expect("own secret parses")
}

pub async fn connect(
    url: &str,
    mesh_id: &str,
    member: &KeyPair,
    name: &str,
) -> Result<Client, BoxError> {
    let identity = SessionIdentity::new(mesh_id, copy(member), now_ms() + 3_600_000)?;
    let presence = Presence {
        display_name: name.to_owned(),
        ..Presence::default()
    };
    Ok(Client::connect(url, identity, presence).await?)
}

//! Password hashing: argon2id on the blocking pool, a few hashes at a time.
//!
//! Parameters: 12 MiB of memory, 3 passes, 1 lane, one of the settings OWASP
//! lists as equally strong for argon2id. Its other common one (19 MiB, 2
//! passes; the crate's default) costs the same CPU but more memory, and
//! memory is what a burst of sign-ins runs out of. Stored hashes carry their
//! own parameters, so hashes made with other settings still verify.
//!
//! A hash holds its memory for tens of milliseconds. At most two per CPU run
//! at once; further sign-ins wait their turn (up to ten seconds, then 503)
//! instead of growing the server's memory without bound.

use crate::http::error::{AppError, AppResult};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::http::StatusCode;
use claudemesh_api::ErrorCode;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Semaphore;

const MEMORY_KIB: u32 = 12 * 1024;
const PASSES: u32 = 3;
const LANES: u32 = 1;

/// Checked when the crate compiles, so building a hasher cannot fail.
const PARAMS: Params = match Params::new(MEMORY_KIB, PASSES, LANES, None) {
    Ok(params) => params,
    Err(_) => panic!("invalid argon2 parameters"),
};

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

/// Hashes running or queued for the blocking pool.
static IN_FLIGHT: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cpus * 2))
});

/// The hash of a password nobody has: an unknown email is checked against it,
/// so it costs the same time as a wrong password for a real account.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    hasher()
        .hash_password(b"the password of no account")
        .ok()
        .map(|hash| hash.to_string())
});

/// How long a sign-in waits for a hashing slot before the server says it is
/// busy (503 with `Retry-After`) rather than keep the person waiting.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Runs `work` on the blocking pool once a hashing slot is free. The slot is
/// held until `work` ends, even if the request that asked is dropped.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    let waiting = Arc::clone(&IN_FLIGHT).acquire_owned();
    let slot = tokio::time::timeout(QUEUE_WAIT, waiting)
        .await
        .map_err(|_| {
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "The server is busy signing people in; try again in a few seconds",
            )
            .with_retry_after(5)
        })?
        .map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(AppError::internal)
}

/// The PHC string (`$argon2id$v=19$m=…`) to store for `password`.
pub async fn hash(password: String) -> AppResult<String> {
    hashing(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(AppError::internal)
}

/// Whether `password` matches `stored`. With no stored hash (unknown email)
/// it checks against a dummy and answers false, in about the same time.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    let unknown_account = stored.is_none();
    let outcome = hashing(move || {
        let stored = stored.or_else(|| DUMMY_HASH.clone())?;
        let parsed = PasswordHash::new(&stored).ok()?;
        Some(
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    })
    .await?;
    match outcome {
        Some(matches) => Ok(matches && !unknown_account),
        None => Err(AppError::internal("stored password hash is unreadable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"),
            "{stored}"
        );
        assert!(
            verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_with_the_old_default_still_verify() {
        let old = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify("correct horse".into(), Some(old)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_matches() {
        assert!(
            !verify("the password of no account".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_is_an_error_not_a_match() {
        assert!(verify("x".into(), Some("not a hash".into())).await.is_err());
    }
}

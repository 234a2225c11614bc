//! The OS credential store that keeps the CLI's token: the Secret Service on
//! Linux and the BSDs (over D-Bus), the Keychain on macOS, the Credential
//! Manager on Windows, through keyring-core and one store crate per platform
//! (the `keyring` cargo feature; without it there is no store at all and the
//! token stays in `auth.json`).
//!
//! Every call runs on a thread of its own and is given up after [`TIMEOUT`]:
//! a store that does not answer (a locked keyring whose unlock prompt nobody
//! sees, a Secret Service that never starts, a headless or SSH session) costs
//! a command at most 2 s, and only once per process: after one silence the
//! OS store is not asked again. Without a D-Bus session bus (no
//! `DBUS_SESSION_BUS_ADDRESS`, no `$XDG_RUNTIME_DIR/bus`) the store is known
//! to be absent at once, without a call, so CI and containers pay nothing.
//!
//! `CLAUDEMESH_KEYRING` chooses the store ([`Keyring::from_env`]):
//!
//! - unset or empty: the OS store;
//! - `off`: none, the token stays in `auth.json` (as `login
//!   --insecure-storage` does, for every login);
//! - test doubles, for tests only: `mock` (keyring-core's mock store, in the
//!   memory of this one process), `fail` (every call fails), `hang` (no call
//!   ever answers).
//!
//! Nothing here prints, and no error message carries a secret.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The variable that chooses the store.
pub const ENV: &str = "CLAUDEMESH_KEYRING";
/// How long one call may take before the store is given up on.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// The service of claudemesh's entries.
pub const SERVICE: &str = "claudemesh";

/// Which credential store the token goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyring {
    /// None: the token stays in the file.
    Off,
    /// The platform's own store.
    Os,
    /// Test double: keyring-core's mock store, in this process's memory.
    Mock,
    /// Test double: every call fails.
    Fail,
    /// Test double: no call ever answers.
    Hang,
}

impl Keyring {
    /// The store `CLAUDEMESH_KEYRING` asks for ([module docs](self)).
    pub fn from_env() -> Self {
        Self::parse(std::env::var(ENV).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Self {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("off") => Self::Off,
            Some("mock") => Self::Mock,
            Some("fail") => Self::Fail,
            Some("hang") => Self::Hang,
            // A build without the feature has no OS store: the file, quietly
            // (it is the build's choice, not a fallback to tell about).
            _ if cfg!(feature = "keyring") => Self::Os,
            _ => Self::Off,
        }
    }

    /// Stores the secret in `entry`, replacing what was there.
    pub fn set(self, entry: &EntryName, secret: &str) -> Result<(), Failure> {
        let secret = secret.to_owned();
        let result = imp::call(self, entry, move |e| e.set_password(&secret));
        if result.is_ok() {
            imp::remember(self, entry, None);
        }
        result
    }

    /// The secret in `entry`; `None` when there is no such entry.
    pub fn get(self, entry: &EntryName) -> Result<Option<String>, Failure> {
        if let Some(cached) = imp::recall(self, entry) {
            return Ok(Some(cached));
        }
        let found = imp::call(self, entry, |e| match e.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(err) if imp::is_no_entry(&err) => Ok(None),
            Err(err) => Err(err),
        })?;
        imp::remember(self, entry, found.clone());
        Ok(found)
    }

    /// Deletes `entry`: `Ok(false)` when there was none.
    pub fn delete(self, entry: &EntryName) -> Result<bool, Failure> {
        let result = imp::call(self, entry, |e| match e.delete_credential() {
            Ok(()) => Ok(true),
            Err(err) if imp::is_no_entry(&err) => Ok(false),
            Err(err) => Err(err),
        });
        if result.is_ok() {
            imp::remember(self, entry, None);
        }
        result
    }
}

/// Makes the next call on the mock store's `entry` fail, as a locked or
/// broken store would (keyring-core's error injection).
#[cfg(test)]
#[cfg(feature = "keyring")]
pub fn mock_fails_next(entry: &EntryName) {
    let mock = imp::mock_entry(entry);
    let cred: &keyring_core::mock::Cred = mock.as_any().downcast_ref().expect("a mock entry");
    cred.set_error(keyring_core::Error::NoStorageAccess("locked".into()));
}

/// Where in the store a token is: `auth.json` names it, so the login finds
/// its token even when the config directory has moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryName {
    pub service: String,
    /// The config directory, absolute: one login per directory, as
    /// `auth.json`.
    pub user: String,
}

impl EntryName {
    /// The entry of the login kept in `config_dir`.
    pub fn for_dir(config_dir: &Path) -> Self {
        let dir = std::path::absolute(config_dir).unwrap_or_else(|_| config_dir.to_owned());
        Self {
            service: SERVICE.to_owned(),
            user: dir.display().to_string(),
        }
    }
}

/// Why the store could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
// Without the feature there is no store to fail or keep silent.
#[cfg_attr(not(feature = "keyring"), allow(dead_code))]
pub enum Failure {
    /// There is no store to ask: switched off, no D-Bus session bus, a
    /// platform without one, a build without the feature.
    Absent(String),
    /// It did not answer within [`TIMEOUT`].
    NoAnswer,
    /// It answered with an error.
    Failed(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent(why) => f.write_str(why),
            Self::NoAnswer => write!(f, "it did not answer within {} s", TIMEOUT.as_secs()),
            Self::Failed(why) => f.write_str(why),
        }
    }
}

#[cfg(feature = "keyring")]
mod imp {
    use super::{EntryName, Failure, Keyring, TIMEOUT};
    use keyring_core::{CredentialStore, Entry, Error};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};

    /// The OS store, opened once (a D-Bus connection and its session key).
    static OS_STORE: Mutex<Option<Arc<CredentialStore>>> = Mutex::new(None);
    /// The OS store once failed to answer in time: not asked again.
    static OS_SILENT: AtomicBool = AtomicBool::new(false);
    /// The mock store of this process.
    static MOCK_STORE: OnceLock<Arc<CredentialStore>> = OnceLock::new();
    /// Secrets read in this process, so a command that loads its login
    /// twice asks the store (and perhaps its owner) once.
    type Cache = HashMap<(&'static str, String, String), String>;
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

    pub(super) fn is_no_entry(err: &Error) -> bool {
        matches!(err, Error::NoEntry)
    }

    fn tag(keyring: Keyring) -> &'static str {
        match keyring {
            Keyring::Off => "off",
            Keyring::Os => "os",
            Keyring::Mock => "mock",
            Keyring::Fail => "fail",
            Keyring::Hang => "hang",
        }
    }

    fn key(keyring: Keyring, entry: &EntryName) -> (&'static str, String, String) {
        (tag(keyring), entry.service.clone(), entry.user.clone())
    }

    pub(super) fn recall(keyring: Keyring, entry: &EntryName) -> Option<String> {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref()?.get(&key(keyring, entry)).cloned()
    }

    pub(super) fn remember(keyring: Keyring, entry: &EntryName, secret: Option<String>) {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = cache.get_or_insert_with(HashMap::new);
        match secret {
            Some(secret) => cache.insert(key(keyring, entry), secret),
            None => cache.remove(&key(keyring, entry)),
        };
    }

    /// Runs `op` on the entry in a thread of its own; gives up after
    /// [`TIMEOUT`] (the thread is left to itself: it ends with the process).
    pub(super) fn call<T, F>(keyring: Keyring, entry: &EntryName, op: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Entry) -> keyring_core::Result<T> + Send + 'static,
    {
        match keyring {
            Keyring::Off => return Err(Failure::Absent("CLAUDEMESH_KEYRING=off".to_owned())),
            Keyring::Os if OS_SILENT.load(Ordering::Relaxed) => return Err(Failure::NoAnswer),
            Keyring::Os => {
                if let Some(why) = os_absent() {
                    return Err(Failure::Absent(why));
                }
            }
            Keyring::Mock | Keyring::Fail | Keyring::Hang => {}
        }
        let entry = entry.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("keyring".to_owned())
            .spawn(move || {
                let result = open(keyring)
                    .and_then(|store| Entry::new_in_store(&store, &entry.service, &entry.user))
                    .and_then(|entry| op(&entry));
                let _ = tx.send(result);
            });
        if let Err(err) = spawned {
            return Err(Failure::Failed(format!("cannot start a thread: {err}")));
        }
        match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(Failure::Failed(err.to_string())),
            Err(RecvTimeoutError::Timeout) => {
                if keyring == Keyring::Os {
                    OS_SILENT.store(true, Ordering::Relaxed);
                }
                Err(Failure::NoAnswer)
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(Failure::Failed("the credential store crashed".to_owned()))
            }
        }
    }

    fn open(keyring: Keyring) -> keyring_core::Result<Arc<CredentialStore>> {
        match keyring {
            Keyring::Os => {
                let mut opened = OS_STORE.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(store) = opened.as_ref() {
                    return Ok(store.clone());
                }
                let store = os_store()?;
                *opened = Some(store.clone());
                Ok(store)
            }
            Keyring::Mock => {
                if let Some(store) = MOCK_STORE.get() {
                    return Ok(store.clone());
                }
                let store: Arc<CredentialStore> = keyring_core::mock::Store::new()?;
                Ok(MOCK_STORE.get_or_init(|| store).clone())
            }
            Keyring::Fail => Err(Error::NoStorageAccess(
                "the failing test store (CLAUDEMESH_KEYRING=fail)".into(),
            )),
            Keyring::Hang => loop {
                std::thread::park();
            },
            Keyring::Off => Err(Error::NoDefaultStore),
        }
    }

    /// Why there is certainly no OS store to ask, without asking it.
    fn os_absent() -> Option<String> {
        #[cfg(all(
            unix,
            not(any(target_os = "macos", target_os = "ios", target_os = "android"))
        ))]
        {
            let address = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty());
            let user_bus = std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|d| !d.is_empty())
                .map(|dir| std::path::Path::new(&dir).join("bus"))
                .is_some_and(|bus| {
                    use std::os::unix::fs::FileTypeExt;
                    std::fs::metadata(bus).is_ok_and(|m| m.file_type().is_socket())
                });
            if address.is_none() && !user_bus {
                return Some("no D-Bus session bus".to_owned());
            }
            None
        }
        #[cfg(any(target_os = "macos", windows))]
        {
            None
        }
        #[cfg(not(any(unix, windows)))]
        {
            Some("no credential store on this platform".to_owned())
        }
        #[cfg(any(target_os = "ios", target_os = "android"))]
        {
            Some("no credential store on this platform".to_owned())
        }
    }

    #[cfg(all(
        unix,
        not(any(target_os = "macos", target_os = "ios", target_os = "android"))
    ))]
    fn os_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Ok(dbus_secret_service_keyring_store::Store::new()?)
    }

    #[cfg(target_os = "macos")]
    fn os_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Ok(apple_native_keyring_store::keychain::Store::new()?)
    }

    #[cfg(windows)]
    fn os_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Ok(windows_native_keyring_store::Store::new()?)
    }

    #[cfg(not(any(unix, windows)))]
    fn os_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Err(Error::NoDefaultStore)
    }

    #[cfg(any(target_os = "ios", target_os = "android"))]
    fn os_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Err(Error::NoDefaultStore)
    }

    /// The mock store's entry, for tests that make its next call fail.
    #[cfg(test)]
    pub(super) fn mock_entry(entry: &EntryName) -> Entry {
        let store = open(Keyring::Mock).expect("the mock store");
        Entry::new_in_store(&store, &entry.service, &entry.user).expect("a mock entry")
    }
}

/// Built without the `keyring` feature: no store, ever.
#[cfg(not(feature = "keyring"))]
mod imp {
    use super::{EntryName, Failure, Keyring};

    /// Stands for keyring-core's entry, which this build does not have.
    pub(super) enum Entry {}

    impl Entry {
        pub(super) fn set_password(&self, _: &str) -> Result<(), Failure> {
            match *self {}
        }
        pub(super) fn get_password(&self) -> Result<String, Failure> {
            match *self {}
        }
        pub(super) fn delete_credential(&self) -> Result<(), Failure> {
            match *self {}
        }
    }

    pub(super) fn is_no_entry(_: &Failure) -> bool {
        false
    }

    pub(super) fn recall(_: Keyring, _: &EntryName) -> Option<String> {
        None
    }

    pub(super) fn remember(_: Keyring, _: &EntryName, _: Option<String>) {}

    pub(super) fn call<T, F>(keyring: Keyring, _: &EntryName, _: F) -> Result<T, Failure>
    where
        F: FnOnce(&Entry) -> Result<T, Failure>,
    {
        Err(Failure::Absent(match keyring {
            Keyring::Off => "CLAUDEMESH_KEYRING=off".to_owned(),
            _ => "this claudemesh was built without the OS credential store".to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_chooses_the_store() {
        let default = if cfg!(feature = "keyring") {
            Keyring::Os
        } else {
            Keyring::Off
        };
        assert_eq!(Keyring::parse(None), default);
        assert_eq!(Keyring::parse(Some("")), default);
        assert_eq!(Keyring::parse(Some("off")), Keyring::Off);
        assert_eq!(Keyring::parse(Some(" Mock ")), Keyring::Mock);
        assert_eq!(Keyring::parse(Some("fail")), Keyring::Fail);
        assert_eq!(Keyring::parse(Some("hang")), Keyring::Hang);
    }

    #[test]
    fn entries_are_named_by_the_absolute_config_directory() {
        let name = EntryName::for_dir(Path::new("rel/.claudemesh"));
        assert_eq!(name.service, "claudemesh");
        assert!(Path::new(&name.user).is_absolute(), "{}", name.user);
        assert!(name.user.ends_with(".claudemesh"));
    }

    #[test]
    fn off_is_absent_without_a_call() {
        let entry = EntryName::for_dir(Path::new("/nowhere"));
        assert!(matches!(
            Keyring::Off.set(&entry, "s"),
            Err(Failure::Absent(_))
        ));
        assert!(matches!(Keyring::Off.get(&entry), Err(Failure::Absent(_))));
    }

    #[cfg(feature = "keyring")]
    #[test]
    fn the_mock_store_round_trips_and_deletes() {
        let home = tempfile::tempdir().unwrap();
        let entry = EntryName::for_dir(home.path());
        assert_eq!(Keyring::Mock.get(&entry), Ok(None));
        Keyring::Mock.set(&entry, "secret-1").unwrap();
        assert_eq!(
            Keyring::Mock.get(&entry).unwrap().as_deref(),
            Some("secret-1")
        );
        Keyring::Mock.set(&entry, "secret-2").unwrap();
        assert_eq!(
            Keyring::Mock.get(&entry).unwrap().as_deref(),
            Some("secret-2")
        );
        assert_eq!(Keyring::Mock.delete(&entry), Ok(true));
        assert_eq!(Keyring::Mock.delete(&entry), Ok(false));
        assert_eq!(Keyring::Mock.get(&entry), Ok(None));
    }

    #[cfg(feature = "keyring")]
    #[test]
    fn an_error_of_the_store_is_a_failure_that_names_no_secret() {
        let home = tempfile::tempdir().unwrap();
        let entry = EntryName::for_dir(home.path());
        mock_fails_next(&entry);
        match Keyring::Mock.set(&entry, "the-secret") {
            Err(Failure::Failed(why)) => {
                assert!(why.contains("locked"), "{why}");
                assert!(!why.contains("the-secret"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Keyring::Fail.get(&entry), Err(Failure::Failed(_))));
    }

    #[cfg(feature = "keyring")]
    #[test]
    fn a_store_that_hangs_is_given_up_on() {
        let entry = EntryName::for_dir(Path::new("/hang"));
        assert_eq!(Keyring::Hang.set(&entry, "s"), Err(Failure::NoAnswer));
        assert_eq!(
            Failure::NoAnswer.to_string(),
            "it did not answer within 2 s"
        );
    }
}

//! The saved login, `auth.json` in the config directory, where its token is
//! kept, and which token a command uses.
//!
//! The file is written only by a successful `claudemesh login`: mode 0600 in
//! a directory of mode 0700, through a temporary file renamed over the old
//! one ([`private_file`]), so a crash never leaves half a token behind. A file found with a
//! wider mode is warned about and fixed. A file that does not parse, or holds
//! no well-formed token, is "corrupted" (exit 2), never silently ignored.
//!
//! The token itself goes to the OS credential store when there is one
//! ([`credential_store`]): `auth.json` then keeps everything but the token,
//! and names the store's entry in its place (`"keyring": {"service":
//! "claudemesh", "user": "<config dir>"}`). When no store takes it within
//! 2 s (headless, CI, SSH, a locked keyring), or with `login
//! --insecure-storage`, the token is in `auth.json` itself (`"token"`); a
//! fallback is told once per config directory ([`NOTICE_FILE`] remembers
//! it). `logout` removes both.
//!
//! Token resolution: `--token` > `CLAUDEMESH_TOKEN` > the saved login.

use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::output::Output;
use crate::base::private_file::{self, Read};
use crate::stores::credential_store::{EntryName, Failure, Keyring};
use claudemesh_api::Token;
use claudemesh_api::wire::UserSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const AUTH_FILE: &str = "auth.json";
pub const FILE_VERSION: u32 = 1;
/// The field of `auth.json` that names the credential store's entry.
pub const KEYRING_FIELD: &str = "keyring";
/// Remembers that the fallback to the file was told (when, and why).
pub const NOTICE_FILE: &str = "keyring.json";

/// How the saved token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthSource {
    DeviceCode,
    Pat,
}

/// The saved login, with its token wherever that is kept. The raw token is
/// in it, so it never implements `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthFile {
    pub version: u32,
    pub token: String,
    pub user: UserSummary,
    pub created_at: String,
    pub source: AuthSource,
    /// The server that issued the token.
    pub server: String,
}

/// `auth.json` of a login whose token is in the credential store.
#[derive(Serialize)]
struct WithoutToken<'a> {
    version: u32,
    keyring: &'a EntryName,
    user: &'a UserSummary,
    created_at: &'a str,
    source: AuthSource,
    server: &'a str,
}

/// The saved login, checked: its token is well formed.
pub struct SavedLogin {
    pub token: Token,
    pub file: AuthFile,
    /// Where its token was kept.
    pub storage: TokenStorage,
}

/// Where `login` keeps the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenStorage {
    /// The OS credential store (`login` tries it first).
    Keyring,
    /// `auth.json` itself (`login --insecure-storage`, or no store).
    File,
}

/// Where a login was saved.
#[derive(Debug)]
pub struct Saved {
    /// `auth.json`.
    pub path: PathBuf,
    /// Where its token went.
    pub storage: TokenStorage,
}

impl Saved {
    /// `Token saved to …`, for the login's success line.
    pub fn describe(&self) -> String {
        match self.storage {
            TokenStorage::Keyring => format!(
                "Token saved to the OS credential store (the rest of the login in {})",
                self.path.display()
            ),
            TokenStorage::File => format!("Token saved to {}", self.path.display()),
        }
    }
}

/// What became of the credential store's copy of the token at logout.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyringRemoval {
    Removed,
    /// No entry, or no store (and `auth.json` named none).
    NoneThere,
    /// `auth.json` named an entry and it could not be removed.
    Failed(Failure),
}

/// Reads and writes the saved login of one config directory.
#[derive(Debug, Clone)]
pub struct AuthStore {
    dir: PathBuf,
    keyring: Keyring,
}

impl AuthStore {
    /// The store of `dir`, with the credential store `CLAUDEMESH_KEYRING`
    /// chooses (the OS one by default).
    pub fn new(dir: PathBuf) -> Self {
        Self::with_keyring(dir, Keyring::from_env())
    }

    pub fn with_keyring(dir: PathBuf, keyring: Keyring) -> Self {
        Self { dir, keyring }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(AUTH_FILE)
    }

    /// The saved login, or `None` when there is none. Fixes a too-open mode
    /// (with a warning); a file that cannot be understood is an error, and
    /// so is a token the credential store does not give back (exit 2).
    pub fn load(&self, out: &Output) -> CliResult<Option<SavedLogin>> {
        let path = self.path();
        let text = match private_file::read(&path, out) {
            Ok(Read::Text(text)) => text,
            Ok(Read::Missing) => return Ok(None),
            Ok(Read::NotText) => return Err(CliError::auth_file_corrupted()),
            Err(err) => {
                return Err(CliError::new(
                    Exit::Permission,
                    format!("Cannot read {}: {err}", path.display()),
                ));
            }
        };
        self.decode(&text).map(Some)
    }

    fn decode(&self, text: &str) -> CliResult<SavedLogin> {
        let mut value: Value =
            serde_json::from_str(text).map_err(|_| CliError::auth_file_corrupted())?;
        let Some(object) = value.as_object_mut() else {
            return Err(CliError::auth_file_corrupted());
        };
        // A file of another version is not worth a trip to the store.
        if object.get("version") != Some(&Value::from(FILE_VERSION)) {
            return Err(CliError::auth_file_corrupted());
        }
        let storage = if object.contains_key("token") {
            TokenStorage::File
        } else {
            let entry = keyring_entry(object).ok_or_else(CliError::auth_file_corrupted)?;
            let secret = self.read_keyring(&entry)?;
            object.insert("token".to_owned(), Value::String(secret));
            TokenStorage::Keyring
        };
        parse(value, storage).ok_or_else(CliError::auth_file_corrupted)
    }

    fn read_keyring(&self, entry: &EntryName) -> CliResult<String> {
        match self.keyring.get(entry) {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(CliError::new(
                Exit::Auth,
                "The saved login's token is missing from the OS credential store",
            )
            .with_hint("Run `claudemesh login` to sign in again.")),
            Err(failure) => Err(CliError::new(
                Exit::Auth,
                format!(
                    "Cannot read the saved login's token from the OS credential store: {failure}"
                ),
            )
            .with_hint(
                "Unlock the credential store and try again, or run `claudemesh login --insecure-storage` to keep the token in a file.",
            )),
        }
    }

    /// `auth.json` as JSON, read quietly; `None` when missing or not JSON.
    fn raw(&self) -> Option<serde_json::Map<String, Value>> {
        let text = fs::read_to_string(self.path()).ok()?;
        match serde_json::from_str(&text).ok()? {
            Value::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The server of the saved login, and its token when `auth.json` holds
    /// it (`None` when it is in the credential store, or damaged), from a
    /// file whose rest may be damaged; read quietly, never asking the
    /// credential store. Without a server there is nowhere safe to send a
    /// token, so nothing is returned.
    pub fn salvage(&self) -> Option<(Option<Token>, String)> {
        let object = self.raw()?;
        let server =
            crate::base::server_url::normalize_base_url(object.get("server")?.as_str()?).ok()?;
        let token = object
            .get("token")
            .and_then(Value::as_str)
            .and_then(|text| Token::parse(text).ok());
        Some((token, server))
    }

    /// [`salvage`](Self::salvage), with the token fetched from the
    /// credential store when `auth.json` names an entry: what `logout`
    /// revokes when the rest of the file is damaged.
    pub fn salvage_token(&self) -> Option<(Token, String)> {
        let (token, server) = self.salvage()?;
        let token = match token {
            Some(token) => token,
            None => {
                let entry = keyring_entry(&self.raw()?)?;
                Token::parse(&self.keyring.get(&entry).ok()??).ok()?
            }
        };
        Some((token, server))
    }

    /// Saves the login: its token in the credential store when `storage`
    /// asks for it and the store takes it within 2 s, else in the file; the
    /// file atomically with mode 0600, in a directory made 0700. Refuses
    /// (exit 1) when the directory cannot be made private. A fallback to
    /// the file is told once per config directory. The token of the login
    /// this one replaces is removed from the store if it stays unused there.
    pub fn save(&self, file: &AuthFile, storage: TokenStorage, out: &Output) -> CliResult<Saved> {
        self.prepare()?;
        let previous = self.raw().as_ref().and_then(keyring_entry);
        let entry = EntryName::for_dir(&self.dir);
        let in_keyring = storage == TokenStorage::Keyring
            && self.keyring != Keyring::Off
            && match self.keyring.set(&entry, &file.token) {
                Ok(()) => true,
                Err(failure) => {
                    self.tell_fallback_once(&failure, out);
                    false
                }
            };
        let encoded = if in_keyring {
            serde_json::to_string_pretty(&WithoutToken {
                version: file.version,
                keyring: &entry,
                user: &file.user,
                created_at: &file.created_at,
                source: file.source,
                server: &file.server,
            })
        } else {
            serde_json::to_string_pretty(file)
        };
        let written = encoded
            .map_err(|err| CliError::failure(format!("Could not encode the login: {err}")))
            .and_then(|text| {
                private_file::write_atomic(&self.dir, AUTH_FILE, text.as_bytes()).map_err(|err| {
                    CliError::failure(format!(
                        "Could not save the login to {}: {err}",
                        self.path().display()
                    ))
                })
            });
        let path = match written {
            Ok(path) => path,
            Err(err) => {
                if in_keyring {
                    let _ = self.keyring.delete(&entry);
                }
                return Err(err);
            }
        };
        if let Some(old) = previous.filter(|old| !in_keyring || *old != entry) {
            let _ = self.keyring.delete(&old);
        }
        Ok(Saved {
            path,
            storage: if in_keyring {
                TokenStorage::Keyring
            } else {
                TokenStorage::File
            },
        })
    }

    /// Says, the first time only, that the token went to the file.
    fn tell_fallback_once(&self, failure: &Failure, out: &Output) {
        if self.dir.join(NOTICE_FILE).exists() {
            return;
        }
        out.warn(format!(
            "No OS credential store could keep the token ({failure}); it is saved in {} instead, readable only by you. (Said once.)",
            self.path().display()
        ));
        let note = serde_json::json!({
            "file_fallback_told_at": crate::base::when::now_rfc3339(),
            "reason": failure.to_string(),
        });
        let _ = private_file::write_atomic(&self.dir, NOTICE_FILE, note.to_string().as_bytes());
    }

    /// Deletes `auth.json`; `Ok(false)` when there was none.
    pub fn remove(&self) -> io::Result<bool> {
        match fs::remove_file(self.path()) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes the token from the credential store: the entry `auth.json`
    /// names, and this directory's own (left by a login whose file has gone
    /// since). Call it before [`remove`](Self::remove): it reads the file.
    /// Not reaching the store counts only when `auth.json` named an entry.
    pub fn remove_from_keyring(&self) -> KeyringRemoval {
        let named = self.raw().as_ref().and_then(keyring_entry);
        let own = EntryName::for_dir(&self.dir);
        let mut entries: Vec<&EntryName> = named.iter().collect();
        if named.as_ref() != Some(&own) {
            entries.push(&own);
        }
        let mut outcome = KeyringRemoval::NoneThere;
        for entry in entries {
            match self.keyring.delete(entry) {
                Ok(true) => outcome = KeyringRemoval::Removed,
                Ok(false) => {}
                Err(failure) if named.as_ref() == Some(entry) => {
                    return KeyringRemoval::Failed(failure);
                }
                Err(_) => {}
            }
        }
        outcome
    }

    /// Makes the config directory exist with mode 0700, or refuses (exit
    /// 1). `login` calls it before anything else, so a login never mints a
    /// token it then cannot keep.
    pub fn prepare(&self) -> CliResult<()> {
        private_file::prepare_dir(&self.dir).map_err(|detail| {
            CliError::failure(format!(
                "Refusing to save the token: cannot make {} private (mode 0700): {detail}",
                self.dir.display()
            ))
        })
    }
}

/// The credential store's entry a file without a token names.
fn keyring_entry(object: &serde_json::Map<String, Value>) -> Option<EntryName> {
    if object.contains_key("token") {
        return None;
    }
    serde_json::from_value(object.get(KEYRING_FIELD)?.clone()).ok()
}

fn parse(value: Value, storage: TokenStorage) -> Option<SavedLogin> {
    let file: AuthFile = serde_json::from_value(value).ok()?;
    if file.version != FILE_VERSION {
        return None;
    }
    let token = Token::parse(&file.token).ok()?;
    Some(SavedLogin {
        token,
        file,
        storage,
    })
}

/// Where the token a command uses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The `--token` flag.
    Flag,
    /// `CLAUDEMESH_TOKEN`.
    Env,
    /// The saved login, its token in `auth.json` itself.
    File,
    /// The saved login, its token in the OS credential store (`auth.json`
    /// names the entry).
    Keyring,
}

impl TokenSource {
    pub fn describe(self, auth_path: &Path) -> String {
        match self {
            Self::Flag => "--token flag".to_owned(),
            Self::Env => "CLAUDEMESH_TOKEN environment variable".to_owned(),
            Self::File => auth_path.display().to_string(),
            Self::Keyring => format!(
                "the OS credential store (the rest of the login in {})",
                auth_path.display()
            ),
        }
    }

    /// Whether the token is the saved login's (`auth.json`, its token there
    /// or in the credential store).
    pub fn is_saved_login(self) -> bool {
        matches!(self, Self::File | Self::Keyring)
    }
}

/// The token a command will use.
pub struct Credential {
    pub token: Token,
    pub source: TokenSource,
    /// The saved login, when the token came from it.
    pub saved: Option<AuthFile>,
}

/// `--token` > `CLAUDEMESH_TOKEN` > the saved login. The file is read only when
/// neither of the others is given, so a damaged file does not get in the way
/// of an explicit token. Empty values count as absent. A malformed flag or
/// variable fails (exit 1) before any request, as a malformed token given
/// to `login` does (the spec's error table).
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    load_file: impl FnOnce() -> CliResult<Option<SavedLogin>>,
) -> CliResult<Option<Credential>> {
    let given = |text: Option<&str>, source: TokenSource, what: &str| {
        let text = text.map(str::trim).filter(|t| !t.is_empty())?;
        Some(
            Token::parse(text)
                .map(|token| Credential {
                    token,
                    source,
                    saved: None,
                })
                .map_err(|err| {
                    CliError::failure(format!(
                        "Invalid token format in {what} (expected cm_pat_… or cm_session_…): {err}"
                    ))
                }),
        )
    };
    if let Some(found) = given(flag, TokenSource::Flag, "--token") {
        return found.map(Some);
    }
    if let Some(found) = given(env, TokenSource::Env, "CLAUDEMESH_TOKEN") {
        return found.map(Some);
    }
    Ok(load_file()?.map(|saved| Credential {
        token: saved.token,
        source: match saved.storage {
            TokenStorage::File => TokenSource::File,
            TokenStorage::Keyring => TokenSource::Keyring,
        },
        saved: Some(saved.file),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::TokenKind;

    pub(super) fn quiet() -> Output {
        Output::from_env(true)
    }

    /// A store that keeps tokens in the file (no credential store is ever
    /// touched by these tests).
    fn file_store(dir: PathBuf) -> AuthStore {
        AuthStore::with_keyring(dir, Keyring::Off)
    }

    pub(super) fn sample(token: &Token) -> AuthFile {
        AuthFile {
            version: 1,
            token: token.expose().to_owned(),
            user: UserSummary {
                id: "usr_1".into(),
                name: "Alice".into(),
                email: "alice@example.com".into(),
            },
            created_at: "2026-01-01T00:00:00Z".into(),
            source: AuthSource::DeviceCode,
            server: "http://127.0.0.1:3000".into(),
        }
    }

    fn saved(token: &Token) -> CliResult<Option<SavedLogin>> {
        Ok(Some(SavedLogin {
            token: token.clone(),
            file: sample(token),
            storage: TokenStorage::File,
        }))
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let flag = Token::generate(TokenKind::Pat);
        let env = Token::generate(TokenKind::Pat);
        let file = Token::generate(TokenKind::Session);

        let got = resolve(Some(flag.expose()), Some(env.expose()), || saved(&file))
            .unwrap()
            .unwrap();
        assert_eq!((got.token, got.source), (flag.clone(), TokenSource::Flag));

        let got = resolve(None, Some(env.expose()), || saved(&file))
            .unwrap()
            .unwrap();
        assert_eq!((got.token, got.source), (env.clone(), TokenSource::Env));

        let got = resolve(Some(""), Some("  "), || saved(&file))
            .unwrap()
            .unwrap();
        assert_eq!((got.token, got.source), (file.clone(), TokenSource::File));
        assert!(got.saved.is_some());

        assert!(resolve(None, None, || Ok(None)).unwrap().is_none());
    }

    #[test]
    fn an_explicit_token_does_not_read_the_file() {
        let flag = Token::generate(TokenKind::Pat);
        let got = resolve(Some(flag.expose()), None, || {
            Err(CliError::auth_file_corrupted())
        });
        assert!(got.is_ok());
        let got = resolve(None, None, || Err(CliError::auth_file_corrupted()));
        assert_eq!(got.err().map(|e| e.exit), Some(Exit::Auth));
    }

    #[test]
    fn a_malformed_explicit_token_fails_without_echoing_it() {
        let err = resolve(Some("cm_pat_notreal"), None, || Ok(None))
            .err()
            .unwrap();
        assert_eq!(err.exit, Exit::Failure);
        assert!(err.message.contains("Invalid token format in --token"));
        assert!(!err.message.contains("notreal"));
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let home = tempfile::tempdir().unwrap();
        let store = file_store(home.path().join("nested").join(".claudemesh"));
        let token = Token::generate(TokenKind::Session);
        let saved = store
            .save(&sample(&token), TokenStorage::Keyring, &quiet())
            .unwrap();
        assert_eq!(saved.storage, TokenStorage::File);
        let path = saved.path;
        assert_eq!(path, store.path());
        let loaded = store.load(&quiet()).unwrap().unwrap();
        assert_eq!(loaded.token, token);
        assert_eq!(loaded.file.user.name, "Alice");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        }
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(store.path().parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, [AUTH_FILE]);
        assert!(store.remove().unwrap());
        assert!(!store.remove().unwrap());
        assert!(store.load(&quiet()).unwrap().is_none());
    }

    #[test]
    fn the_file_format_is_pinned() {
        let token = Token::from_random(TokenKind::Pat, [0; 32]);
        let mut file = sample(&token);
        file.source = AuthSource::Pat;
        let value = serde_json::to_value(&file).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["source"], "pat");
        assert_eq!(value["user"]["email"], "alice@example.com");
        assert_eq!(value["server"], "http://127.0.0.1:3000");
        assert_eq!(
            serde_json::to_value(AuthSource::DeviceCode).unwrap(),
            "device-code"
        );
    }

    #[test]
    fn damaged_files_are_corrupted_not_ignored() {
        let home = tempfile::tempdir().unwrap();
        let store = file_store(home.path().to_owned());
        let token = Token::generate(TokenKind::Pat);
        let mut wrong_version = serde_json::to_value(sample(&token)).unwrap();
        wrong_version["version"] = 2.into();
        let mut bad_token = serde_json::to_value(sample(&token)).unwrap();
        bad_token["token"] = "cm_pat_garbage".into();
        for text in [
            "{not json".to_owned(),
            "{}".to_owned(),
            wrong_version.to_string(),
            bad_token.to_string(),
        ] {
            fs::write(store.path(), &text).unwrap();
            let err = store.load(&quiet()).err().unwrap();
            assert_eq!(err, CliError::auth_file_corrupted(), "{text}");
        }
        fs::write(store.path(), wrong_version.to_string()).unwrap();
        let (salvaged, server) = store.salvage().unwrap();
        assert_eq!(
            (salvaged, server.as_str()),
            (Some(token.clone()), "http://127.0.0.1:3000")
        );
        assert_eq!(store.salvage_token().unwrap().0, token);
        let mut no_server = wrong_version.clone();
        no_server.as_object_mut().unwrap().remove("server");
        fs::write(store.path(), no_server.to_string()).unwrap();
        assert!(store.salvage().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_too_open_file_is_fixed_on_load() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let store = file_store(home.path().join("cm"));
        let token = Token::generate(TokenKind::Pat);
        store
            .save(&sample(&token), TokenStorage::Keyring, &quiet())
            .unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(store.load(&quiet()).unwrap().is_some());
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn an_open_directory_is_made_private_before_saving() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("cm");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = file_store(dir.clone());
        store
            .save(
                &sample(&Token::generate(TokenKind::Pat)),
                TokenStorage::File,
                &quiet(),
            )
            .unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_directory_that_cannot_be_made_refuses_the_save() {
        let home = tempfile::tempdir().unwrap();
        let blocker = home.path().join("file");
        fs::write(&blocker, "not a directory").unwrap();
        let store = file_store(blocker.join("cm"));
        let err = store
            .save(
                &sample(&Token::generate(TokenKind::Pat)),
                TokenStorage::Keyring,
                &quiet(),
            )
            .err()
            .unwrap();
        assert_eq!(err.exit, Exit::Failure);
        assert!(
            err.message.starts_with("Refusing to save the token"),
            "{}",
            err.message
        );
    }
}

/// The token in the OS credential store, with keyring-core's mock store and
/// the test doubles that fail or hang (never the machine's own store).
#[cfg(test)]
#[cfg(feature = "keyring")]
mod keyring_tests {
    use super::tests::{quiet, sample};
    use super::*;
    use crate::stores::credential_store::{self, EntryName, Failure, Keyring};
    use claudemesh_api::TokenKind;

    fn file_text(store: &AuthStore) -> String {
        fs::read_to_string(store.path()).unwrap()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Saved with `storage` into a fresh directory: the store, and where the
    /// token went.
    fn saved_with(
        keyring: Keyring,
        storage: TokenStorage,
    ) -> (tempfile::TempDir, AuthStore, Token) {
        let home = tempfile::tempdir().unwrap();
        let store = AuthStore::with_keyring(home.path().join(".claudemesh"), keyring);
        let token = Token::generate(TokenKind::Session);
        let saved = store.save(&sample(&token), storage, &quiet()).unwrap();
        assert_eq!(saved.path, store.path());
        (home, store, token)
    }

    /// The fallback: the token is in a 0600 file, and the notice was told
    /// (and remembered, so it is told once).
    fn assert_in_the_file(store: &AuthStore, token: &Token, told: bool) {
        let text = file_text(store);
        assert!(text.contains(token.expose()), "the token is in the file");
        assert!(!text.contains(&format!("\"{KEYRING_FIELD}\"")));
        #[cfg(unix)]
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(store.dir.join(NOTICE_FILE).exists(), told);
        let loaded = store.load(&quiet()).unwrap().unwrap();
        assert_eq!(&loaded.token, token);
        assert_eq!(loaded.storage, TokenStorage::File);
    }

    #[test]
    fn the_mock_store_round_trips_and_the_file_keeps_all_but_the_token() {
        let (_home, store, token) = saved_with(Keyring::Mock, TokenStorage::Keyring);
        let text = file_text(&store);
        assert!(!text.contains(token.expose()), "no token in auth.json");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(value.get("token").is_none());
        assert_eq!(value["version"], 1);
        assert_eq!(value["user"]["name"], "Alice");
        assert_eq!(value["server"], "http://127.0.0.1:3000");
        let entry = EntryName::for_dir(&store.dir);
        assert_eq!(value[KEYRING_FIELD]["service"], "claudemesh");
        assert_eq!(value[KEYRING_FIELD]["user"], entry.user.as_str());
        #[cfg(unix)]
        assert_eq!(mode(&store.path()), 0o600);
        assert!(!store.dir.join(NOTICE_FILE).exists(), "nothing to tell");
        assert_eq!(
            Keyring::Mock.get(&entry).unwrap().as_deref(),
            Some(token.expose())
        );

        // Another store of the same directory (another command) loads it,
        // and says where the token came from (`whoami`'s source).
        let again = AuthStore::with_keyring(store.dir.clone(), Keyring::Mock);
        let loaded = again.load(&quiet()).unwrap().unwrap();
        assert_eq!(loaded.token, token);
        assert_eq!(loaded.storage, TokenStorage::Keyring);
        let credential = resolve(None, None, || again.load(&quiet()))
            .unwrap()
            .unwrap();
        assert_eq!(credential.source, TokenSource::Keyring);
        assert_eq!(serde_json::to_value(credential.source).unwrap(), "keyring");
        assert_eq!(loaded.file.token, token.expose());
        assert_eq!(loaded.file.user.email, "alice@example.com");
        // Quietly, and without the store, the server; with it, the token.
        assert_eq!(
            again.salvage(),
            Some((None, "http://127.0.0.1:3000".to_owned()))
        );
        assert_eq!(again.salvage_token().unwrap().0, token);

        // A new login replaces the token in the same entry.
        let newer = Token::generate(TokenKind::Pat);
        let saved = again
            .save(&sample(&newer), TokenStorage::Keyring, &quiet())
            .unwrap();
        assert_eq!(saved.storage, TokenStorage::Keyring);
        assert!(
            saved
                .describe()
                .starts_with("Token saved to the OS credential store")
        );
        assert_eq!(again.load(&quiet()).unwrap().unwrap().token, newer);
    }

    #[test]
    fn a_store_that_fails_falls_back_to_the_file_and_says_so_once() {
        let (_home, store, token) = saved_with(Keyring::Fail, TokenStorage::Keyring);
        assert_in_the_file(&store, &token, true);
        let note: Value =
            serde_json::from_str(&fs::read_to_string(store.dir.join(NOTICE_FILE)).unwrap())
                .unwrap();
        assert!(
            note["reason"]
                .as_str()
                .unwrap()
                .contains("failing test store"),
            "{note}"
        );
        assert!(note["file_fallback_told_at"].is_string());

        // The mock store failing the one call, as a locked keyring does.
        let home = tempfile::tempdir().unwrap();
        let store = AuthStore::with_keyring(home.path().join("cm"), Keyring::Mock);
        credential_store::mock_fails_next(&EntryName::for_dir(&store.dir));
        let token = Token::generate(TokenKind::Pat);
        let saved = store
            .save(&sample(&token), TokenStorage::Keyring, &quiet())
            .unwrap();
        assert_eq!(saved.storage, TokenStorage::File);
        assert_eq!(
            saved.describe(),
            format!("Token saved to {}", store.path().display())
        );
        assert_in_the_file(&store, &token, true);
        // The next login reaches the store; the notice stays told.
        let next = Token::generate(TokenKind::Pat);
        let saved = store
            .save(&sample(&next), TokenStorage::Keyring, &quiet())
            .unwrap();
        assert_eq!(saved.storage, TokenStorage::Keyring);
        assert!(!file_text(&store).contains(next.expose()));
    }

    #[test]
    fn a_store_that_hangs_falls_back_to_the_file() {
        let (_home, store, token) = saved_with(Keyring::Hang, TokenStorage::Keyring);
        assert_in_the_file(&store, &token, true);
        let note = fs::read_to_string(store.dir.join(NOTICE_FILE)).unwrap();
        assert!(note.contains(&Failure::NoAnswer.to_string()), "{note}");
    }

    #[test]
    fn insecure_storage_keeps_the_token_in_the_file_and_clears_the_store() {
        let (_home, store, token) = saved_with(Keyring::Mock, TokenStorage::Keyring);
        let entry = EntryName::for_dir(&store.dir);
        assert!(Keyring::Mock.get(&entry).unwrap().is_some());

        let next = Token::generate(TokenKind::Pat);
        let saved = store
            .save(&sample(&next), TokenStorage::File, &quiet())
            .unwrap();
        assert_eq!(saved.storage, TokenStorage::File);
        // Asked for, so not a fallback: nothing to tell.
        assert_in_the_file(&store, &next, false);
        assert_eq!(
            Keyring::Mock.get(&entry).unwrap(),
            None,
            "the replaced token does not linger in the store"
        );
        assert!(!file_text(&store).contains(token.expose()));
    }

    #[test]
    fn logout_removes_the_store_entry_and_the_file() {
        let (_home, store, _token) = saved_with(Keyring::Mock, TokenStorage::Keyring);
        let entry = EntryName::for_dir(&store.dir);
        assert_eq!(store.remove_from_keyring(), KeyringRemoval::Removed);
        assert!(store.remove().unwrap());
        assert_eq!(Keyring::Mock.get(&entry).unwrap(), None);
        assert!(!store.path().exists());
        assert!(store.load(&quiet()).unwrap().is_none());
        assert_eq!(store.remove_from_keyring(), KeyringRemoval::NoneThere);
        assert!(!store.remove().unwrap());

        // A token left in the store by a login whose file has gone.
        Keyring::Mock.set(&entry, "left over").unwrap();
        assert_eq!(store.remove_from_keyring(), KeyringRemoval::Removed);
        assert_eq!(Keyring::Mock.get(&entry).unwrap(), None);

        // A store that cannot be reached: told only when the file said the
        // token was there.
        let (_home, store, _token) = saved_with(Keyring::Mock, TokenStorage::Keyring);
        let unreachable = AuthStore::with_keyring(store.dir.clone(), Keyring::Fail);
        assert!(matches!(
            unreachable.remove_from_keyring(),
            KeyringRemoval::Failed(Failure::Failed(_))
        ));
        let (_home, store, _token) = saved_with(Keyring::Off, TokenStorage::Keyring);
        let unreachable = AuthStore::with_keyring(store.dir.clone(), Keyring::Fail);
        assert_eq!(unreachable.remove_from_keyring(), KeyringRemoval::NoneThere);
    }

    #[test]
    fn a_token_the_store_does_not_give_back_is_an_auth_error() {
        let (_home, store, token) = saved_with(Keyring::Mock, TokenStorage::Keyring);
        let entry = EntryName::for_dir(&store.dir);

        credential_store::mock_fails_next(&entry);
        let err = store.load(&quiet()).err().unwrap();
        assert_eq!(err.exit, Exit::Auth);
        assert!(
            err.message
                .starts_with("Cannot read the saved login's token from the OS credential store"),
            "{}",
            err.message
        );
        assert!(!err.message.contains(token.expose()));

        let switched_off = AuthStore::with_keyring(store.dir.clone(), Keyring::Off);
        assert_eq!(switched_off.load(&quiet()).err().unwrap().exit, Exit::Auth);

        assert_eq!(Keyring::Mock.delete(&entry), Ok(true));
        let err = store.load(&quiet()).err().unwrap();
        assert_eq!(err.exit, Exit::Auth);
        assert!(err.message.contains("missing"), "{}", err.message);

        // Not a token at all: corrupted.
        Keyring::Mock.set(&entry, "cm_pat_garbage").unwrap();
        assert_eq!(
            store.load(&quiet()).err().unwrap(),
            CliError::auth_file_corrupted()
        );
    }
}

//! The saved login, `auth.json` in the config directory, and which token a
//! command uses.
//!
//! The file is written only by a successful `claudemesh login`: mode 0600 in
//! a directory of mode 0700, through a temporary file renamed over the old
//! one ([`private_file`]), so a crash never leaves half a token behind. A file found with a
//! wider mode is warned about and fixed. A file that does not parse, or holds
//! no well-formed token, is "corrupted" (exit 2), never silently ignored.
//!
//! Token resolution: `--token` > `CLAUDEMESH_TOKEN` > `auth.json`.

use crate::exit::{CliError, CliResult, Exit};
use crate::output::Output;
use crate::private_file::{self, Read};
use claudemesh_api::Token;
use claudemesh_api::wire::UserSummary;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const AUTH_FILE: &str = "auth.json";
pub const FILE_VERSION: u32 = 1;

/// How the saved token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthSource {
    DeviceCode,
    Pat,
}

/// `auth.json`. The raw token is in it, so it never implements `Debug`.
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

/// The saved login, checked: its token is well formed.
pub struct SavedLogin {
    pub token: Token,
    pub file: AuthFile,
}

/// Reads and writes `auth.json` in one config directory.
#[derive(Debug, Clone)]
pub struct AuthStore {
    dir: PathBuf,
}

impl AuthStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(AUTH_FILE)
    }

    /// The saved login, or `None` when there is none. Fixes a too-open mode
    /// (with a warning); a file that cannot be understood is an error.
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
        parse(&text)
            .map(Some)
            .ok_or_else(CliError::auth_file_corrupted)
    }

    /// The token and its server from a file whose rest is damaged: logout
    /// uses them to revoke what it can before removing the file. Without a
    /// server there is nowhere safe to send the token, so nothing is returned.
    pub fn salvage(&self) -> Option<(Token, String)> {
        let text = fs::read_to_string(self.path()).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let token = Token::parse(value.get("token")?.as_str()?).ok()?;
        let server = crate::api::normalize_base_url(value.get("server")?.as_str()?).ok()?;
        Some((token, server))
    }

    /// Writes the file atomically with mode 0600, in a directory made 0700.
    /// Refuses (exit 1) when the directory cannot be made private.
    pub fn save(&self, file: &AuthFile) -> CliResult<PathBuf> {
        self.prepare()?;
        let text = serde_json::to_string_pretty(file)
            .map_err(|err| CliError::failure(format!("Could not encode the login: {err}")))?;
        private_file::write_atomic(&self.dir, AUTH_FILE, text.as_bytes()).map_err(|err| {
            CliError::failure(format!(
                "Could not save the login to {}: {err}",
                self.path().display()
            ))
        })
    }

    /// Deletes the file; `Ok(false)` when there was none.
    pub fn remove(&self) -> io::Result<bool> {
        match fs::remove_file(self.path()) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
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

fn parse(text: &str) -> Option<SavedLogin> {
    let file: AuthFile = serde_json::from_str(text).ok()?;
    if file.version != FILE_VERSION {
        return None;
    }
    let token = Token::parse(&file.token).ok()?;
    Some(SavedLogin { token, file })
}

/// Where the token a command uses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The `--token` flag.
    Flag,
    /// `CLAUDEMESH_TOKEN`.
    Env,
    /// The saved login, `auth.json`.
    File,
}

impl TokenSource {
    pub fn describe(self, auth_path: &Path) -> String {
        match self {
            Self::Flag => "--token flag".to_owned(),
            Self::Env => "CLAUDEMESH_TOKEN environment variable".to_owned(),
            Self::File => auth_path.display().to_string(),
        }
    }
}

/// The token a command will use.
pub struct Credential {
    pub token: Token,
    pub source: TokenSource,
    /// The saved login, when the token came from it.
    pub saved: Option<AuthFile>,
}

/// `--token` > `CLAUDEMESH_TOKEN` > `auth.json`. The file is read only when
/// neither of the others is given, so a damaged file does not get in the way
/// of an explicit token. Empty values count as absent. A malformed flag or
/// variable is an authentication error (exit 2): it cannot authenticate.
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
                    CliError::new(
                        Exit::Auth,
                        format!("Invalid token format in {what} (expected cm_pat_… or cm_session_…): {err}"),
                    )
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
        source: TokenSource::File,
        saved: Some(saved.file),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::TokenKind;

    fn quiet() -> Output {
        Output::from_env(true)
    }

    fn sample(token: &Token) -> AuthFile {
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
    fn a_malformed_explicit_token_is_an_auth_error_that_does_not_echo_it() {
        let err = resolve(Some("cm_pat_notreal"), None, || Ok(None))
            .err()
            .unwrap();
        assert_eq!(err.exit, Exit::Auth);
        assert!(err.message.contains("Invalid token format in --token"));
        assert!(!err.message.contains("notreal"));
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() {
        let home = tempfile::tempdir().unwrap();
        let store = AuthStore::new(home.path().join("nested").join(".claudemesh"));
        let token = Token::generate(TokenKind::Session);
        let path = store.save(&sample(&token)).unwrap();
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
        let store = AuthStore::new(home.path().to_owned());
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
            (token, "http://127.0.0.1:3000")
        );
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
        let store = AuthStore::new(home.path().join("cm"));
        let token = Token::generate(TokenKind::Pat);
        store.save(&sample(&token)).unwrap();
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
        let store = AuthStore::new(dir.clone());
        store
            .save(&sample(&Token::generate(TokenKind::Pat)))
            .unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_directory_that_cannot_be_made_refuses_the_save() {
        let home = tempfile::tempdir().unwrap();
        let blocker = home.path().join("file");
        fs::write(&blocker, "not a directory").unwrap();
        let store = AuthStore::new(blocker.join("cm"));
        let err = store
            .save(&sample(&Token::generate(TokenKind::Pat)))
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

//! What every command gets: where the config lives, how to print, which
//! server and which token to use. Built once from the command line and the
//! environment, so commands never read either themselves.

use crate::api::Api;
use crate::base::exit::{CliError, CliResult, Exit, ExplicitToken};
use crate::base::output::Output;
use crate::base::server_url::{self, DEFAULT_API_URL};
use crate::cli::Cli;
use crate::stores::auth_store::{self, AuthFile, AuthStore, Credential};
use crate::stores::config_store::ConfigStore;
use crate::telemetry::Telemetry;
use claudemesh_api::Token;
use claudemesh_api::wire::UserSummary;
use std::path::PathBuf;

pub const CONFIG_DIR_NAME: &str = ".claudemesh";

pub struct Context {
    pub out: Output,
    pub config_dir: PathBuf,
    /// `--api-url` or `CLAUDEMESH_API_URL`, checked.
    api_url: Option<String>,
    token_flag: Option<String>,
    env_token: Option<String>,
    /// Usage events of this command (off until `main` starts it).
    pub telemetry: Telemetry,
}

/// `CLAUDEMESH_HOME` if set, else `~/.claudemesh`.
pub fn config_dir(claudemesh_home: Option<String>, home: Option<PathBuf>) -> CliResult<PathBuf> {
    if let Some(dir) = claudemesh_home.filter(|d| !d.trim().is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    home.filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(CONFIG_DIR_NAME))
        .ok_or_else(|| {
            CliError::failure("Cannot find your home directory")
                .with_hint("Set CLAUDEMESH_HOME to the directory claudemesh should use.")
        })
}

impl Context {
    pub fn from_cli(cli: &Cli, out: Output) -> CliResult<Self> {
        let api_url = cli
            .api_url
            .clone()
            .or_else(|| std::env::var("CLAUDEMESH_API_URL").ok())
            .filter(|u| !u.trim().is_empty())
            .map(|u| server_url::normalize_base_url(&u))
            .transpose()?;
        Ok(Self {
            out,
            config_dir: config_dir(std::env::var("CLAUDEMESH_HOME").ok(), std::env::home_dir())?,
            api_url,
            token_flag: cli.token.clone(),
            env_token: std::env::var("CLAUDEMESH_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            telemetry: Telemetry::off(),
        })
    }

    pub fn store(&self) -> AuthStore {
        AuthStore::new(self.config_dir.clone())
    }

    /// `config.json`: the meshes joined on this machine.
    pub fn config(&self) -> ConfigStore {
        ConfigStore::new(self.config_dir.clone())
    }

    /// For commands that act as the signed-in account: the client, its
    /// server, and whose account it is (from the saved login, else asked of
    /// the server). Not logged in is exit 2.
    pub fn account(&self) -> CliResult<Account> {
        let credential = self.credential()?.ok_or_else(CliError::not_logged_in)?;
        let server = self.server_for(&credential)?;
        let api = self.api(&server, Some(credential.token.clone()));
        let user = match credential.saved {
            Some(file) => file.user,
            None => api.whoami().map_err(|err| err.into_cli(&server))?.user,
        };
        Ok(Account { api, server, user })
    }

    /// The `--token` flag, when given (and not empty).
    pub fn token_flag(&self) -> Option<&str> {
        self.token_flag.as_deref().filter(|t| !t.trim().is_empty())
    }

    pub fn env_token_set(&self) -> bool {
        self.env_token.is_some()
    }

    /// Where the token this command uses was given, when it was given
    /// explicitly rather than saved by `login`.
    pub fn explicit_token(&self) -> Option<ExplicitToken> {
        if self.token_flag().is_some() {
            Some(ExplicitToken::Flag)
        } else if self.env_token_set() {
            Some(ExplicitToken::Env)
        } else {
            None
        }
    }

    /// A refusal of "the token" said of the token actually used: a token
    /// given with `--token` or `CLAUDEMESH_TOKEN` is named, since logging in
    /// again would not replace it.
    pub fn explain(&self, err: CliError) -> CliError {
        match self.explicit_token() {
            Some(given) if err == CliError::auth_failed() => {
                CliError::explicit_token_rejected(given, &self.requested_server())
            }
            _ => err,
        }
    }

    /// The server asked for (`--api-url`, `CLAUDEMESH_API_URL`), else the
    /// default: where `login` goes, and where a token given with `--token`
    /// or `CLAUDEMESH_TOKEN` is sent.
    pub fn requested_server(&self) -> String {
        self.api_url
            .clone()
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
    }

    /// The server a credential is sent to. A saved token goes only to the
    /// server that issued it: asking for another server with a saved login
    /// is an error rather than a leak of the token to that server.
    pub fn server_for(&self, credential: &Credential) -> CliResult<String> {
        let Some(file) = &credential.saved else {
            return Ok(self.requested_server());
        };
        let saved = saved_server(file)?;
        match &self.api_url {
            Some(asked) if *asked != saved => Err(CliError::new(
                Exit::Auth,
                format!("The saved login is for {saved}, not {asked}"),
            )
            .with_hint(format!(
                "Run `claudemesh login` to sign in to {asked}, or unset CLAUDEMESH_API_URL."
            ))),
            _ => Ok(saved),
        }
    }

    /// The token this command uses: `--token` > `CLAUDEMESH_TOKEN` > auth.json.
    pub fn credential(&self) -> CliResult<Option<Credential>> {
        auth_store::resolve(self.token_flag(), self.env_token.as_deref(), || {
            self.store().load(&self.out)
        })
    }

    pub fn api(&self, server: &str, token: Option<Token>) -> Api {
        self.telemetry.talking_to(server);
        Api::new(server, token)
            .with_output(&self.out)
            .with_telemetry(&self.telemetry)
    }
}

/// The signed-in account a mesh command acts as.
pub struct Account {
    pub api: Api,
    pub server: String,
    pub user: UserSummary,
}

/// The server a saved login came from.
pub fn saved_server(file: &AuthFile) -> CliResult<String> {
    server_url::normalize_base_url(&file.server).map_err(|_| CliError::auth_file_corrupted())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(api_url: Option<&str>) -> Context {
        Context {
            out: Output::from_env(true),
            config_dir: PathBuf::from("/nonexistent"),
            api_url: api_url.map(str::to_owned),
            token_flag: None,
            env_token: None,
            telemetry: Telemetry::off(),
        }
    }

    fn credential(saved_server: Option<&str>) -> Credential {
        let token = Token::generate(claudemesh_api::TokenKind::Pat);
        let saved = saved_server.map(|server| AuthFile {
            version: 1,
            token: token.expose().to_owned(),
            user: claudemesh_api::wire::UserSummary {
                id: "usr_1".into(),
                name: "A".into(),
                email: "a@example.com".into(),
            },
            created_at: "2026-01-01T00:00:00Z".into(),
            source: crate::stores::auth_store::AuthSource::Pat,
            server: server.to_owned(),
        });
        Credential {
            token,
            source: if saved.is_some() {
                crate::stores::auth_store::TokenSource::File
            } else {
                crate::stores::auth_store::TokenSource::Env
            },
            saved,
        }
    }

    #[test]
    fn a_saved_token_goes_only_to_its_own_server() {
        let saved = credential(Some("http://a.test/"));
        assert_eq!(context(None).server_for(&saved).unwrap(), "http://a.test");
        assert_eq!(
            context(Some("http://a.test")).server_for(&saved).unwrap(),
            "http://a.test"
        );
        let err = context(Some("http://b.test"))
            .server_for(&saved)
            .unwrap_err();
        assert_eq!(err.exit, Exit::Auth);
        assert_eq!(
            err.message,
            "The saved login is for http://a.test, not http://b.test"
        );
    }

    #[test]
    fn an_explicit_token_goes_to_the_server_asked_for_or_the_default() {
        let env = credential(None);
        assert_eq!(context(None).server_for(&env).unwrap(), DEFAULT_API_URL);
        assert_eq!(
            context(Some("http://b.test")).server_for(&env).unwrap(),
            "http://b.test"
        );
    }

    #[test]
    fn claudemesh_home_moves_the_config_dir() {
        let home = Some(PathBuf::from("/home/a"));
        assert_eq!(
            config_dir(Some("/tmp/cm".into()), home.clone()).unwrap(),
            PathBuf::from("/tmp/cm")
        );
        assert_eq!(
            config_dir(None, home.clone()).unwrap(),
            PathBuf::from("/home/a/.claudemesh")
        );
        assert_eq!(
            config_dir(Some(" ".into()), home).unwrap(),
            PathBuf::from("/home/a/.claudemesh")
        );
        assert!(config_dir(None, None).is_err());
    }
}

//! What every command gets: where the config lives, how to print, which
//! server and which token to use. Built once from the command line and the
//! environment, so commands never read either themselves.

use crate::api::{self, Api};
use crate::auth_store::{self, AuthFile, AuthStore, Credential};
use crate::cli::Cli;
use crate::exit::{CliError, CliResult};
use crate::output::Output;
use claudemesh_api::Token;
use std::path::PathBuf;

pub const CONFIG_DIR_NAME: &str = ".claudemesh";

pub struct Context {
    pub out: Output,
    pub config_dir: PathBuf,
    /// `--api-url` or `CLAUDEMESH_API_URL`, checked.
    api_url: Option<String>,
    token_flag: Option<String>,
    env_token: Option<String>,
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
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(api::normalize_base_url)
            .transpose()?;
        Ok(Self {
            out,
            config_dir: config_dir(std::env::var("CLAUDEMESH_HOME").ok(), std::env::home_dir())?,
            api_url,
            token_flag: cli.token.clone(),
            env_token: std::env::var("CLAUDEMESH_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
        })
    }

    pub fn store(&self) -> AuthStore {
        AuthStore::new(self.config_dir.clone())
    }

    /// The `--token` flag, when given (and not empty).
    pub fn token_flag(&self) -> Option<&str> {
        self.token_flag.as_deref().filter(|t| !t.trim().is_empty())
    }

    pub fn env_token_set(&self) -> bool {
        self.env_token.is_some()
    }

    /// The server to log in to: the one asked for, else the default.
    pub fn login_server(&self) -> String {
        self.api_url
            .clone()
            .unwrap_or_else(|| api::DEFAULT_API_URL.to_owned())
    }

    /// The server to talk to: the one asked for, else the one the saved
    /// login came from, else the default.
    pub fn server_for(&self, saved: Option<&AuthFile>) -> CliResult<String> {
        if let Some(url) = &self.api_url {
            return Ok(url.clone());
        }
        match saved {
            Some(file) => {
                api::normalize_base_url(&file.server).map_err(|_| CliError::auth_file_corrupted())
            }
            None => Ok(api::DEFAULT_API_URL.to_owned()),
        }
    }

    /// The token this command uses: `--token` > `CLAUDEMESH_TOKEN` > auth.json.
    pub fn credential(&self) -> CliResult<Option<Credential>> {
        auth_store::resolve(self.token_flag(), self.env_token.as_deref(), || {
            self.store().load(&self.out)
        })
    }

    pub fn api(&self, server: &str, token: Option<Token>) -> Api {
        Api::new(server, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! The per-launch session directory: what `claudemesh launch` hands to the
//! `claudemesh mcp` that Claude Code starts.
//!
//! `<config dir>/sessions/<id>/` (0700) holds:
//! - `session.json` (0600): the mesh, who this session is, its ed25519
//!   session key pair and the member key's attestation of it;
//! - `mcp.json`: the MCP configuration given to Claude Code with
//!   `--mcp-config` (it names this directory in `CLAUDEMESH_CONFIG_DIR`);
//! - `mcp.log`: what the MCP server logs (its stdout carries MCP only).
//!
//! `launch` removes the directory when Claude Code exits; directories of
//! launches that crashed are swept by the next launch ([`sweep`]).

use crate::base::exit::{CliError, CliResult};
use crate::base::private_file;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const SESSIONS_DIR: &str = "sessions";
pub const SESSION_FILE: &str = "session.json";
pub const MCP_CONFIG_FILE: &str = "mcp.json";
pub const MCP_LOG_FILE: &str = "mcp.log";
/// The environment variable naming the session directory.
pub const CONFIG_DIR_ENV: &str = "CLAUDEMESH_CONFIG_DIR";
/// The MCP server's name in Claude Code (`server:claudemesh`).
pub const MCP_SERVER_NAME: &str = "claudemesh";
const VERSION: u32 = 1;
/// Where the launcher cannot be asked whether it still runs (not Linux), a
/// directory this old is taken for a leftover.
const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// How incoming messages reach Claude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageMode {
    /// Each message is pushed into the session as it arrives.
    #[default]
    Push,
    /// A one-line notice is pushed; the text waits for `check_messages`.
    Inbox,
    /// Nothing is pushed; messages wait for `check_messages`.
    Off,
}

impl MessageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Inbox => "inbox",
            Self::Off => "off",
        }
    }
}

/// `session.json`. Holds the session's secret key: no `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionFile {
    pub version: u32,
    /// The claudemesh server (its broker is at `/api/mesh/ws`).
    pub server: String,
    /// The account and the mesh record in `config.json` whose member key
    /// attests this session.
    pub user_id: String,
    pub mesh_id: String,
    pub mesh_slug: String,
    pub mesh_name: String,
    pub display_name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub message_mode: MessageMode,
    /// The session's ed25519 secret key (hex); its public half is the
    /// session's identity in the mesh.
    pub session_secret_key: String,
    pub session_public_key: String,
    /// The member key's attestation of the session key (ms since the epoch).
    pub attestation_expires_at: i64,
    pub attestation_signature: String,
    /// The rights the attestation limits the session to (`launch --caps`);
    /// absent: every right of the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<Vec<claudemesh_api::broker::SessionRight>>,
    /// The `claudemesh launch` process, for the sweep.
    pub launcher_pid: u32,
    pub created_at: String,
}

impl SessionFile {
    pub fn new_version() -> u32 {
        VERSION
    }
}

/// One session directory.
pub struct SessionDir {
    pub path: PathBuf,
}

impl SessionDir {
    /// Creates `<config dir>/sessions/<id>/` with its files.
    pub fn create(config_dir: &Path, session: &SessionFile, claudemesh: &Path) -> CliResult<Self> {
        Self::create_with_args(config_dir, session, claudemesh, &[])
    }

    /// [`SessionDir::create`], with arguments for `claudemesh mcp` after
    /// `mcp` (`--relay-permissions`).
    pub fn create_with_args(
        config_dir: &Path,
        session: &SessionFile,
        claudemesh: &Path,
        mcp_args: &[&str],
    ) -> CliResult<Self> {
        let sessions = config_dir.join(SESSIONS_DIR);
        let cannot = |path: &Path, why: String| {
            CliError::new(
                crate::base::exit::Exit::Permission,
                format!(
                    "Cannot make the session directory {}: {why}",
                    path.display()
                ),
            )
        };
        private_file::prepare_dir(&sessions).map_err(|why| cannot(&sessions, why))?;
        let id = format!(
            "{}-{}",
            std::process::id(),
            &session.session_public_key[..12.min(session.session_public_key.len())]
        );
        let path = sessions.join(id);
        private_file::prepare_dir(&path).map_err(|why| cannot(&path, why))?;
        let dir = Self { path };
        let text = serde_json::to_string_pretty(session).unwrap_or_default();
        let config = mcp_config(claudemesh, config_dir, &dir.path, mcp_args);
        let config = serde_json::to_string_pretty(&config).unwrap_or_default();
        for (name, bytes) in [
            (SESSION_FILE, text.as_bytes()),
            (MCP_CONFIG_FILE, config.as_bytes()),
        ] {
            if let Err(err) = private_file::write_atomic(&dir.path, name, bytes) {
                dir.remove();
                return Err(cannot(&dir.path, err.to_string()));
            }
        }
        Ok(dir)
    }

    pub fn mcp_config_path(&self) -> PathBuf {
        self.path.join(MCP_CONFIG_FILE)
    }

    /// Removes the directory and everything in it.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The MCP configuration Claude Code gets: one stdio server, this binary's
/// `mcp` command, told where its session directory is.
pub fn mcp_config(
    claudemesh: &Path,
    config_dir: &Path,
    session_dir: &Path,
    mcp_args: &[&str],
) -> serde_json::Value {
    let args: Vec<&str> = std::iter::once("mcp")
        .chain(mcp_args.iter().copied())
        .collect();
    json!({
        "mcpServers": {
            MCP_SERVER_NAME: {
                "type": "stdio",
                "command": claudemesh.display().to_string(),
                "args": args,
                "env": {
                    "CLAUDEMESH_HOME": config_dir.display().to_string(),
                    CONFIG_DIR_ENV: session_dir.display().to_string(),
                }
            }
        }
    })
}

/// Reads `session.json` from a session directory.
pub fn load(dir: &Path) -> CliResult<SessionFile> {
    let path = dir.join(SESSION_FILE);
    let text = std::fs::read_to_string(&path).map_err(|err| {
        CliError::failure(format!("Cannot read {}: {err}", path.display()))
            .with_hint("`claudemesh mcp` is started by Claude Code from `claudemesh launch`.")
    })?;
    let file: SessionFile = serde_json::from_str(&text)
        .map_err(|err| CliError::failure(format!("{} is damaged: {err}", path.display())))?;
    if file.version != VERSION {
        return Err(CliError::failure(format!(
            "{} was written by another version of claudemesh",
            path.display()
        )));
    }
    Ok(file)
}

/// Removes the session directories of launches that are no longer running.
/// Returns how many were removed.
pub fn sweep(config_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(config_dir.join(SESSIONS_DIR)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let alive = match load(&path) {
            Ok(file) => launcher_alive(file.launcher_pid, &path),
            // No readable session file: a launch that died while making the
            // directory, or one making it right now (between the directory
            // and session.json). The name tells whose it is.
            Err(_) => pid_in_name(&path).is_some_and(|pid| launcher_alive(pid, &path)),
        };
        if !alive && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The launcher's pid a session directory's name starts with
/// (`<pid>-<key prefix>`, see [`SessionDir::create`]).
fn pid_in_name(dir: &Path) -> Option<u32> {
    dir.file_name()?.to_str()?.split_once('-')?.0.parse().ok()
}

/// Whether the launch that made `dir` may still be running.
fn launcher_alive(pid: u32, dir: &Path) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    let age = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    age < STALE_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: u32) -> SessionFile {
        SessionFile {
            version: VERSION,
            server: "http://127.0.0.1:1".into(),
            user_id: "usr_1".into(),
            mesh_id: "msh_1".into(),
            mesh_slug: "dev".into(),
            mesh_name: "Dev".into(),
            display_name: "Alex".into(),
            role: String::new(),
            groups: vec![],
            message_mode: MessageMode::Push,
            session_secret_key: "00".repeat(32),
            session_public_key: "ab".repeat(32),
            attestation_expires_at: 0,
            attestation_signature: String::new(),
            rights: None,
            launcher_pid: pid,
            created_at: "2026-11-30T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_session_dir_is_private_and_names_itself_in_the_mcp_config() {
        let home = tempfile::tempdir().unwrap();
        let dir = SessionDir::create(
            home.path(),
            &session(std::process::id()),
            Path::new("/bin/claudemesh"),
        )
        .unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.mcp_config_path()).unwrap()).unwrap();
        let server = &config["mcpServers"]["claudemesh"];
        assert_eq!(server["command"], "/bin/claudemesh");
        assert_eq!(server["args"], json!(["mcp"]));
        assert_eq!(
            server["env"][CONFIG_DIR_ENV],
            dir.path.display().to_string()
        );
        assert_eq!(load(&dir.path).unwrap().mesh_slug, "dev");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
            let file = std::fs::metadata(dir.path.join(SESSION_FILE)).unwrap();
            assert_eq!(file.permissions().mode() & 0o777, 0o600);
        }
        dir.remove();
        assert!(!dir.path.exists());
    }

    #[test]
    fn the_sweep_removes_only_dead_launches() {
        let home = tempfile::tempdir().unwrap();
        let live =
            SessionDir::create(home.path(), &session(std::process::id()), Path::new("/x")).unwrap();
        // A pid that cannot be running: above the kernel's limit.
        let mut dead_session = session(u32::MAX - 1);
        dead_session.session_public_key = "cd".repeat(32);
        let dead = SessionDir::create(home.path(), &dead_session, Path::new("/x")).unwrap();
        std::fs::create_dir_all(home.path().join(SESSIONS_DIR).join("half-made")).unwrap();
        // A launch still making its directory: no session.json yet.
        let being_made = home
            .path()
            .join(SESSIONS_DIR)
            .join(format!("{}-0123456789ab", std::process::id()));
        std::fs::create_dir_all(&being_made).unwrap();
        assert_eq!(sweep(home.path()), 2);
        assert!(live.path.exists());
        assert!(!dead.path.exists());
        assert!(being_made.exists());
    }
}

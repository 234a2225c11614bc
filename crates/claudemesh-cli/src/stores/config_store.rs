//! `config.json` in the config directory: per server, the meshes joined on
//! this machine, each with this machine's key pair for that membership.
//!
//! The secret keys are in it, so it is kept like `auth.json`
//! ([`private_file`]): mode 0600 in a 0700 directory, written atomically,
//! a wider mode warned about and fixed. Commands that change it
//! (`create`, `join`, `sync`) hold an exclusive lock on `config.lock` from
//! reading it to writing it back, so two running at once never lose each
//! other's keys. A file that does not parse, or whose key pairs do not
//! match, is an error (exit 1) naming the file, never silently replaced:
//! it may hold the only copy of a key.
//!
//! A record belongs to one account (`user_id`): logging in as someone else
//! on the same machine neither shows nor touches the first account's
//! meshes.

use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::keys::{self, KeyPair};
use crate::base::output::Output;
use crate::base::private_file::{self, Read};
use claudemesh_api::Slug;
use claudemesh_api::wire::{MeshRole, MeshSummary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
const LOCK_FILE: &str = "config.lock";
pub const CONFIG_VERSION: u32 = 1;

/// `config.json`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    pub version: u32,
    /// Keyed by server URL (as `--api-url` / the saved login has it).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerMeshes>,
    /// This machine's settings (`"settings": {…}`), left out while default.
    #[serde(default, skip_serializing_if = "Settings::is_default")]
    pub settings: Settings,
}

/// Settings a person sets by editing `config.json`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `claudemesh launch` relays Claude Code's permission prompts to the
    /// member's other sessions, as with `--relay-permissions`.
    #[serde(default)]
    pub relay_permissions: bool,
}

impl Settings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            servers: BTreeMap::new(),
            settings: Settings::default(),
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ServerMeshes {
    #[serde(default)]
    pub meshes: Vec<JoinedMesh>,
}

/// One mesh joined on this machine. Holds a secret key: no `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinedMesh {
    pub slug: String,
    pub mesh_id: String,
    pub name: String,
    /// The account that joined.
    pub user_id: String,
    pub member_id: String,
    pub role: MeshRole,
    /// This member's name in the mesh.
    pub display_name: String,
    /// This machine's ed25519 public key for the membership (hex).
    pub public_key: String,
    /// Its secret half (hex). Never sent anywhere.
    pub secret_key: String,
    /// When this machine joined.
    pub joined_at: String,
    /// Set by `sync` when the server no longer lists the mesh for this
    /// account (left, removed, or the mesh is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_on_server_since: Option<String>,
}

impl JoinedMesh {
    /// A record for a membership the server just reported, with this
    /// machine's new key pair.
    pub fn new(mesh: &MeshSummary, user_id: &str, keys: &KeyPair, now: &str) -> Self {
        Self {
            slug: mesh.slug.clone(),
            mesh_id: mesh.id.clone(),
            name: mesh.name.clone(),
            user_id: user_id.to_owned(),
            member_id: mesh.member_id.clone(),
            role: mesh.role,
            display_name: mesh.display_name.clone(),
            public_key: keys.public_hex(),
            secret_key: keys.secret_hex(),
            joined_at: now.to_owned(),
            missing_on_server_since: None,
        }
    }

    /// Whether the server listed it at the last sync.
    pub fn on_server(&self) -> bool {
        self.missing_on_server_since.is_none()
    }

    /// Why this record cannot be used, if it cannot.
    fn problem(&self) -> Option<String> {
        let what = format!("the record of mesh `{}`", self.slug);
        if Slug::parse(&self.slug).is_err() {
            return Some(format!("{what} has an invalid slug"));
        }
        if self.mesh_id.is_empty() || self.user_id.is_empty() || self.member_id.is_empty() {
            return Some(format!("{what} lacks its ids"));
        }
        if !keys::is_public_key(&self.public_key) {
            return Some(format!("{what} has a malformed public key"));
        }
        match KeyPair::from_secret_hex(&self.secret_key) {
            None => Some(format!("{what} has a malformed secret key")),
            Some(pair) if pair.public_hex() != self.public_key => Some(format!(
                "{what} has a secret key that does not match its public key"
            )),
            Some(_) => None,
        }
    }
}

impl ConfigFile {
    /// The meshes `user_id` joined on this machine at `server`.
    pub fn meshes<'a>(
        &'a self,
        server: &str,
        user_id: &'a str,
    ) -> impl Iterator<Item = &'a JoinedMesh> + 'a {
        self.servers
            .get(server)
            .into_iter()
            .flat_map(|s| s.meshes.iter())
            .filter(move |m| m.user_id == user_id)
    }

    pub fn find(&self, server: &str, user_id: &str, mesh_id: &str) -> Option<&JoinedMesh> {
        self.servers
            .get(server)?
            .meshes
            .iter()
            .find(|m| m.user_id == user_id && m.mesh_id == mesh_id)
    }

    pub fn find_mut(
        &mut self,
        server: &str,
        user_id: &str,
        mesh_id: &str,
    ) -> Option<&mut JoinedMesh> {
        self.servers
            .get_mut(server)?
            .meshes
            .iter_mut()
            .find(|m| m.user_id == user_id && m.mesh_id == mesh_id)
    }

    /// Adds the record, replacing one of the same account and mesh.
    pub fn upsert(&mut self, server: &str, mesh: JoinedMesh) {
        let list = &mut self.servers.entry(server.to_owned()).or_default().meshes;
        match list
            .iter_mut()
            .find(|m| m.user_id == mesh.user_id && m.mesh_id == mesh.mesh_id)
        {
            Some(existing) => *existing = mesh,
            None => list.push(mesh),
        }
    }

    /// Removes a record; whether there was one.
    pub fn remove(&mut self, server: &str, user_id: &str, mesh_id: &str) -> bool {
        let Some(entry) = self.servers.get_mut(server) else {
            return false;
        };
        let before = entry.meshes.len();
        entry
            .meshes
            .retain(|m| !(m.user_id == user_id && m.mesh_id == mesh_id));
        let removed = entry.meshes.len() != before;
        if entry.meshes.is_empty() {
            self.servers.remove(server);
        }
        removed
    }
}

/// Why a `config.json` could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Damage {
    Corrupted(String),
    NewerVersion(u32),
}

/// Parses and checks the file's text.
pub fn parse(text: &str) -> Result<ConfigFile, Damage> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| Damage::Corrupted(err.to_string()))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(CONFIG_VERSION) => {}
        Some(v) if v > u64::from(CONFIG_VERSION) => {
            return Err(Damage::NewerVersion(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        _ => return Err(Damage::Corrupted("no known version".into())),
    }
    let file: ConfigFile =
        serde_json::from_value(value).map_err(|err| Damage::Corrupted(err.to_string()))?;
    for (server, entry) in &file.servers {
        if crate::base::server_url::normalize_base_url(server).as_deref() != Ok(server.as_str()) {
            return Err(Damage::Corrupted(format!("{server:?} is not a server URL")));
        }
        if let Some(problem) = entry.meshes.iter().find_map(JoinedMesh::problem) {
            return Err(Damage::Corrupted(problem));
        }
    }
    Ok(file)
}

/// Reads and writes `config.json` in one config directory.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    dir: PathBuf,
}

/// The lock on `config.json`: held from reading it to writing it back.
pub struct Locked<'a> {
    store: &'a ConfigStore,
    _lock: File,
}

impl ConfigStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The file, or an empty one when there is none. Fixes a too-open mode
    /// (with a warning); a damaged file is an error.
    pub fn load(&self, out: &Output) -> CliResult<ConfigFile> {
        let path = self.path();
        let text = match private_file::read(&path, out) {
            Ok(Read::Missing) => return Ok(ConfigFile::default()),
            Ok(Read::NotText) => return Err(corrupted(&path, "not UTF-8 text")),
            Ok(Read::Text(text)) => text,
            Err(err) => {
                return Err(CliError::new(
                    Exit::Permission,
                    format!("Cannot read {}: {err}", path.display()),
                ));
            }
        };
        parse(&text).map_err(|damage| match damage {
            Damage::Corrupted(detail) => corrupted(&path, &detail),
            Damage::NewerVersion(version) => CliError::failure(format!(
                "{} was written by a newer claudemesh (format version {version})",
                path.display()
            ))
            .with_hint("Update claudemesh; see claudemesh --version."),
        })
    }

    /// Makes the directory private (or refuses, exit 1) and takes the lock.
    /// Commands that record a new key call it before any request, so the
    /// server never registers a key this machine then cannot keep.
    pub fn lock(&self) -> CliResult<Locked<'_>> {
        private_file::prepare_dir(&self.dir).map_err(|detail| {
            CliError::failure(format!(
                "Refusing to save mesh keys: cannot make {} private (mode 0700): {detail}",
                self.dir.display()
            ))
        })?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = private_file::lock(&lock_path).map_err(|err| {
            CliError::failure(format!("Could not lock {}: {err}", lock_path.display()))
        })?;
        Ok(Locked {
            store: self,
            _lock: lock,
        })
    }
}

impl Locked<'_> {
    pub fn load(&self, out: &Output) -> CliResult<ConfigFile> {
        self.store.load(out)
    }

    pub fn path(&self) -> PathBuf {
        self.store.path()
    }

    pub fn save(&self, file: &ConfigFile) -> CliResult<PathBuf> {
        let path = self.store.path();
        let text = serde_json::to_string_pretty(file).map_err(|err| {
            CliError::failure(format!("Could not encode {}: {err}", path.display()))
        })?;
        private_file::write_atomic(&self.store.dir, CONFIG_FILE, text.as_bytes())
            .map_err(|err| CliError::failure(format!("Could not save {}: {err}", path.display())))
    }
}

fn corrupted(path: &Path, detail: &str) -> CliError {
    CliError::failure(format!(
        "Config file corrupted: {} ({detail})",
        path.display()
    ))
    .with_hint(
        "It holds this machine's mesh keys. Repair it, or move it aside and run \
         `claudemesh sync` to join your meshes again with new keys.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "http://127.0.0.1:3000";

    #[test]
    fn settings_are_read_kept_and_left_out_while_default() {
        let file = parse(r#"{"version":1,"servers":{},"settings":{"relay_permissions":true}}"#)
            .unwrap_or_else(|_| panic!("parses"));
        assert!(file.settings.relay_permissions);
        let text = serde_json::to_string(&file).unwrap();
        assert!(
            text.contains(r#""settings":{"relay_permissions":true}"#),
            "{text}"
        );
        let plain = serde_json::to_string(&ConfigFile::default()).unwrap();
        assert!(!plain.contains("settings"), "{plain}");
        let old = parse(r#"{"version":1,"servers":{}}"#).unwrap_or_else(|_| panic!("parses"));
        assert!(!old.settings.relay_permissions);
    }

    fn summary(id: &str, slug: &str) -> MeshSummary {
        MeshSummary {
            id: id.into(),
            slug: slug.into(),
            name: "Platform team".into(),
            role: MeshRole::Admin,
            member_id: format!("mem_{id}"),
            display_name: "Alice".into(),
            member_count: 1,
            created_at: "2026-01-01T00:00:00Z".into(),
            archived_at: None,
        }
    }

    fn record(id: &str, slug: &str, user: &str) -> JoinedMesh {
        JoinedMesh::new(
            &summary(id, slug),
            user,
            &KeyPair::generate().unwrap(),
            "2026-01-01T00:00:00Z",
        )
    }

    fn quiet() -> Output {
        Output::from_env(true)
    }

    #[test]
    fn records_belong_to_one_account_on_one_server() {
        let mut file = ConfigFile::default();
        file.upsert(SERVER, record("msh_1", "dev", "usr_a"));
        file.upsert(SERVER, record("msh_1", "dev", "usr_b"));
        file.upsert("http://other", record("msh_2", "ops", "usr_a"));
        assert_eq!(file.meshes(SERVER, "usr_a").count(), 1);
        assert_eq!(file.meshes(SERVER, "usr_b").count(), 1);
        assert_eq!(file.meshes("http://other", "usr_b").count(), 0);

        let mut renamed = record("msh_1", "dev2", "usr_a");
        renamed.name = "Dev".into();
        file.upsert(SERVER, renamed);
        let mine: Vec<_> = file.meshes(SERVER, "usr_a").map(|m| &m.slug).collect();
        assert_eq!(mine, ["dev2"]);
        assert!(file.find(SERVER, "usr_a", "msh_1").is_some());

        assert!(file.remove(SERVER, "usr_a", "msh_1"));
        assert!(!file.remove(SERVER, "usr_a", "msh_1"));
        assert_eq!(file.meshes(SERVER, "usr_b").count(), 1);
        assert!(file.remove(SERVER, "usr_b", "msh_1"));
        assert!(!file.servers.contains_key(SERVER));
    }

    #[test]
    fn save_then_load_round_trips_privately_under_the_lock() {
        let home = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(home.path().join("cm"));
        assert_eq!(store.load(&quiet()).unwrap().servers.len(), 0);
        let mut file = ConfigFile::default();
        let mesh = record("msh_1", "dev", "usr_a");
        let secret = mesh.secret_key.clone();
        file.upsert(SERVER, mesh);
        let path = {
            let locked = store.lock().unwrap();
            locked.save(&file).unwrap()
        };
        let loaded = store.load(&quiet()).unwrap();
        let mesh = loaded.find(SERVER, "usr_a", "msh_1").unwrap();
        assert_eq!(mesh.secret_key, secret);
        assert_eq!(mesh.role, MeshRole::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        let pinned = &json["servers"][SERVER]["meshes"][0];
        for field in [
            "slug",
            "mesh_id",
            "name",
            "user_id",
            "member_id",
            "role",
            "display_name",
            "public_key",
            "secret_key",
            "joined_at",
        ] {
            assert!(pinned.get(field).is_some(), "{field}");
        }
        assert_eq!(pinned["role"], "admin");
        assert!(pinned.get("missing_on_server_since").is_none());
    }

    #[test]
    fn damaged_files_are_errors_that_name_the_file() {
        let home = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(home.path().to_owned());
        let mut good = ConfigFile::default();
        good.upsert(SERVER, record("msh_1", "dev", "usr_a"));
        let good = serde_json::to_value(&good).unwrap();
        let mut mismatched = good.clone();
        mismatched["servers"][SERVER]["meshes"][0]["public_key"] =
            KeyPair::generate().unwrap().public_hex().into();
        let mut bad_secret = good.clone();
        bad_secret["servers"][SERVER]["meshes"][0]["secret_key"] = "zz".into();
        let mut bad_slug = good.clone();
        bad_slug["servers"][SERVER]["meshes"][0]["slug"] = "../x".into();
        let mut bad_server = serde_json::json!({ "version": 1, "servers": {} });
        bad_server["servers"]["not a url"] = serde_json::json!({ "meshes": [] });
        for text in [
            "{not json".to_owned(),
            "{}".to_owned(),
            "[]".to_owned(),
            r#"{"version": 1, "servers": 3}"#.to_owned(),
            mismatched.to_string(),
            bad_secret.to_string(),
            bad_slug.to_string(),
            bad_server.to_string(),
        ] {
            std::fs::write(store.path(), &text).unwrap();
            let err = store.load(&quiet()).err().unwrap();
            assert_eq!(err.exit, Exit::Failure, "{text}");
            assert!(
                err.message.starts_with(&format!(
                    "Config file corrupted: {}",
                    store.path().display()
                )),
                "{}",
                err.message
            );
            assert!(!err.message.contains("secret_key\": \""), "{}", err.message);
        }
        let mut newer = good.clone();
        newer["version"] = 2.into();
        std::fs::write(store.path(), newer.to_string()).unwrap();
        let err = store.load(&quiet()).err().unwrap();
        assert!(err.message.contains("newer claudemesh"), "{}", err.message);
        std::fs::write(store.path(), good.to_string()).unwrap();
        assert!(store.load(&quiet()).is_ok());
    }

    #[test]
    fn a_directory_that_cannot_be_made_refuses_the_lock() {
        let home = tempfile::tempdir().unwrap();
        let blocker = home.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let store = ConfigStore::new(blocker.join("cm"));
        let err = store.lock().err().unwrap();
        assert!(err.message.starts_with("Refusing to save mesh keys"));
    }
}

//! `permission_requests.json`: the permission requests of this member's
//! launched sessions that reached this machine and are not answered yet.
//!
//! Why a file: the broker hands a message to one session of a machine key
//! and forgets it once acknowledged, so a request that `inbox --follow`
//! showed would be gone by the time `claudemesh approve` connects. Every
//! command that receives one (`inbox`, `approve`) writes it here, and
//! `approve` answers from here. Entries leave when answered or expired.
//! Best effort: a damaged file is read as empty (it holds nothing that the
//! asking session does not hold too, and requests expire in 10 minutes).

use crate::base::private_file;
use claudemesh_api::permission::PermissionRequest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "permission_requests.json";
const LOCK_FILE: &str = "permission_requests.lock";

/// A request, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub server: String,
    pub mesh_id: String,
    pub mesh_slug: String,
    /// The display name of the session that asked.
    pub from_name: String,
    pub received_at: i64,
    pub request: PermissionRequest,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    requests: Vec<Pending>,
}

pub struct PermissionRequests {
    dir: PathBuf,
}

impl PermissionRequests {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self) -> File {
        std::fs::read_to_string(self.dir.join(FILE))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Changes the file under its lock; drops expired entries on the way.
    fn change<T>(&self, now_ms: i64, change: impl FnOnce(&mut Vec<Pending>) -> T) -> T {
        let _lock = private_file::prepare_dir(&self.dir)
            .ok()
            .and_then(|()| private_file::lock(&self.dir.join(LOCK_FILE)).ok());
        let mut file = self.read();
        file.requests.retain(|p| p.request.expires_at > now_ms);
        let result = change(&mut file.requests);
        let text = serde_json::to_string_pretty(&file).unwrap_or_default();
        let _ = private_file::write_atomic(&self.dir, FILE, text.as_bytes());
        result
    }

    /// Keeps a request (once: the same session and id replace the old).
    pub fn add(&self, pending: Pending, now_ms: i64) {
        self.change(now_ms, |requests| {
            requests.retain(|p| {
                !(p.mesh_id == pending.mesh_id
                    && p.request.request_id == pending.request.request_id
                    && p.request.session_key == pending.request.session_key)
            });
            requests.push(pending);
        });
    }

    /// Every request with this id in this mesh, expired ones included (so
    /// `approve` can say "expired" rather than "unknown").
    pub fn find(&self, server: &str, mesh_id: &str, request_id: &str) -> Vec<Pending> {
        self.read()
            .requests
            .into_iter()
            .filter(|p| {
                p.server == server && p.mesh_id == mesh_id && p.request.request_id == request_id
            })
            .collect()
    }

    /// Forgets a request (answered).
    pub fn remove(&self, mesh_id: &str, session_key: &str, request_id: &str, now_ms: i64) {
        self.change(now_ms, |requests| {
            requests.retain(|p| {
                !(p.mesh_id == mesh_id
                    && p.request.session_key == session_key
                    && p.request.request_id == request_id)
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, session: char, expires_at: i64) -> Pending {
        Pending {
            server: "http://s".into(),
            mesh_id: "msh_1".into(),
            mesh_slug: "dev".into(),
            from_name: "Ana".into(),
            received_at: 0,
            request: PermissionRequest {
                request_id: id.into(),
                tool_name: "Bash".into(),
                description: "ls".into(),
                input_preview: "{}".into(),
                session_key: session.to_string().repeat(64),
                expires_at,
            },
        }
    }

    #[test]
    fn requests_are_kept_found_and_forgotten() {
        let home = tempfile::tempdir().unwrap();
        let store = PermissionRequests::new(home.path());
        assert!(store.find("http://s", "msh_1", "abcde").is_empty());
        store.add(pending("abcde", 'a', 100), 10);
        store.add(pending("abcde", 'a', 100), 10);
        store.add(pending("abcde", 'b', 100), 10);
        store.add(pending("fghij", 'a', 20), 10);
        assert_eq!(store.find("http://s", "msh_1", "abcde").len(), 2);
        assert!(store.find("http://other", "msh_1", "abcde").is_empty());
        // Expired entries go at the next change.
        store.remove(&"b".repeat(64), "zzzzz", "abcde", 50);
        assert!(store.find("http://s", "msh_1", "fghij").is_empty());
        store.remove("msh_1", &"b".repeat(64), "abcde", 50);
        let left = store.find("http://s", "msh_1", "abcde");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].request.session_key, "a".repeat(64));
    }
}

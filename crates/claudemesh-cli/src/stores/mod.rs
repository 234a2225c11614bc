//! What this machine keeps in the config directory: the login (`auth.json`
//! and the OS keyring), the meshes joined here (`config.json`), and the
//! per-launch session directories. Built on `base` only.

pub mod auth_store;
pub mod config_store;
pub mod credential_store;
pub mod permission_requests;
pub mod session_dir;

//! Meshes: who is in them, and how people are invited.
//!
//! - [`mesh`]: meshes, their members and the members' machine keys.
//! - [`invites`]: invite codes behind `<public URL>/i/<code>`, optionally
//!   emailed.
//! - [`governance`]: the member list, roles, rename, archive and delete.
//! - [`grants`]: what each member allows each other member; its table and
//!   in-memory form in [`grant_store`], which the broker uses too.
//! - [`log`]: the mesh log, hash-chained (its tables and its appends);
//!   [`log_api`]: its routes, a page at a time or followed live (SSE).

pub mod governance;
pub mod grant_store;
pub mod grants;
pub mod invites;
pub mod log;
pub mod log_api;
pub mod mesh;

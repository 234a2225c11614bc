//! Meshes: who is in them, and how people are invited.
//!
//! - [`mesh`]: meshes, their members and the members' machine keys.
//! - [`invites`]: invite codes behind `<public URL>/i/<code>`, optionally
//!   emailed.
//! - [`governance`]: the member list, roles, rename, archive and delete.
//! - [`grants`]: what each member allows each other member; its table and
//!   in-memory form in [`grant_store`], which the broker uses too.

pub mod governance;
pub mod grant_store;
pub mod grants;
pub mod invites;
pub mod mesh;

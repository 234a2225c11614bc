//! Meshes: who is in them, and how people are invited.
//!
//! - [`mesh`]: meshes, their members and the members' machine keys.
//! - [`invites`]: invite codes behind `<public URL>/i/<code>`, optionally
//!   emailed.

pub mod invites;
pub mod mesh;

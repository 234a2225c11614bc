//! `claudemesh sync [--prune]`: make `config.json` match the server.
//!
//! - A mesh the account is in but this machine has not joined: a new key
//!   pair, its public key registered (`POST …/keys`), the mesh recorded.
//! - A mesh recorded here: its record refreshed (slug, name, role, display
//!   name); if the membership itself changed (left and joined again), the
//!   key is registered for the new one.
//! - A record the server no longer lists for the account: flagged, never
//!   silently deleted (it holds a key); `--prune` deletes it.
//!
//! Running it twice changes nothing the second time. `login` runs
//! [`reconcile`] after every successful login.

use crate::api::Api;
use crate::base::display::{meshes_count, role_name};
use crate::base::exit::{CliError, CliResult};
use crate::base::output::Mark;
use crate::base::when;
use crate::cli::SyncArgs;
use crate::context::Context;
use crate::stores::config_store::JoinedMesh;
use claudemesh_api::Slug;
use serde::Serialize;
use std::collections::HashSet;

/// What a sync did, by mesh slug.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// Joined on this machine now (a key pair made and registered).
    pub added: Vec<String>,
    /// Records refreshed from the server.
    pub updated: Vec<String>,
    /// Recorded here, no longer listed for the account on the server (kept).
    pub flagged: Vec<String>,
    /// Flagged records deleted with `--prune`.
    pub removed: Vec<String>,
    /// Every mesh joined here and on the server, after the sync.
    pub meshes: Vec<String>,
    pub config_file: String,
}

impl SyncReport {
    /// Whether this run changed `config.json`.
    pub fn changed(&self, newly_flagged: usize) -> bool {
        !self.added.is_empty()
            || !self.updated.is_empty()
            || !self.removed.is_empty()
            || newly_flagged > 0
    }

    /// `✔ Synced 3 meshes: a, b, c` (the spec's line after a login).
    pub fn synced_line(&self) -> String {
        if self.meshes.is_empty() {
            "Synced 0 meshes".to_owned()
        } else {
            format!(
                "Synced {}: {}",
                meshes_count(self.meshes.len()),
                self.meshes.join(", ")
            )
        }
    }
}

pub fn run(args: &SyncArgs, ctx: &Context) -> CliResult<()> {
    let account = ctx.account()?;
    let (report, changed) = reconcile(
        ctx,
        &account.api,
        &account.server,
        &account.user.id,
        args.prune,
    )?;
    let out = &ctx.out;
    if !report.flagged.is_empty() {
        out.line("`claudemesh sync --prune` removes them from this machine, with their keys.");
    }
    if changed {
        out.success(report.synced_line());
    } else if report.flagged.is_empty() {
        let which = if report.meshes.is_empty() {
            "no meshes".to_owned()
        } else {
            format!(
                "{}: {}",
                meshes_count(report.meshes.len()),
                report.meshes.join(", ")
            )
        };
        out.success(format!("Everything in sync ({which})"));
    } else {
        out.success(format!(
            "Nothing changed ({} in sync)",
            meshes_count(report.meshes.len())
        ));
    }
    if out.json {
        out.json(&report);
    }
    Ok(())
}

/// Brings `config.json` in line with the server for this account, printing
/// each change on stderr as it happens. Returns the report and whether the
/// file changed. If registering one mesh's key fails, the others are still
/// done and saved, and the first failure is returned.
pub fn reconcile(
    ctx: &Context,
    api: &Api,
    server: &str,
    user_id: &str,
    prune: bool,
) -> CliResult<(SyncReport, bool)> {
    let out = &ctx.out;
    let remote = api.meshes().map_err(|err| err.into_cli(server))?.meshes;
    let store = ctx.config();
    let locked = store.lock()?;
    let mut config = locked.load(out)?;
    let now = when::now_rfc3339();
    let mut report = SyncReport {
        config_file: locked.path().display().to_string(),
        ..SyncReport::default()
    };
    let mut newly_flagged = 0;
    let mut failure: Option<CliError> = None;

    for mesh in &remote {
        let Ok(slug) = Slug::parse(&mesh.slug) else {
            out.warn(format!(
                "Skipping a mesh with an invalid slug {:?}",
                mesh.slug
            ));
            continue;
        };
        match config.find_mut(server, user_id, &mesh.id) {
            Some(local) => {
                let mut what = Vec::new();
                if local.member_id != mesh.member_id {
                    // A new membership (left and joined again): its key is
                    // not registered yet.
                    if let Err(err) = api.register_key(&slug, &local.public_key) {
                        let err = err.into_cli(server);
                        out.error(format!(
                            "{slug}: could not register the key: {}",
                            err.message
                        ));
                        failure.get_or_insert(err);
                        continue;
                    }
                    what.push("key registered for the new membership".to_owned());
                }
                if !local.on_server() {
                    what.push("back on the server".to_owned());
                }
                if local.slug != mesh.slug {
                    what.push(format!("slug was {}", local.slug));
                }
                if local.name != mesh.name {
                    what.push(format!("renamed to {:?}", mesh.name));
                }
                if local.role != mesh.role {
                    what.push(format!("role is now {}", role_name(mesh.role)));
                }
                if local.display_name != mesh.display_name {
                    what.push(format!("you are now {:?}", mesh.display_name));
                }
                if !what.is_empty() {
                    local.slug.clone_from(&mesh.slug);
                    local.name.clone_from(&mesh.name);
                    local.member_id.clone_from(&mesh.member_id);
                    local.role = mesh.role;
                    local.display_name.clone_from(&mesh.display_name);
                    local.missing_on_server_since = None;
                    out.change(Mark::Changed, format!("{slug} ({})", what.join(", ")));
                    report.updated.push(mesh.slug.clone());
                }
                report.meshes.push(mesh.slug.clone());
            }
            None => {
                let keys = crate::base::keys::generate()?;
                match api.register_key(&slug, &keys.public_hex()) {
                    Ok(_) => {
                        config.upsert(server, JoinedMesh::new(mesh, user_id, &keys, &now));
                        out.change(Mark::Added, format!("{slug} (new key registered)"));
                        report.added.push(mesh.slug.clone());
                        report.meshes.push(mesh.slug.clone());
                    }
                    Err(err) => {
                        let err = err.into_cli(server);
                        out.error(format!("{slug}: could not register a key: {}", err.message));
                        failure.get_or_insert(err);
                    }
                }
            }
        }
    }

    let listed: HashSet<&str> = remote.iter().map(|m| m.id.as_str()).collect();
    let gone: Vec<(String, String, bool)> = config
        .meshes(server, user_id)
        .filter(|m| !listed.contains(m.mesh_id.as_str()))
        .map(|m| (m.mesh_id.clone(), m.slug.clone(), m.on_server()))
        .collect();
    for (mesh_id, slug, was_on_server) in gone {
        if prune {
            config.remove(server, user_id, &mesh_id);
            out.change(
                Mark::Removed,
                format!("{slug}: removed from this machine, with its key"),
            );
            report.removed.push(slug);
        } else {
            if was_on_server && let Some(local) = config.find_mut(server, user_id, &mesh_id) {
                local.missing_on_server_since = Some(now.clone());
                newly_flagged += 1;
            }
            out.change(
                Mark::Flagged,
                format!("{slug}: no longer a member on the server"),
            );
            report.flagged.push(slug);
        }
    }

    let changed = report.changed(newly_flagged);
    if changed {
        locked.save(&config)?;
    }
    match failure {
        Some(err) => Err(err),
        None => Ok((report, changed)),
    }
}

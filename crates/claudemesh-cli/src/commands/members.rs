//! `claudemesh members [list|add|remove|role] [--mesh S]`: who is in a
//! mesh and what role they have. `add` is an invite by email, through the
//! same server path and mail as `invite --email` (and reports the mail's
//! fate, `sent`, `outbox` or `failed`, in the same words); `remove` asks first
//! (`--yes` for scripts). Members are named by display name or id; a name
//! two members share is refused with their ids, before anything changes.

use crate::base::args::slug_arg;
use crate::base::display::{columns, role_name};
use crate::base::exit::{CliError, CliResult, Exit};
use crate::base::when;
use crate::cli::{MembersAction, MembersArgs, RoleArg};
use crate::commands::invite::{mail_language, only_mesh_joined_here, say_what_became_of_the_mail};
use crate::context::{Account, Context};
use claudemesh_api::Slug;
use claudemesh_api::wire::{AddMemberRequest, CreatedInvite, MemberInfo, MemberList, MeshRole};
use serde::Serialize;
use std::io::IsTerminal;

pub fn run(args: &MembersArgs, ctx: &Context) -> CliResult<()> {
    let given = args
        .mesh
        .as_deref()
        .map(|text| slug_arg(text, "--mesh"))
        .transpose()?;
    let account = ctx.account()?;
    let slug = mesh_slug(ctx, &account, given)?;
    match args.action.as_ref().unwrap_or(&MembersAction::List) {
        MembersAction::List => list(ctx, &account, &slug),
        MembersAction::Add { email, role } => add(ctx, &account, &slug, email, *role),
        MembersAction::Remove { member, yes } => remove(ctx, &account, &slug, member, *yes),
        MembersAction::Role { member, role } => change_role(ctx, &account, &slug, member, *role),
    }
}

/// The mesh a governance command acts on: `--mesh` as given (the server
/// decides whether the account is in it), else the one joined here.
pub fn mesh_slug(ctx: &Context, account: &Account, given: Option<Slug>) -> CliResult<Slug> {
    match given {
        Some(slug) => Ok(slug),
        None => only_mesh_joined_here(ctx, account),
    }
}

pub fn mesh_role(role: RoleArg) -> MeshRole {
    match role {
        RoleArg::Member => MeshRole::Member,
        RoleArg::Admin => MeshRole::Admin,
    }
}

/// The member `who` names: an id, else a display name (exactly, then
/// ignoring case). Unknown is exit 5; a name shared by several, exit 3
/// with their ids.
pub fn resolve<'a>(members: &'a [MemberInfo], who: &str, slug: &Slug) -> CliResult<&'a MemberInfo> {
    let who = who.trim();
    if let Some(member) = members.iter().find(|m| m.id == who) {
        return Ok(member);
    }
    let mut named: Vec<&MemberInfo> = members.iter().filter(|m| m.display_name == who).collect();
    if named.is_empty() {
        named = members
            .iter()
            .filter(|m| m.display_name.to_lowercase() == who.to_lowercase())
            .collect();
    }
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::new(
            Exit::NotFound,
            format!("{slug} has no member called `{who}`"),
        )
        .with_hint(format!("See `claudemesh members --mesh {slug}`."))),
        many => Err(CliError::invalid_args(format!(
            "{} members of {slug} are called `{who}`: {}",
            many.len(),
            many.iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("Name the member by id instead.")),
    }
}

fn fetch(account: &Account, slug: &Slug) -> CliResult<MemberList> {
    account
        .api
        .members(slug)
        .map_err(|err| err.into_cli(&account.server))
}

fn list(ctx: &Context, account: &Account, slug: &Slug) -> CliResult<()> {
    let listed = fetch(account, slug)?;
    let out = &ctx.out;
    if out.json {
        out.json(&listed);
        return Ok(());
    }
    let now = when::now();
    let ago = |at: &str| when::parse(at).map_or_else(|| at.to_owned(), |t| when::relative(t, now));
    let rows: Vec<Vec<String>> = listed
        .members
        .iter()
        .map(|m| {
            let name = if m.you {
                format!("{} (you)", m.display_name)
            } else {
                m.display_name.clone()
            };
            vec![
                name,
                role_name(m.role).to_owned(),
                ago(&m.joined_at),
                if m.sessions_online > 0 {
                    "online now".to_owned()
                } else {
                    m.last_seen_at
                        .as_deref()
                        .map_or_else(|| "never".to_owned(), ago)
                },
                m.sessions_online.to_string(),
                m.public_keys.len().to_string(),
                m.id.clone(),
            ]
        })
        .collect();
    out.data(columns(
        &[
            "NAME",
            "ROLE",
            "JOINED",
            "LAST SEEN",
            "SESSIONS",
            "KEYS",
            "ID",
        ],
        &rows,
    ));
    if !listed.pending.is_empty() {
        let rows: Vec<Vec<String>> = listed
            .pending
            .iter()
            .map(|p| {
                vec![
                    p.email.clone().unwrap_or_else(|| "(link)".to_owned()),
                    role_name(p.role).to_owned(),
                    p.invited_by.clone(),
                    when::describe(&p.expires_at, now),
                ]
            })
            .collect();
        out.data(format!(
            "\nPending invites:\n{}",
            columns(&["TO", "ROLE", "INVITED BY", "EXPIRES"], &rows)
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct AddJson<'a> {
    mesh: &'a str,
    #[serde(flatten)]
    invite: &'a CreatedInvite,
}

fn add(ctx: &Context, account: &Account, slug: &Slug, email: &str, role: RoleArg) -> CliResult<()> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') {
        return Err(CliError::invalid_args(format!(
            "`{email}` is not an email address"
        )));
    }
    let request = AddMemberRequest {
        email: email.to_owned(),
        role: Some(mesh_role(role)),
        lang: Some(mail_language(|name| std::env::var(name).ok()).to_owned()),
    };
    let created = account
        .api
        .add_member(slug, &request)
        .map_err(|err| err.into_cli(&account.server))?;
    let out = &ctx.out;
    let invite = &created.invite;
    out.success(format!(
        "Invited {email} to {slug} as {}; pending until they accept (expires {})",
        role_name(invite.role),
        when::describe(&invite.expires_at, when::now())
    ));
    if out.json {
        out.json(&AddJson {
            mesh: slug.as_str(),
            invite: &created,
        });
    } else {
        out.data(format!("{}\n", invite.url));
    }
    // The same words as `invite --email`: never more than happened.
    say_what_became_of_the_mail(out, email, &created);
    Ok(())
}

#[derive(Serialize)]
struct ChangedJson<'a> {
    mesh: &'a str,
    member_id: &'a str,
    display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<MeshRole>,
    removed: bool,
}

fn remove(ctx: &Context, account: &Account, slug: &Slug, who: &str, yes: bool) -> CliResult<()> {
    let listed = fetch(account, slug)?;
    let member = resolve(&listed.members, who, slug)?;
    if !yes {
        confirm_removal(slug, member)?;
    }
    account
        .api
        .remove_member(slug, &member.id)
        .map_err(|err| err.into_cli(&account.server))?;
    let out = &ctx.out;
    out.success(format!("Removed {} from {slug}", member.display_name));
    if out.json {
        out.json(&ChangedJson {
            mesh: slug.as_str(),
            member_id: &member.id,
            display_name: &member.display_name,
            role: None,
            removed: true,
        });
    }
    Ok(())
}

fn confirm_removal(slug: &Slug, member: &MemberInfo) -> CliResult<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(CliError::invalid_args(format!(
            "Removing {} from {slug} needs a confirmation",
            member.display_name
        ))
        .with_hint(format!(
            "Add --yes: `claudemesh members remove {} --mesh {slug} --yes`.",
            member.id
        )));
    }
    let yes = dialoguer::Confirm::new()
        .with_prompt(format!(
            "Remove {} ({}) from {slug}? Coming back will take a new invite",
            member.display_name, member.id
        ))
        .default(false)
        .interact()
        .map_err(|err| CliError::failure(format!("Could not ask: {err}")))?;
    if yes {
        Ok(())
    } else {
        Err(CliError::failure("Cancelled: nobody was removed"))
    }
}

fn change_role(
    ctx: &Context,
    account: &Account,
    slug: &Slug,
    who: &str,
    role: RoleArg,
) -> CliResult<()> {
    let listed = fetch(account, slug)?;
    let member = resolve(&listed.members, who, slug)?;
    let role = mesh_role(role);
    account
        .api
        .change_role(slug, &member.id, role)
        .map_err(|err| err.into_cli(&account.server))?;
    let out = &ctx.out;
    out.success(format!(
        "{} is now {} of {slug}",
        member.display_name,
        match role {
            MeshRole::Admin => "an admin",
            MeshRole::Member => "a member",
        }
    ));
    if out.json {
        out.json(&ChangedJson {
            mesh: slug.as_str(),
            member_id: &member.id,
            display_name: &member.display_name,
            role: Some(role),
            removed: false,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, name: &str) -> MemberInfo {
        MemberInfo {
            id: id.into(),
            display_name: name.into(),
            role: MeshRole::Member,
            joined_at: "2026-01-01T00:00:00Z".into(),
            last_seen_at: None,
            sessions_online: 0,
            public_keys: vec![],
            you: false,
        }
    }

    #[test]
    fn members_are_found_by_id_or_name_and_a_shared_name_lists_the_ids() {
        let slug = Slug::parse("team").unwrap();
        let members = [
            member("mem_a", "Alice"),
            member("mem_b", "Bob"),
            member("mem_c", "Bob"),
        ];
        assert_eq!(resolve(&members, "mem_c", &slug).unwrap().id, "mem_c");
        assert_eq!(resolve(&members, "alice", &slug).unwrap().id, "mem_a");
        let unknown = resolve(&members, "Carol", &slug).unwrap_err();
        assert_eq!(unknown.exit, Exit::NotFound);
        let shared = resolve(&members, "Bob", &slug).unwrap_err();
        assert_eq!(shared.exit, Exit::InvalidArgs);
        assert!(
            shared.message.contains("mem_b, mem_c"),
            "{}",
            shared.message
        );
    }
}

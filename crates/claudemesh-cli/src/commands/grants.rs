//! `claudemesh grant|revoke MEMBER CAP...`, `block|unblock MEMBER` and
//! `grants`: what each other member may do to you (`dm`, `group`,
//! `presence`), enforced by the broker. A member is named as in `members`
//! (display name or id).

use crate::base::args::slug_arg;
use crate::base::display::columns;
use crate::base::exit::CliResult;
use crate::cli::{BlockArgs, CapArg, GrantArgs, GrantsArgs};
use crate::commands::members::{mesh_slug, resolve};
use crate::context::{Account, Context};
use claudemesh_api::Slug;
use claudemesh_api::wire::{Capability, ChangeGrantRequest, PeerGrant};
use serde::Serialize;

/// What a grant command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Grant,
    Revoke,
    Block,
    Unblock,
}

pub fn capability(cap: CapArg) -> Capability {
    match cap {
        CapArg::Dm => Capability::Dm,
        CapArg::Group => Capability::Group,
        CapArg::Presence => Capability::Presence,
        CapArg::Approve => Capability::Approve,
    }
}

fn account_and_slug(ctx: &Context, mesh: Option<&str>) -> CliResult<(Account, Slug)> {
    let given = mesh.map(|text| slug_arg(text, "--mesh")).transpose()?;
    let account = ctx.account()?;
    let slug = mesh_slug(ctx, &account, given)?;
    Ok((account, slug))
}

/// `grant` and `revoke`.
pub fn run_grant(args: &GrantArgs, change: Change, ctx: &Context) -> CliResult<()> {
    let caps: Vec<Capability> = args.caps.iter().map(|c| capability(*c)).collect();
    apply(ctx, args.mesh.as_deref(), &args.member, change, &caps)
}

/// `block` and `unblock`.
pub fn run_block(args: &BlockArgs, change: Change, ctx: &Context) -> CliResult<()> {
    // Block takes everything away; unblock gives back what everyone has by
    // default, never `approve`, which is granted on purpose or not at all.
    let caps: &[Capability] = match change {
        Change::Unblock => &Capability::BASIC,
        _ => &Capability::ALL,
    };
    apply(ctx, args.mesh.as_deref(), &args.member, change, caps)
}

#[derive(Serialize)]
struct ChangedJson<'a> {
    mesh: &'a str,
    #[serde(flatten)]
    grant: &'a PeerGrant,
}

fn apply(
    ctx: &Context,
    mesh: Option<&str>,
    who: &str,
    change: Change,
    caps: &[Capability],
) -> CliResult<()> {
    let (account, slug) = account_and_slug(ctx, mesh)?;
    let api_error = |err: crate::api::ApiError| err.into_cli(&account.server);
    let listed = account.api.members(&slug).map_err(api_error)?;
    let member = resolve(&listed.members, who, &slug)?;
    let request = match change {
        Change::Grant | Change::Unblock => ChangeGrantRequest {
            grant: caps.to_vec(),
            revoke: Vec::new(),
        },
        Change::Revoke | Change::Block => ChangeGrantRequest {
            grant: Vec::new(),
            revoke: caps.to_vec(),
        },
    };
    let granted = account
        .api
        .change_grant(&slug, &member.id, &request)
        .map_err(api_error)?;
    let out = &ctx.out;
    let verb = match change {
        Change::Grant => "Granted",
        Change::Revoke => "Revoked",
        Change::Block => "Blocked",
        Change::Unblock => "Unblocked",
    };
    out.success(format!(
        "{verb}: {} may now {}",
        granted.display_name,
        describe(&granted.caps)
    ));
    if out.json {
        out.json(&ChangedJson {
            mesh: slug.as_str(),
            grant: &granted,
        });
    }
    Ok(())
}

/// "send you direct messages and see your presence", or "do nothing to you".
fn describe(caps: &[Capability]) -> String {
    let words: Vec<&str> = caps
        .iter()
        .map(|cap| match cap {
            Capability::Dm => "send you direct messages",
            Capability::Group => "reach you in groups and broadcasts",
            Capability::Presence => "see your status and summary",
            Capability::Approve => "answer your sessions' permission prompts",
        })
        .collect();
    if words.is_empty() {
        "do nothing to you (blocked)".to_owned()
    } else {
        words.join(", ")
    }
}

fn caps_text(caps: &[Capability]) -> String {
    if caps.is_empty() {
        "(blocked)".to_owned()
    } else {
        caps.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `grants`.
pub fn run_list(args: &GrantsArgs, ctx: &Context) -> CliResult<()> {
    let (account, slug) = account_and_slug(ctx, args.mesh.as_deref())?;
    let list = account
        .api
        .grants(&slug)
        .map_err(|err| err.into_cli(&account.server))?;
    let out = &ctx.out;
    if out.json {
        out.json(&list);
        return Ok(());
    }
    if list.you_allow.is_empty() {
        out.line(format!("You are the only member of {slug}."));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .you_allow
        .iter()
        .map(|mine| {
            let theirs = list
                .allows_you
                .iter()
                .find(|t| t.member_id == mine.member_id)
                .map_or_else(String::new, |t| caps_text(&t.caps));
            vec![
                mine.display_name.clone(),
                caps_text(&mine.caps),
                theirs,
                mine.member_id.clone(),
            ]
        })
        .collect();
    out.data(columns(
        &["MEMBER", "YOU ALLOW THEM", "THEY ALLOW YOU", "ID"],
        &rows,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_read_as_words() {
        assert_eq!(caps_text(&[]), "(blocked)");
        assert_eq!(
            caps_text(&[Capability::Dm, Capability::Presence]),
            "dm,presence"
        );
        assert!(describe(&[]).contains("blocked"));
    }
}

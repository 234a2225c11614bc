//! `claudemesh invite [--mesh S] [--email A] [--role R] [--expires-in D]
//! [--max-uses N]`: create an invite link (admins only) and print it on
//! stdout, so `URL=$(claudemesh invite)` works; with `--email`, the server
//! mails it too. A mail that could not be sent is a warning, not a failure:
//! the link exists and works either way.

use crate::base::args::slug_arg;
use crate::base::display::role_name;
use crate::base::exit::{CliError, CliResult};
use crate::base::output::Output;
use crate::base::when;
use crate::cli::{InviteArgs, RoleArg};
use crate::context::{Account, Context};
use claudemesh_api::Slug;
use claudemesh_api::wire::{CreateInviteRequest, CreatedInvite, MailStatus, MeshRole};
use serde::Serialize;

#[derive(Serialize)]
struct InviteJson<'a> {
    mesh: &'a str,
    #[serde(flatten)]
    invite: &'a CreatedInvite,
}

pub fn run(args: &InviteArgs, ctx: &Context) -> CliResult<()> {
    // Checked before any request: a bad slug never reaches a path.
    let given = args
        .mesh
        .as_deref()
        .map(|text| slug_arg(text, "--mesh"))
        .transpose()?;
    let email = args
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let account = ctx.account()?;
    let slug = match given {
        Some(slug) => slug,
        None => only_mesh_joined_here(ctx, &account)?,
    };
    let request = CreateInviteRequest {
        email: email.map(str::to_owned),
        role: Some(match args.role {
            RoleArg::Member => MeshRole::Member,
            RoleArg::Admin => MeshRole::Admin,
        }),
        expires_in_days: Some(args.expires_in),
        max_uses: Some(args.max_uses),
        lang: Some(mail_language(|name| std::env::var(name).ok()).to_owned()),
    };
    let created = account
        .api
        .create_invite(&slug, &request)
        .map_err(|err| err.into_cli(&account.server))?;

    let out = &ctx.out;
    let invite = &created.invite;
    let uses = if invite.max_uses == 1 {
        "1 use".to_owned()
    } else {
        format!("{} uses", invite.max_uses)
    };
    // Relative to its creation (just now by the server's clock), so `2w`
    // reads "in 14 days", not a few milliseconds short of it.
    let made = when::parse(&invite.created_at).unwrap_or_else(when::now);
    out.success(format!(
        "Invite to {slug} created: {}, {uses}, expires {}",
        role_name(invite.role),
        when::describe(&invite.expires_at, made)
    ));
    if out.json {
        out.json(&InviteJson {
            mesh: slug.as_str(),
            invite: &created,
        });
    } else {
        out.data(format!("{}\n", invite.url));
    }
    if let Some(to) = &invite.email {
        say_what_became_of_the_mail(out, to, &created);
    }
    Ok(())
}

/// Says what became of an invite's email, never more than happened: an
/// email the server only wrote to its outbox reached nobody.
pub fn say_what_became_of_the_mail(out: &Output, to: &str, created: &CreatedInvite) {
    // A server older than `mail` says only whether it handed it on.
    let status = created.mail.unwrap_or(if created.emailed {
        MailStatus::Sent
    } else {
        MailStatus::Failed
    });
    match status {
        MailStatus::Sent => out.success(format!("Emailed {to}")),
        MailStatus::Outbox => out.warn(format!(
            "Not emailed: the server has no mail server set up, so the mail to {to} was only written to its outbox — share the link yourself"
        )),
        MailStatus::Failed => {
            let reason = created
                .email_error
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .unwrap_or("the mail server refused it");
            out.warn(format!(
                "Could not email {to}: {reason} — share the link yourself"
            ));
        }
    }
}

/// With no `--mesh`: the one mesh joined on this machine, or a clear error.
pub fn only_mesh_joined_here(ctx: &Context, account: &Account) -> CliResult<Slug> {
    let config = ctx.config().load(&ctx.out)?;
    let joined: Vec<&str> = config
        .meshes(&account.server, &account.user.id)
        .filter(|m| m.on_server())
        .map(|m| m.slug.as_str())
        .collect();
    match joined.as_slice() {
        [one] => slug_arg(one, "mesh slug in config.json"),
        [] => Err(
            CliError::invalid_args("Which mesh? No mesh is joined on this machine").with_hint(
                "Give --mesh SLUG (see `claudemesh list`), or create one with `claudemesh create \"Name\"`.",
            ),
        ),
        many => Err(CliError::invalid_args(format!(
            "Which mesh? This machine has joined {}: {}",
            many.len(),
            many.join(", ")
        ))
        .with_hint(format!(
            "Give one with --mesh, e.g. `claudemesh invite --mesh {}`.",
            many[0]
        ))),
    }
}

/// The language of the invite mail: Spanish when the locale says so
/// (`LC_ALL`, then `LC_MESSAGES`, then `LANG`, the first one set), else
/// English.
pub fn mail_language(var: impl Fn(&str) -> Option<String>) -> &'static str {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(var)
        .find(|value| !value.trim().is_empty())
        .unwrap_or_default();
    let language = locale
        .split(['_', '-', '.', '@'])
        .next()
        .unwrap_or_default();
    if language.eq_ignore_ascii_case("es") {
        "es"
    } else {
        "en"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(vars: &[(&str, &str)]) -> &'static str {
        mail_language(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_mail_language_follows_the_locale() {
        assert_eq!(lang(&[("LANG", "es_ES.UTF-8")]), "es");
        assert_eq!(lang(&[("LANG", "es")]), "es");
        assert_eq!(lang(&[("LANG", "es-MX")]), "es");
        assert_eq!(lang(&[("LANG", "en_US.UTF-8")]), "en");
        assert_eq!(lang(&[("LANG", "C")]), "en");
        assert_eq!(lang(&[("LANG", "esperanto")]), "en");
        assert_eq!(lang(&[]), "en");
        assert_eq!(lang(&[("LC_ALL", "es_AR.UTF-8"), ("LANG", "en_US")]), "es");
        assert_eq!(lang(&[("LC_ALL", "en_GB"), ("LANG", "es_ES")]), "en");
        assert_eq!(lang(&[("LC_ALL", ""), ("LANG", "es_ES")]), "es");
        assert_eq!(lang(&[("LC_MESSAGES", "es_ES"), ("LANG", "en_US")]), "es");
    }
}

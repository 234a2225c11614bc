//! `claudemesh telemetry on|off|status`: the usage-telemetry setting of
//! this machine's config directory ([`crate::telemetry`] does the work).
//! `status` is data (stdout, or JSON with `--json`); `on` and `off` say
//! what they did on stderr, and with `--json` print the new status.

use crate::base::exit::{CliError, CliResult, Exit};
use crate::cli::{TelemetryAction, TelemetryArgs};
use crate::context::Context;
use crate::telemetry::{self, Status};
use std::fmt::Write as _;

pub fn run(args: &TelemetryArgs, ctx: &Context) -> CliResult<()> {
    match args.action {
        TelemetryAction::Status => {}
        TelemetryAction::On | TelemetryAction::Off => {
            let enabled = args.action == TelemetryAction::On;
            let deleted = telemetry::set_enabled(&ctx.config_dir, enabled).map_err(|err| {
                CliError::new(
                    Exit::Permission,
                    format!(
                        "Could not save the setting in {}: {err}",
                        ctx.config_dir.join("telemetry").display()
                    ),
                )
            })?;
            if enabled {
                ctx.out.success("Telemetry is on");
                if let Some(why) = telemetry::overridden_by_env() {
                    ctx.out.warn(format!(
                        "{}: telemetry stays off while it is",
                        why.describe()
                    ));
                }
            } else {
                let waiting = match deleted {
                    0 => String::new(),
                    1 => " (deleted 1 event not sent yet)".to_owned(),
                    n => format!(" (deleted {n} events not sent yet)"),
                };
                ctx.out.success(format!(
                    "Telemetry is off: nothing is recorded or sent{waiting}"
                ));
            }
            if !ctx.out.json {
                return Ok(());
            }
        }
    }
    let status = telemetry::status(&ctx.config_dir);
    if ctx.out.json {
        ctx.out.json(&status);
    } else {
        ctx.out.data(report(&status));
    }
    Ok(())
}

fn report(status: &Status) -> String {
    let mut text = String::new();
    match status.disabled_by {
        None => text.push_str("Telemetry: on\n"),
        Some(why) => {
            let _ = writeln!(text, "Telemetry: off ({})", why.describe());
        }
    }
    if let Some(id) = &status.install_id {
        let _ = writeln!(text, "  Install id:  {id}");
    }
    let events = match status.pending_events {
        0 => "none".to_owned(),
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    };
    let _ = writeln!(text, "  Waiting:     {events}");
    let goes_to = match &status.server {
        Some(server) => format!("{server} (the server you are signed in to)"),
        None => "nowhere: not signed in".to_owned(),
    };
    let _ = writeln!(text, "  Sent to:     {goes_to}");
    text.push_str(
        "Every field sent is listed in docs/telemetry.md. `claudemesh telemetry off` turns it off.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::OffBecause;

    #[test]
    fn the_status_says_where_events_go() {
        let on = Status {
            enabled: true,
            disabled_by: None,
            install_id: Some("abc".into()),
            pending_events: 2,
            server: Some("https://claudemesh.com".into()),
        };
        assert_eq!(
            report(&on),
            "Telemetry: on\n  Install id:  abc\n  Waiting:     2 events\n  \
             Sent to:     https://claudemesh.com (the server you are signed in to)\n\
             Every field sent is listed in docs/telemetry.md. `claudemesh telemetry off` turns it off.\n"
        );
        let off = Status {
            enabled: false,
            disabled_by: Some(OffBecause::DoNotTrack),
            install_id: None,
            pending_events: 0,
            server: None,
        };
        let text = report(&off);
        assert!(text.starts_with("Telemetry: off (DO_NOT_TRACK is set)\n  Waiting:     none\n"));
        assert!(text.contains("nowhere: not signed in"));
    }
}

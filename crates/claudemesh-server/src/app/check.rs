//! `claudemesh-server --check-config`: every setting checked without
//! starting the server. Each is parsed as the server parses it and, where it
//! names something on this machine, looked at: the listen address resolves,
//! the data directory is (or can be made) a directory this user can write
//! to, the mail settings build a transport. Nothing is bound, no database is
//! connected to and no mail is sent, so it can run beside a live instance
//! (systemd's `ExecStartPre=`, before a restart). No secret is printed: a
//! database or SMTP URL is named by its host only.

use crate::app::config::Config;
use crate::text::mail::Mailer;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the check found: the settings as the server would use them, and
/// each problem, named by its flag and variable.
#[derive(Debug, Default)]
pub struct Report {
    pub settings: Vec<(&'static str, String)>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The text for the terminal: the settings when all is well, else the
    /// problems.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if self.ok() {
            let _ = writeln!(text, "claudemesh-server: the configuration is valid");
            for (name, value) in &self.settings {
                let _ = writeln!(text, "  {name:<14} {value}");
            }
        } else {
            let count = self.problems.len();
            let _ = writeln!(
                text,
                "claudemesh-server: the configuration has {count} problem{}:",
                if count == 1 { "" } else { "s" }
            );
            for problem in &self.problems {
                let _ = writeln!(text, "  ✘ {problem}");
            }
        }
        text
    }
}

/// Checks `config` (see the module's first lines).
pub async fn check(config: &Config) -> Report {
    let mut report = Report::default();

    match tokio::net::lookup_host(&config.bind).await {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => report.settings.push(("listen on", addr.to_string())),
            None => report.problems.push(format!(
                "--bind (CLAUDEMESH_BIND): `{}` resolves to no address",
                config.bind
            )),
        },
        Err(err) => report.problems.push(format!(
            "--bind (CLAUDEMESH_BIND): `{}` is not an address to listen on (host:port): {err}",
            config.bind
        )),
    }

    match &config.public_url {
        Some(url) => match check_public_url(url) {
            Ok(()) => report
                .settings
                .push(("public URL", url.trim_end_matches('/').to_owned())),
            Err(why) => report.problems.push(format!(
                "--public-url (CLAUDEMESH_PUBLIC_URL): `{url}` {why}"
            )),
        },
        None => report.settings.push((
            "public URL",
            format!("http://{} (the bind address)", config.bind),
        )),
    }

    // The data directory holds the SQLite file, and the outbox when there
    // is no SMTP server.
    let sqlite = config.database_url.is_none();
    let outbox = config.smtp_url.is_none();
    match &config.database_url {
        None => report.settings.push((
            "store",
            format!(
                "SQLite, {}",
                config.data_dir.join("claudemesh.db").display()
            ),
        )),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            report.settings.push((
                "store",
                format!("PostgreSQL at {} (not connected to)", host_of(url)),
            ));
        }
        Some(url) if url.starts_with("sqlite:") => report
            .settings
            .push(("store", "SQLite, at DATABASE_URL".to_owned())),
        Some(_) => report
            .problems
            .push("--database-url (DATABASE_URL): not a postgres:// (or sqlite:) URL".to_owned()),
    }
    if sqlite || outbox {
        match writable_dir(&config.data_dir) {
            Ok(note) => report
                .settings
                .push(("data dir", format!("{}{note}", config.data_dir.display()))),
            Err(why) => report.problems.push(format!(
                "--data-dir (CLAUDEMESH_DATA_DIR): {}: {why}",
                config.data_dir.display()
            )),
        }
    }
    match crate::broker::describe_bus(config.database_url.as_deref(), config.bus.as_deref()) {
        Ok(bus) => report.settings.push(("broker bus", bus)),
        Err(err) => report.problems.push(err.to_string()),
    }
    if config.db_pool_size == Some(0) {
        report
            .problems
            .push("--db-pool-size (CLAUDEMESH_DB_POOL_SIZE): must be at least 1".to_owned());
    }

    match Mailer::new(
        config.smtp_url.as_deref(),
        &config.mail_from,
        config.data_dir.join("outbox"),
    ) {
        Ok(mailer) => {
            let via = match &config.smtp_url {
                Some(url) => format!("SMTP at {} (not connected to)", host_of(url)),
                None => mailer.describe(),
            };
            report.settings.push(("mail", via));
        }
        Err(err) => report.problems.push(format!(
            "--smtp-url / --mail-from (CLAUDEMESH_SMTP_URL / CLAUDEMESH_MAIL_FROM): {err}"
        )),
    }
    match &config.metrics_bind {
        None => report.settings.push(("metrics", "off".to_owned())),
        Some(addr) => match tokio::net::lookup_host(addr).await {
            Ok(mut addrs) => match addrs.next() {
                Some(resolved) => report
                    .settings
                    .push(("metrics", format!("http://{resolved}/metrics"))),
                None => report.problems.push(format!(
                    "--metrics-bind (CLAUDEMESH_METRICS_BIND): `{addr}` resolves to no address"
                )),
            },
            Err(err) => report.problems.push(format!(
                "--metrics-bind (CLAUDEMESH_METRICS_BIND): `{addr}` is not an address to listen on (host:port): {err}"
            )),
        },
    }
    report.settings.push((
        "stopping",
        format!(
            "in-flight requests get {} s after SIGTERM",
            config.shutdown_grace
        ),
    ));
    report
}

fn check_public_url(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not a URL (http://… or https://…)");
    };
    if scheme != "http" && scheme != "https" {
        return Err("must start with http:// or https://");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("has no host");
    }
    if rest.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    Ok(())
}

/// The host (and port) of a URL, without its user, password or path.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        "localhost".to_owned()
    } else {
        host.to_owned()
    }
}

/// Whether `dir` is a directory this process can write to, or could be
/// made as one (its nearest existing parent is writable). A note when it
/// does not exist yet.
fn writable_dir(dir: &Path) -> Result<&'static str, String> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err("not a directory".to_owned());
        }
        return try_write(dir).map(|()| "");
    }
    let mut parent: PathBuf = dir.to_owned();
    loop {
        parent = match parent.parent() {
            Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
            Some(p) => p.to_owned(),
            None => return Err("no existing parent directory".to_owned()),
        };
        if parent.exists() {
            break;
        }
    }
    if !parent.is_dir() {
        return Err(format!("{} is not a directory", parent.display()));
    }
    try_write(&parent)
        .map(|()| " (made at start)")
        .map_err(|why| format!("cannot be made: {} {why}", parent.display()))
}

/// Makes and removes a file in `dir`.
fn try_write(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".claudemesh-check-config.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(err) => Err(format!("is not writable ({err})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_named_without_credentials() {
        assert_eq!(
            host_of("postgres://app:s3cret@db.internal:5432/claudemesh"),
            "db.internal:5432"
        );
        assert_eq!(
            host_of("smtps://user:pass@mail.example.com"),
            "mail.example.com"
        );
        assert_eq!(host_of("postgres:///claudemesh"), "localhost");
    }

    #[test]
    fn public_urls_are_http_or_https_with_a_host() {
        assert!(check_public_url("https://mesh.example.com").is_ok());
        assert!(check_public_url("http://127.0.0.1:3000/").is_ok());
        assert!(check_public_url("mesh.example.com").is_err());
        assert!(check_public_url("ftp://mesh.example.com").is_err());
        assert!(check_public_url("https://").is_err());
        assert!(check_public_url("https://mesh.example.com/?x=1").is_err());
    }
}

//! Outgoing mail: through SMTP when `CLAUDEMESH_SMTP_URL` is set, otherwise
//! into an outbox directory under the data dir (one `.eml` file a message),
//! so a server with no mail set-up still works and shows what it would send.
//!
//! Sending never decides whether the thing being mailed about exists: a
//! failure comes back as a short reason for the caller to report.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("CLAUDEMESH_SMTP_URL is not a usable SMTP URL: {0}")]
    SmtpUrl(String),
    #[error("CLAUDEMESH_MAIL_FROM is not an email address: {0}")]
    From(String),
}

/// Where a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The SMTP server took it.
    Sent,
    /// Written to the outbox directory: no mail server is set up, so it
    /// reaches nobody.
    Outbox,
}

/// A message to one recipient, plain text.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mailer {
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        outbox: PathBuf,
    ) -> Result<Self, MailConfigError> {
        let from = from
            .parse()
            .map_err(|err: lettre::address::AddressError| MailConfigError::From(err.to_string()))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|err| MailConfigError::SmtpUrl(err.to_string()))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => Transport::Outbox(outbox),
        };
        Ok(Self { transport, from })
    }

    /// Where mail goes, for the start-up line.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP".into(),
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Sends one message: where it went, or on failure a reason fit to
    /// show the sender.
    pub async fn send(&self, mail: &Mail) -> Result<Delivery, String> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| "the recipient address is not valid".to_owned())?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|err| format!("the message could not be built: {err}"))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map(|_| Delivery::Sent)
                    .map_err(|err| {
                        tracing::warn!(error = %err, "sending mail failed");
                        format!("the mail server did not take the message: {err}")
                    })
            }
            Transport::Outbox(dir) => {
                let file = dir.join(format!("{}.eml", crate::db::ids::new_id("mail")));
                let write = async {
                    tokio::fs::create_dir_all(dir).await?;
                    tokio::fs::write(&file, message.formatted()).await
                };
                write
                    .await
                    .map(|()| Delivery::Outbox)
                    .map_err(|err| format!("the outbox could not be written: {err}"))
            }
        }
    }
}

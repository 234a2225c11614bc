//! A small SMTP server for tests: speaks enough of RFC 5321 for a real
//! client (lettre) to deliver, keeps what it receives, and can be told to
//! refuse every recipient.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One delivered message, as it crossed the wire.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed, transfer encoding left as sent.
    pub data: String,
}

impl ReceivedMail {
    /// The decoded `Subject` header.
    pub fn subject(&self) -> String {
        let raw = self
            .data
            .lines()
            .skip_while(|line| !line.to_ascii_lowercase().starts_with("subject:"))
            .enumerate()
            .take_while(|(i, line)| *i == 0 || line.starts_with(' ') || line.starts_with('\t'))
            .map(|(_, line)| line.trim())
            .collect::<Vec<_>>()
            .join(" ");
        decode_encoded_words(raw.split_once(':').map_or("", |(_, v)| v).trim())
    }

    /// The decoded body (quoted-printable or base64 undone).
    pub fn body(&self) -> String {
        let (headers, body) = self.data.split_once("\r\n\r\n").unwrap_or((&self.data, ""));
        let headers = headers.to_ascii_lowercase();
        if headers.contains("content-transfer-encoding: quoted-printable") {
            decode_quoted_printable(body)
        } else if headers.contains("content-transfer-encoding: base64") {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8_lossy(
                &data_encoding::BASE64
                    .decode(compact.as_bytes())
                    .unwrap_or_default(),
            )
            .into_owned()
        } else {
            body.to_owned()
        }
    }
}

/// The mails a server with no SMTP wrote to its outbox (`<data dir>/outbox`,
/// one `.eml` file each), oldest first, read like delivered ones. No outbox
/// yet: none.
pub fn outbox(dir: &Path) -> Vec<ReceivedMail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter_map(|path| {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            Some((modified, path))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .map(|data| {
            let header = |name: &str| {
                data.lines()
                    .take_while(|line| !line.is_empty())
                    .find_map(|line| line.strip_prefix(name))
                    .map(|value| value.trim().to_owned())
            };
            ReceivedMail {
                from: header("From:").unwrap_or_default(),
                to: header("To:").into_iter().collect(),
                data,
            }
        })
        .collect()
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Undoes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`).
fn decode_encoded_words(text: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for word in text.split_whitespace() {
        let parts: Vec<&str> = word.split('?').collect();
        let decoded = if parts.len() == 5 && parts[0] == "=" && parts[4] == "=" {
            match parts[2].to_ascii_lowercase().as_str() {
                "b" => data_encoding::BASE64
                    .decode(parts[3].as_bytes())
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
                "q" => Some(decode_quoted_printable(&parts[3].replace('_', " "))),
                _ => None,
            }
        } else {
            None
        };
        // White space between two encoded words is folding, not text.
        if !(out.is_empty() || previous_encoded && decoded.is_some()) {
            out.push(' ');
        }
        previous_encoded = decoded.is_some();
        out.push_str(decoded.as_deref().unwrap_or(word));
    }
    out
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpSink {
    /// A sink that takes every message.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that refuses every recipient (554), as a broken relay would.
    pub async fn start_refusing() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = converse(stream, refuse, store).await;
                });
            }
        });
        Self { port, received }
    }

    /// The URL to give the server as `CLAUDEMESH_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.received.lock().expect("sink lock").clone()
    }

    /// Waits (up to ten seconds) until `count` messages that `keep` accepts
    /// have arrived, and returns those (the server also mails, for instance,
    /// about each new credential).
    pub async fn wait_for_where(
        &self,
        count: usize,
        keep: impl Fn(&ReceivedMail) -> bool,
    ) -> Vec<ReceivedMail> {
        for _ in 0..200 {
            let messages: Vec<_> = self.messages().into_iter().filter(&keep).collect();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP sink did not get {count} of the expected messages");
    }

    /// Waits (up to ten seconds) until `count` messages have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        for _ in 0..200 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the SMTP sink got {} messages, expected {count}",
            self.messages().len()
        );
    }
}

async fn converse(
    stream: TcpStream,
    refuse: bool,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if refuse {
                b"554 5.7.1 Relay access denied\r\n"
            } else {
                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                b"250 OK\r\n"
            }
        } else if upper.starts_with("DATA") {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            store.lock().expect("sink lock").push(ReceivedMail {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_mail_clients_encode() {
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 a=3Db =\r\nnext"),
            "café a=b next"
        );
        assert_eq!(
            decode_encoded_words("=?utf-8?b?w7FhbmTDug==?= team"),
            "ñandú team"
        );
        assert_eq!(decode_encoded_words("plain words"), "plain words");
        assert_eq!(
            decode_encoded_words("te =?utf-8?b?aW52aXTDsw==?= a"),
            "te invitó a"
        );
        assert_eq!(decode_encoded_words("=?utf-8?q?a?= =?utf-8?q?b?="), "ab");
    }
}

//! Noticing that nothing reads stdout any more.
//!
//! A command that prints as things happen (`stream subscribe`, `log tail
//! --follow`) would otherwise learn that `| head -3` is done only when it
//! writes its next line, which may be minutes away. A thread asks `poll(2)`
//! about stdout every [`CHECK_EVERY`]: a pipe whose reader is gone reports
//! `POLLERR` on Linux and `POLLHUP` on macOS (and the BSDs), a socket or
//! terminal that hung up `POLLHUP`; stdout closed altogether `POLLNVAL`.
//! `POLLOUT` is asked for only so that macOS (whose `poll` is built on
//! kqueue) watches the write side at all; the answer is read for the three
//! flags above and nothing else. A zero-byte `write` would not do: Linux
//! answers it without looking at the pipe's readers.
//!
//! A regular file or `/dev/null` never reports any of them: the command
//! then runs until it is stopped, as it should.

use std::time::Duration;

/// How often stdout is looked at: prompt for a person, nothing for the CPU.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Resolves once stdout is closed (never on a platform without `poll`).
/// Must be called inside a tokio runtime.
pub async fn closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let watching = std::thread::Builder::new()
        .name("stdout-watch".into())
        .spawn(move || {
            loop {
                if tx.is_closed() {
                    return;
                }
                if is_closed_now() {
                    let _ = tx.send(());
                    return;
                }
                std::thread::sleep(CHECK_EVERY);
            }
        });
    if watching.is_err() || rx.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether stdout is closed at this moment.
#[cfg(unix)]
pub fn is_closed_now() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(ready) if ready > 0)
        && fds[0]
            .revents()
            .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
}

#[cfg(not(unix))]
pub fn is_closed_now() -> bool {
    false
}

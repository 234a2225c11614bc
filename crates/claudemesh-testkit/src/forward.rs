//! A round-robin TCP forwarder: the load balancer in front of several
//! instances of the server.
//!
//! Each connection it accepts goes to the next backend in turn. A backend
//! that refuses the connection (its process is dead, or not listening yet)
//! is skipped for the one after it, as a load balancer whose health checks
//! took it out would. Bytes are then copied both ways until either side
//! ends, so when an instance dies the connections through it end too, and
//! its clients see what they would behind a real balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long a backend may take to accept before it counts as down: on
/// loopback a dead port refuses at once, so this only bounds the odd stall.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A forwarder listening on a loopback port of its own; dropping it ends
/// it and every connection through it.
pub struct Forwarder {
    addr: SocketAddr,
    accepting: JoinHandle<()>,
}

impl Forwarder {
    /// Starts forwarding to `backends`, taken in turn (at least one).
    pub async fn start(backends: Vec<SocketAddr>) -> std::io::Result<Self> {
        assert!(!backends.is_empty(), "a forwarder needs a backend");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepting = tokio::spawn(accept(listener, backends.into()));
        Ok(Self { addr, accepting })
    }

    /// `http://` and the forwarder's address: the URL clients are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // The connections are tasks of the accepting task's set: they end
        // with it.
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, backends: Arc<[SocketAddr]>) {
    let mut next = 0;
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Finished connections are reaped as they end.
            Some(_) = connections.join_next() => continue,
        };
        match accepted {
            Ok((client, _)) => {
                connections.spawn(forward(client, Arc::clone(&backends), next));
                next = (next + 1) % backends.len();
            }
            // Out of descriptors, or a connection reset before it was
            // accepted: wait a little rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Connects `client` to the first backend from `first` on that accepts,
/// and copies both ways until either side ends. With no backend up, the
/// client's connection is closed.
async fn forward(mut client: TcpStream, backends: Arc<[SocketAddr]>, first: usize) {
    for turn in 0..backends.len() {
        let addr = backends[(first + turn) % backends.len()];
        let Ok(Ok(mut backend)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        else {
            continue;
        };
        // Broker frames are small and latency is measured through here.
        let _ = client.set_nodelay(true);
        let _ = backend.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::Forwarder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A backend that answers each connection with its name and closes.
    async fn named_backend(name: u8) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(&[name]).await;
            }
        });
        addr
    }

    async fn answer(forwarder: &Forwarder) -> Option<u8> {
        let mut socket = TcpStream::connect(forwarder.addr()).await.unwrap();
        let mut byte = [0u8; 1];
        match socket.read(&mut byte).await {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    /// A port nothing listens on (bound, then let go).
    async fn dead_port() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn connections_go_round_robin_past_a_dead_backend() {
        let (a, b, dead) = (
            named_backend(b'a').await,
            named_backend(b'b').await,
            dead_port().await,
        );
        let forwarder = Forwarder::start(vec![a, dead, b]).await.unwrap();
        let mut answers = Vec::new();
        for _ in 0..6 {
            answers.push(answer(&forwarder).await.unwrap());
        }
        // a, (dead → b), b, a, (dead → b), b.
        assert_eq!(answers, b"abbabb");
    }

    #[tokio::test]
    async fn with_every_backend_down_the_client_is_closed() {
        let forwarder = Forwarder::start(vec![dead_port().await]).await.unwrap();
        assert_eq!(answer(&forwarder).await, None);
    }
}

//! A recording TCP relay: sits between a client and a server and keeps a
//! copy of every byte each way — exactly what an eavesdropper on the wire
//! sees. Used by `sealrpc demo` and the tests that prove no trace data leaks.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Log = Arc<Mutex<Vec<u8>>>;

/// A running relay.
pub struct Tap {
    addr: SocketAddr,
    to_server: Log,
    to_client: Log,
}

impl Tap {
    /// Listens on an ephemeral loopback port and relays every accepted
    /// connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Tap> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (to_server, to_client) = (Log::default(), Log::default());
        let (up, down) = (to_server.clone(), to_client.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, up.clone()));
                tokio::spawn(pump(sr, cw, down.clone()));
            }
        });
        Ok(Tap {
            addr,
            to_server,
            to_client,
        })
    }

    /// Where clients should connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every byte sent towards the server so far.
    pub fn to_server(&self) -> Vec<u8> {
        self.to_server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every byte sent towards the client so far.
    pub fn to_client(&self) -> Vec<u8> {
        self.to_client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Log,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Splits a captured TCP byte stream into its length-delimited frames
/// (a trailing partial frame is dropped).
pub fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let Some(frame) = bytes.get(4..4 + len) else {
            break;
        };
        frames.push(frame.to_vec());
        bytes = &bytes[4 + len..];
    }
    frames
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

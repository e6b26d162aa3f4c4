//! A raw client that writes request frames and never reads a reply: a
//! blocking socket with a 4 KiB receive buffer, so its writes block as soon
//! as the server stops reading it (nothing piles up in this process). On
//! WebSocket it runs the upgrade by hand and then writes each envelope as
//! one masked binary message, built here, straight to the socket.
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How envelopes go on the wire.
#[derive(Clone, Copy, Debug)]
pub enum Framing {
    /// sealrpc's TCP transport: a big-endian length, then the envelope.
    Tcp,
    /// One masked binary WebSocket message per envelope.
    Ws,
}

/// Any fixed mask will do: the server only requires client frames to be
/// masked.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

impl Framing {
    /// Appends `envelope` as one frame of this transport.
    pub fn push(self, envelope: &[u8], out: &mut BytesMut) {
        let n = envelope.len();
        match self {
            Framing::Tcp => {
                out.extend_from_slice(&(n as u32).to_be_bytes());
                out.extend_from_slice(envelope);
            }
            Framing::Ws => {
                // FIN + binary, then the masked payload length.
                out.extend_from_slice(&[0x82]);
                if n < 126 {
                    out.extend_from_slice(&[0x80 | n as u8]);
                } else if n <= 0xffff {
                    out.extend_from_slice(&[0x80 | 126]);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                } else {
                    out.extend_from_slice(&[0x80 | 127]);
                    out.extend_from_slice(&(n as u64).to_be_bytes());
                }
                out.extend_from_slice(&MASK);
                let masked = envelope.iter().zip(MASK.iter().cycle());
                out.extend(masked.map(|(b, m)| b ^ m));
            }
        }
    }
}

/// Connects to a server's `tcp://` or `ws://` URL with a 4 KiB receive
/// buffer (the kernel holds few unread replies), upgrades a WebSocket
/// connection, and returns the blocking socket and its framing.
pub async fn connect(url: &str) -> (TcpStream, Framing) {
    let (framing, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
        (Framing::Tcp, rest)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (Framing::Ws, rest)
    } else {
        panic!("a raw flood speaks tcp:// or ws://, not {url}");
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr = host.parse().expect("addr");
    let stream = socket.connect(addr).await.expect("raw connect");
    let mut stream = stream.into_std().expect("std");
    stream.set_nonblocking(false).expect("blocking");
    if let Framing::Ws = framing {
        upgrade(&mut stream, host, path);
    }
    (stream, framing)
}

/// The client side of the WebSocket upgrade (RFC 6455, section 4.1): the
/// request, then the response headers, which must say 101.
fn upgrade(stream: &mut TcpStream, host: &str, path: &str) {
    let request = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("upgrade request");
    // Byte by byte: nothing past the headers is read (the server sends
    // nothing else unasked).
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut response = Vec::new();
    let mut byte = [0u8];
    while !response.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("upgrade response");
        response.push(byte[0]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 101"),
        "the upgrade was refused: {response}"
    );
}

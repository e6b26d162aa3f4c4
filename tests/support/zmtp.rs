//! A raw ZeroMQ subscriber that can stop reading for real: a TCP socket
//! with a 4 KiB receive buffer speaking ZMTP 3 (NULL mechanism) as a SUB.
//! zeromq's own SUB cannot: it reconnects by itself when cut.
use sealrpc_zmq::gate::ZmtpGate;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};

pub struct RawSub {
    stream: TcpStream,
    /// Counts the messages read so far (it scans ZMTP from either side).
    scan: ZmtpGate,
}

impl RawSub {
    /// Connects to the PUB socket at `addr` and subscribes to `topics`.
    pub async fn connect(addr: SocketAddr, topics: &[&[u8]]) -> RawSub {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut stream = socket.connect(addr).await.expect("connect");
        let mut out = vec![0u8; 64];
        out[0] = 0xff;
        out[9] = 0x7f;
        out[10] = 3;
        out[12..16].copy_from_slice(b"NULL");
        out.extend(frame(0x04, b"\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB"));
        for topic in topics {
            // zeromq 0.7 takes ZMTP 3.0 subscriptions: a message `\x01topic`.
            out.extend(frame(0x00, &[&[1u8][..], topic].concat()));
        }
        stream.write_all(&out).await.expect("handshake");
        RawSub {
            stream,
            scan: ZmtpGate::new(u64::MAX),
        }
    }

    /// Reads until one more message has arrived, or `within` passed.
    pub async fn saw_message(&mut self, within: Duration) -> bool {
        let mut buf = vec![0u8; 64 << 10];
        let seen = self.scan.messages();
        let until = tokio::time::Instant::now() + within;
        while self.scan.messages() == seen {
            match tokio::time::timeout_at(until, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(n)) if n > 0 => self.scan.feed(&buf[..n]).expect("valid ZMTP"),
                Ok(end) => panic!("the subscription ended: {end:?}"),
            }
        }
        true
    }

    /// Completes when the publisher resets the connection (without reading
    /// it): the socket's error, `ConnectionReset` for a reset.
    pub async fn reset(&self) -> std::io::Error {
        let ready = self.stream.ready(Interest::ERROR).await.expect("ready");
        assert!(ready.is_error(), "{ready:?}");
        self.stream
            .take_error()
            .expect("SO_ERROR")
            .expect("an error")
    }
}

fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![flags, body.len() as u8];
    f.extend_from_slice(body);
    f
}

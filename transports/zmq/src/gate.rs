//! The ZMTP gate: what a peer sends to a bound socket (ROUTER, PUB) passes
//! through here before zeromq reads it.
//!
//! zeromq 0.7 reserves the length a ZMTP frame header announces (64 bits)
//! before anything above it can check it, and holds a peer that never
//! finishes its greeting forever. So sealrpc does not expose zeromq's own
//! listener: zeromq binds on loopback, and the gate accepts on the public
//! address and relays each connection to it, reading the peer's bytes with
//! [`ZmtpGate`], a sans-IO scanner of ZMTP 3 framing. A connection is cut
//! at once, before zeromq sees the offending header, when a frame would
//! take a message over the limit, a command is over its limit, the
//! greeting is not ZMTP 3, or a flags byte is invalid; and when the
//! greeting and the first command (READY), and for a ROUTER the first
//! message, have not arrived within the handshake timeout.
//!
//! What zeromq sends the peer is relayed by [`outbound`], which cuts a peer
//! that stops reading: zeromq 0.7 would otherwise queue for it without
//! bound (and, on a ROUTER, hold up its other peers once that queue is
//! full). A chunk (up to 8 KiB) the peer's socket has not taken within the
//! stall timeout ends the connection with a reset: zeromq sees it close
//! and drops that peer's queue, and the kernel drops what it held for the
//! peer. So a stalled peer costs zeromq at most what is sent to it in one
//! stall timeout (beyond the kernel's socket buffers). A peer that keeps
//! reading, however slowly (a chunk per stall timeout), is not cut.
//!
//! Costs: one more loopback hop per connection (measured in the README's
//! Performance section), and the loopback port is reachable by local
//! processes, which bypass the gate (as they could reach zeromq before).
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The largest command (READY with its properties, SUBSCRIBE, PING).
pub const MAX_COMMAND: u64 = 64 * 1024;
const GREETING: usize = 64;

/// Why the gate cut a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("not a ZMTP 3 greeting")]
    BadGreeting,
    #[error("invalid ZMTP flags byte {0:#04x}")]
    BadFlags(u8),
    #[error("ZMTP message of {len} bytes announced, the limit is {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("ZMTP command of {len} bytes announced, the limit is {max}")]
    CommandTooLarge { len: u64, max: u64 },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Greeting bytes seen so far.
    Greeting(usize),
    Flags,
    /// The size field: its width (1 or 8), the bytes seen, the value so far.
    Size {
        flags: u8,
        width: u8,
        seen: u8,
        value: u64,
    },
    Body {
        left: u64,
        command: bool,
        more: bool,
    },
}

/// A sans-IO scanner of the ZMTP 3 framing a peer sends: it holds no
/// bytes, only its position, and refuses a frame from its header.
#[derive(Debug, Clone)]
pub struct ZmtpGate {
    state: State,
    max_message: u64,
    /// Bytes of the message being assembled (frames with MORE so far).
    message: u64,
    commands: u64,
    messages: u64,
}

impl ZmtpGate {
    /// A gate refusing messages (the sum of their frames) over `max_message`.
    pub fn new(max_message: u64) -> ZmtpGate {
        ZmtpGate {
            state: State::Greeting(0),
            max_message,
            message: 0,
            commands: 0,
            messages: 0,
        }
    }

    /// Complete commands seen (the first is READY).
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Complete messages seen.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Scans `bytes`, the next bytes from the peer. `Err` = cut the peer
    /// now: nothing after the offending header may reach zeromq (the bytes
    /// before it in this chunk are harmless without it).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), GateError> {
        while !bytes.is_empty() {
            match self.state {
                State::Greeting(seen) => {
                    let take = (GREETING - seen).min(bytes.len());
                    for (i, &b) in bytes[..take].iter().enumerate() {
                        let ok = match seen + i {
                            0 => b == 0xff,
                            9 => b == 0x7f,
                            10 => b >= 3,
                            _ => true,
                        };
                        if !ok {
                            return Err(GateError::BadGreeting);
                        }
                    }
                    bytes = &bytes[take..];
                    self.state = if seen + take == GREETING {
                        State::Flags
                    } else {
                        State::Greeting(seen + take)
                    };
                }
                State::Flags => {
                    let flags = bytes[0];
                    bytes = &bytes[1..];
                    // Bits 3-7 reserved; a command (bit 2) has no MORE (bit 0).
                    if flags & 0xf8 != 0 || flags & 0x05 == 0x05 {
                        return Err(GateError::BadFlags(flags));
                    }
                    let width = if flags & 0x02 != 0 { 8 } else { 1 };
                    self.state = State::Size {
                        flags,
                        width,
                        seen: 0,
                        value: 0,
                    };
                }
                State::Size {
                    flags,
                    width,
                    seen,
                    value,
                } => {
                    let value = (value << 8) | u64::from(bytes[0]);
                    bytes = &bytes[1..];
                    if seen + 1 < width {
                        self.state = State::Size {
                            flags,
                            width,
                            seen: seen + 1,
                            value,
                        };
                        continue;
                    }
                    self.header(flags, value)?;
                }
                State::Body {
                    left,
                    command,
                    more,
                } => {
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    if take == left {
                        self.frame_done(command, more);
                    } else {
                        self.state = State::Body {
                            left: left - take,
                            command,
                            more,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// A complete frame header: checked before its body may pass.
    fn header(&mut self, flags: u8, len: u64) -> Result<(), GateError> {
        let command = flags & 0x04 != 0;
        let more = flags & 0x01 != 0;
        if command {
            if len > MAX_COMMAND {
                return Err(GateError::CommandTooLarge {
                    len,
                    max: MAX_COMMAND,
                });
            }
        } else {
            let total = self.message.saturating_add(len);
            if total > self.max_message {
                return Err(GateError::TooLarge {
                    len: total,
                    max: self.max_message,
                });
            }
            self.message = total;
        }
        if len == 0 {
            self.frame_done(command, more);
        } else {
            self.state = State::Body {
                left: len,
                command,
                more,
            };
        }
        Ok(())
    }

    fn frame_done(&mut self, command: bool, more: bool) {
        self.state = State::Flags;
        if command {
            self.commands += 1;
        } else if !more {
            self.messages += 1;
            self.message = 0;
        }
    }
}

/// What a gate in front of one bound socket enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GatePolicy {
    /// The largest message a peer may send.
    pub max_message: u64,
    /// How long the greeting and READY may take, and for a ROUTER the
    /// first message too.
    pub handshake_timeout: Duration,
    /// Whether the first message is part of the handshake (ROUTER: a
    /// sealrpc peer speaks first; PUB: a subscriber may stay silent).
    pub first_message: bool,
    /// How long the peer's socket may leave a chunk of what zeromq sends
    /// it untaken (the peer stopped reading) before the peer is cut.
    pub stall_timeout: Duration,
}

/// The gate's accept loop; dropping it (aborting) cuts every relayed
/// connection.
pub(crate) struct Gate {
    task: JoinHandle<()>,
    /// The public address peers connect to.
    pub addr: SocketAddr,
}

impl Gate {
    /// Stops accepting and returns once the public socket is closed (its
    /// port free to bind again). Dropping the gate only starts that.
    pub(crate) async fn close(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `public` (`HOST:PORT`) and relays every connection, through
/// a [`ZmtpGate`], to zeromq listening on `inner`.
pub(crate) async fn front(
    public: &str,
    inner: SocketAddr,
    policy: GatePolicy,
) -> std::io::Result<Gate> {
    let listener = TcpListener::bind(public).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut relays = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((peer, _)) => {
                        relays.spawn(relay(peer, inner, policy));
                    }
                    // e.g. out of file descriptors: back off briefly.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(_) = relays.join_next(), if !relays.is_empty() => {}
            }
        }
    });
    Ok(Gate { task, addr })
}

/// Bytes relayed at once, each way (a buffer per direction per connection).
const CHUNK: usize = 8 * 1024;

/// `now + d`, or a far future (30 years) if that overflows.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86400))
}

async fn relay(peer: TcpStream, inner: SocketAddr, policy: GatePolicy) {
    let deadline = after(policy.handshake_timeout);
    let (mut peer_r, peer_w) = peer.into_split();
    // zeromq is only reached once the peer has sent something that passes
    // (every ZMTP peer starts with its signature): a connection that sends
    // nothing, or garbage, never costs zeromq anything, and a bare TCP
    // connect (a client's reachability probe) gets nothing back.
    let mut gate = ZmtpGate::new(policy.max_message);
    let mut buf = vec![0u8; CHUNK];
    let first = match tokio::time::timeout_at(deadline, peer_r.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    if gate.feed(&buf[..first]).is_err() {
        return;
    }
    let Ok(zmq) = TcpStream::connect(inner).await else {
        return;
    };
    let _ = zmq.set_nodelay(true);
    let _ = peer_w.as_ref().set_nodelay(true);
    let (mut zmq_r, mut zmq_w) = zmq.into_split();
    let inbound = async {
        if zmq_w.write_all(&buf[..first]).await.is_err() {
            return;
        }
        loop {
            let done = gate.commands() > 0 && (!policy.first_message || gate.messages() > 0);
            let read = if done {
                peer_r.read(&mut buf).await
            } else {
                match tokio::time::timeout_at(deadline, peer_r.read(&mut buf)).await {
                    Ok(r) => r,
                    // The handshake took too long: cut.
                    Err(_) => return,
                }
            };
            let n = match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if gate.feed(&buf[..n]).is_err() {
                return;
            }
            if zmq_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let outbound = outbound(&mut zmq_r, &peer_w, policy.stall_timeout);
    // Either side ending ends both: the halves are dropped, the sockets close.
    tokio::select! {
        () = inbound => {}
        end = outbound => if end == Outbound::Stalled {
            // Closed with a reset: what the kernel still holds for the peer
            // is dropped now, not kept while it is retried to a peer that
            // does not read.
            let _ = peer_w.as_ref().set_zero_linger();
        }
    }
}

/// How the zeromq→peer direction ended.
#[derive(Debug, PartialEq, Eq)]
enum Outbound {
    /// zeromq closed, or a socket failed.
    Ended,
    /// The peer's socket took no chunk within the stall timeout.
    Stalled,
}

/// Relays what zeromq sends to the peer, a chunk at a time through one
/// buffer. Each write is tried at once, so a peer that keeps up costs no
/// timer; the stall clock starts when the peer's socket is full (its
/// buffers hold all they may: the peer is not reading) and must not reach
/// `stall` before the rest of the chunk is taken.
///
/// Nothing is read ahead from zeromq meanwhile: the loopback connection's
/// kernel buffers already do that, and more room would only hold more for
/// a peer that does not read.
async fn outbound(zmq_r: &mut OwnedReadHalf, peer_w: &OwnedWriteHalf, stall: Duration) -> Outbound {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match zmq_r.read(&mut buf).await {
            Ok(0) | Err(_) => return Outbound::Ended,
            Ok(n) => n,
        };
        let mut sent = 0;
        let mut deadline = None;
        while sent < n {
            match peer_w.try_write(&buf[sent..n]) {
                Ok(0) => return Outbound::Ended,
                Ok(k) => sent += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let at = *deadline.get_or_insert_with(|| after(stall));
                    match tokio::time::timeout_at(at, peer_w.writable()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Outbound::Ended,
                        Err(_) => return Outbound::Stalled,
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Outbound::Ended,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Vec<u8> {
        let mut g = vec![0u8; GREETING];
        g[0] = 0xff;
        g[9] = 0x7f;
        g[10] = 3;
        g[12..16].copy_from_slice(b"NULL");
        g
    }

    fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![flags];
        if flags & 0x02 != 0 {
            f.extend_from_slice(&(body.len() as u64).to_be_bytes());
        } else {
            f.push(body.len() as u8);
        }
        f.extend_from_slice(body);
        f
    }

    fn stream() -> Vec<u8> {
        let mut s = greeting();
        s.extend(frame(
            0x04,
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER",
        ));
        s.extend(frame(0x01, b"part"));
        s.extend(frame(0x02, &[7u8; 300]));
        s.extend(frame(0x00, b""));
        s
    }

    #[test]
    fn valid_traffic_passes_in_any_chunking() {
        let s = stream();
        for chunk in [1, 2, 3, 7, 64, 65, 1000] {
            let mut g = ZmtpGate::new(1024);
            for c in s.chunks(chunk) {
                g.feed(c).expect("valid ZMTP");
            }
            assert_eq!((g.commands(), g.messages()), (1, 2), "chunk {chunk}");
        }
    }

    #[test]
    fn a_long_header_over_the_limit_is_refused_from_the_header() {
        let mut s = greeting();
        s.push(0x02);
        s.extend_from_slice(&(4u64 << 30).to_be_bytes());
        let mut g = ZmtpGate::new(1 << 20);
        assert_eq!(
            g.feed(&s),
            Err(GateError::TooLarge {
                len: 4 << 30,
                max: 1 << 20
            })
        );
        // A multipart message adds up.
        let mut s = greeting();
        s.extend(frame(0x01, &[0; 200]));
        s.extend(frame(0x00, &[0; 200]));
        assert!(matches!(
            ZmtpGate::new(300).feed(&s),
            Err(GateError::TooLarge { len: 400, .. })
        ));
        let mut s = greeting();
        s.push(0x06);
        s.extend_from_slice(&(MAX_COMMAND + 1).to_be_bytes());
        assert!(matches!(
            ZmtpGate::new(1 << 20).feed(&s),
            Err(GateError::CommandTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_greetings_and_flags_are_refused() {
        for garbage in [
            &b"GET / HTTP/1.1\r\n"[..],
            &[0x16, 0x03, 0x01, 0x02, 0x00][..],
            &[0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x00][..],
        ] {
            assert_eq!(
                ZmtpGate::new(1024).feed(garbage),
                Err(GateError::BadGreeting),
                "{garbage:?}"
            );
        }
        let mut old = greeting();
        old[10] = 2;
        assert_eq!(ZmtpGate::new(1024).feed(&old), Err(GateError::BadGreeting));
        for flags in [0x08, 0x80, 0x05, 0x07] {
            let mut s = greeting();
            s.push(flags);
            assert_eq!(
                ZmtpGate::new(1024).feed(&s),
                Err(GateError::BadFlags(flags))
            );
        }
    }
}

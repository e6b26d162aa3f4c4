//! Garbage on every listening port (issue #6, "Faults", item 2). A master
//! with node identities listens on TCP, WebSocket and ZeroMQ (the request
//! port and the PUB port it binds for jobs); one accepted minion and one
//! admin client per transport are its good peers. Attackers connect to
//! every port and send random bytes, an HTTP request, a TLS ClientHello, a
//! frame header announcing 4 GiB (in each protocol's own framing, before
//! and after its handshake), or nothing (half-open), or a valid-looking
//! handshake one byte at a time that never finishes (slowloris). Each test
//! proves that:
//! - the master keeps serving every good peer while the bad connections
//!   are open (calls on every transport, new connections on every
//!   transport, a job published to every minion and returned);
//! - every bad peer is closed: at once for malformed bytes and oversize
//!   headers (a master whose handshake timeout is far longer than the
//!   test's guard, so only the garbage can have closed them), at the
//!   handshake timeout for half-open and slowloris peers;
//! - memory stays bounded with hundreds of such peers at once.
//!
//! Waits are on events (replies, ends of connections); every timeout is an
//! upper bound that fails the test. The attackers' pauses between bytes
//! pace the slowloris attack; nothing waits on them.
mod support;

#[path = "support/garbage.rs"]
mod garbage;

use garbage::{Bad, Ending, Port, Target};
use std::time::Duration;
use support::attack::GUARD;

/// The handshake timeout of the masters that must close peers at once:
/// longer than [`GUARD`], so a peer closed within the guard was closed
/// for what it sent, not by a timeout.
const LONG: Duration = Duration::from_secs(120);
/// The handshake timeout of the master that closes half-open and
/// slowloris peers.
const SHORT: Duration = Duration::from_millis(500);
/// Scheduling slack on top of [`SHORT`] (2 cores, other tests and a
/// fuzzer running): a peer must be closed within `SHORT + SLACK`.
const SLACK: Duration = Duration::from_millis(4500);
/// The pause between a slowloris peer's bytes.
const PAUSE: Duration = Duration::from_millis(100);

/// The memory test measures the whole process's RSS: it runs alone (it
/// takes this lock to write, every other test to read).
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The kinds of garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 4 KiB of pseudo-random bytes.
    Random,
    /// A plain HTTP GET.
    Http,
    /// A TLS ClientHello record.
    TlsHello,
    /// A frame header announcing 4 GiB, in the port's framing, then 64 KiB
    /// of the body.
    FourGib,
    /// Connect, send nothing.
    HalfOpen,
    /// A valid-looking handshake, one byte per [`PAUSE`], never finished.
    Slowloris,
}

/// 64 KiB of body after an oversize header: the master must not buffer it.
const BODY: usize = 64 * 1024;

/// Opens `kind`'s bad connections to `port` (more than one where a port
/// has layers: before and after the WebSocket upgrade or the ZMTP
/// handshake). Each is sent its garbage before this returns (a slowloris
/// is started).
async fn attack(t: &Target, port: Port, kind: Kind) -> Vec<Bad> {
    let addr = t.addr(port);
    let name = |variant: &str| format!("{} {kind:?}{variant}", port.name());
    let mut bads = Vec::new();
    match kind {
        Kind::Random | Kind::Http | Kind::TlsHello => {
            let bytes = match kind {
                Kind::Random => garbage::random_bytes(4096, 0x5eed),
                Kind::Http => garbage::http_request(addr),
                _ => garbage::tls_client_hello(),
            };
            let mut b = Bad::open(name(""), addr).await;
            b.send(&bytes).await;
            bads.push(b);
        }
        Kind::FourGib => bads.extend(four_gib(t, port, BODY).await),
        Kind::HalfOpen => {
            bads.push(Bad::open(name(""), addr).await);
            match port {
                Port::Ws => bads.push(upgraded(t, name(" after the upgrade")).await),
                Port::Zmq => {
                    let mut b = Bad::open(name(" after READY"), addr).await;
                    b.send(&garbage::zmtp_greeting()).await;
                    b.send(&garbage::zmtp_ready("DEALER")).await;
                    bads.push(b);
                }
                // A subscriber that completed ZMTP and subscribes to
                // nothing is a legitimate idle subscriber, not a half-open
                // peer; the TCP port has a single layer.
                Port::ZmqPub | Port::Tcp => {}
            }
        }
        Kind::Slowloris => {
            let (first, deeper): (Vec<u8>, Option<(Bad, Vec<u8>)>) = match port {
                Port::Tcp => (garbage::tcp_frame(&garbage::noise_frame1()), None),
                Port::Ws => {
                    let b = upgraded(t, name(" after the upgrade")).await;
                    let frame = garbage::ws_frame(&garbage::noise_frame1());
                    (garbage::ws_upgrade(addr, &t.ws_path), Some((b, frame)))
                }
                Port::Zmq => {
                    let mut b = Bad::open(name(" after READY"), addr).await;
                    b.send(&garbage::zmtp_greeting()).await;
                    b.send(&garbage::zmtp_ready("DEALER")).await;
                    let msg = garbage::zmtp_message(&garbage::noise_frame1());
                    (garbage::zmtp_greeting(), Some((b, msg)))
                }
                Port::ZmqPub => (garbage::zmtp_greeting(), None),
            };
            let mut b = Bad::open(name(""), addr).await;
            b.trickle(all_but_last(first), PAUSE);
            bads.push(b);
            if let Some((mut b, bytes)) = deeper {
                b.trickle(all_but_last(bytes), PAUSE);
                bads.push(b);
            }
        }
    }
    bads
}

/// A frame header announcing 4 GiB in `port`'s framing, then `body`
/// bytes of it: on ZeroMQ both where the READY command is due and as a
/// message after a complete ZMTP handshake.
async fn four_gib(t: &Target, port: Port, body: usize) -> Vec<Bad> {
    let addr = t.addr(port);
    let name = |variant: &str| format!("{} FourGib{variant}", port.name());
    let body = vec![0x5a; body];
    let mut bads = Vec::new();
    match port {
        Port::Tcp => {
            let mut b = Bad::open(name(""), addr).await;
            b.send(&[0xff; 4]).await;
            b.send(&body).await;
            bads.push(b);
        }
        Port::Ws => {
            let mut b = upgraded(t, name(" after the upgrade")).await;
            let (header, _) = garbage::ws_header(1 << 32);
            b.send(&header).await;
            b.send(&body).await;
            bads.push(b);
        }
        Port::Zmq | Port::ZmqPub => {
            let mut b = Bad::open(name(" instead of READY"), addr).await;
            b.send(&garbage::zmtp_greeting()).await;
            b.send(&garbage::zmtp_long_header(true, 1 << 32)).await;
            b.send(&body).await;
            bads.push(b);
            let socket = if port == Port::Zmq { "DEALER" } else { "SUB" };
            let mut b = Bad::open(name(" after READY"), addr).await;
            b.send(&garbage::zmtp_greeting()).await;
            b.send(&garbage::zmtp_ready(socket)).await;
            b.send(&garbage::zmtp_long_header(false, 1 << 32)).await;
            b.send(&body).await;
            bads.push(b);
        }
    }
    bads
}

fn all_but_last(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.pop();
    bytes
}

/// A connection to the WebSocket endpoint, upgraded by hand.
async fn upgraded(t: &Target, what: String) -> Bad {
    let mut b = Bad::open(what, t.ws).await;
    b.send(&garbage::ws_upgrade(t.ws, &t.ws_path)).await;
    let response = b.read_through(b"\r\n\r\n").await;
    assert!(
        response.starts_with(b"HTTP/1.1 101"),
        "{}: {}",
        b.what,
        String::from_utf8_lossy(&response)
    );
    b
}

/// Opens `kinds` on every port.
async fn attack_all(t: &Target, kinds: &[Kind]) -> Vec<Bad> {
    let mut bads = Vec::new();
    for &kind in kinds {
        for port in Port::ALL {
            bads.extend(attack(t, port, kind).await);
        }
    }
    bads
}

/// What the master sent before it ended a TCP-port peer: nothing (a reset
/// can discard it) or exactly the handshake alert (code 3), framed.
fn assert_tcp_alert_or_nothing(what: &str, end: &Ending) {
    use sealrpc::wire::header::{alert_frame, AlertCode};
    let alert = garbage::tcp_frame(&alert_frame(AlertCode::NotAuthorized));
    assert!(
        end.received.is_empty() || end.received == alert,
        "{what}: {end:?}"
    );
}

fn report(label: &str, what: &str, end: &Ending) {
    eprintln!(
        "{label}: {what}: closed after {:?} ({}; {} bytes received)",
        end.after,
        if end.reset { "reset" } else { "end of stream" },
        end.received.len()
    );
}

/// Every bad peer is closed within [`GUARD`] of its connect (a master
/// whose handshake timeout is [`LONG`] can only have closed it for what it
/// sent), while every good peer is served.
async fn refused_at_once(name: &str, kinds: &[Kind]) {
    let _shared = EXCLUSIVE.read().await;
    let t = Target::start(name, LONG).await;
    t.served("before").await;
    let bads = attack_all(&t, kinds).await;
    t.served("during").await;
    for b in bads {
        let what = b.what.clone();
        let end = b.ending(GUARD).await;
        report(name, &what, &end);
        assert!(end.after < LONG, "{what}: {end:?}");
        if what.starts_with("tcp ") {
            assert_tcp_alert_or_nothing(&what, &end);
        }
    }
    t.served("after").await;
    t.stop().await;
}

#[tokio::test]
async fn malformed_bytes_are_refused_at_once_on_every_port() {
    refused_at_once("garbage-bytes", &[Kind::Random, Kind::Http, Kind::TlsHello]).await;
}

#[tokio::test]
async fn a_four_gib_frame_header_is_refused_at_once_on_every_port() {
    refused_at_once("garbage-4gib", &[Kind::FourGib]).await;
}

/// Half-open and slowloris peers on every port, held by a master whose
/// handshake timeout is long: every good peer is served while all of them
/// are open, and none was closed before its timeout.
#[tokio::test]
async fn half_open_and_slowloris_peers_do_not_starve_good_peers() {
    let _shared = EXCLUSIVE.read().await;
    let t = Target::start("garbage-held", LONG).await;
    let bads = attack_all(&t, &[Kind::HalfOpen, Kind::Slowloris]).await;
    t.served("while held").await;
    for b in &bads {
        assert!(
            b.is_open(),
            "{} was closed before its handshake timeout",
            b.what
        );
    }
    drop(bads);
    t.served("after").await;
    t.stop().await;
}

/// With a 500 ms handshake timeout, every half-open and slowloris peer on
/// every port is closed at that timeout (not before, and within the
/// scheduling slack after), and the good peers are served meanwhile.
#[tokio::test]
async fn half_open_and_slowloris_peers_are_closed_at_the_handshake_timeout() {
    let _shared = EXCLUSIVE.read().await;
    let t = Target::start("garbage-timeout", SHORT).await;
    let bads = attack_all(&t, &[Kind::HalfOpen, Kind::Slowloris]).await;
    t.served("during").await;
    for b in bads {
        let what = b.what.clone();
        let end = b.ending(SHORT + SLACK).await;
        report("timeout", &what, &end);
        assert!(
            end.after >= SHORT,
            "{what} closed before the timeout: {end:?}"
        );
        if what.starts_with("tcp ") {
            assert_tcp_alert_or_nothing(&what, &end);
        }
    }
    t.served("after").await;
    t.stop().await;
}

/// Rounds of the memory test: each opens, on one port in turn, the 4 GiB
/// peers of [`four_gib`] (one on TCP and WebSocket, two on each ZeroMQ
/// port) and a slowloris peer announcing a frame at the limit: 300 + 200
/// bad peers.
const MANY: usize = 200;
/// The body each 4 GiB peer sends after its header in the memory test:
/// were it buffered, 300 peers would add 300 MiB.
const MEM_BODY: usize = 1024 * 1024;
/// The handshake timeout of the memory test's master: long enough that
/// the slowloris peers are still open when memory is measured.
const MEM_TIMEOUT: Duration = Duration::from_secs(8);
/// The most the process's RSS may grow with the memory test's 500 bad
/// peers open.
const RSS_BOUND_KIB: u64 = 48 * 1024;

/// A slowloris peer that announces a frame of the master's limit (16 MiB)
/// in the port's framing and then trickles its body: on TCP, the
/// WebSocket endpoint (after the upgrade) and the ZeroMQ request port
/// (after ZMTP) as the first frame of sealrpc's handshake, on the PUB port
/// as the ZMTP READY command.
async fn announcing_the_limit(t: &Target, port: Port, i: usize) -> Bad {
    let limit = sealrpc::transport::DEFAULT_MAX_FRAME as u64;
    let name = format!("{} slowloris #{i}", port.name());
    let (mut b, header) = match port {
        Port::Tcp => (
            Bad::open(name, t.tcp).await,
            (limit as u32).to_be_bytes().to_vec(),
        ),
        Port::Ws => (upgraded(t, name).await, garbage::ws_header(limit).0),
        Port::Zmq => {
            let mut b = Bad::open(name, t.zmq).await;
            b.send(&garbage::zmtp_greeting()).await;
            b.send(&garbage::zmtp_ready("DEALER")).await;
            (b, garbage::zmtp_long_header(false, limit))
        }
        // Where READY is due: a subscriber that has completed ZMTP is an
        // ordinary (idle) subscriber, with no handshake left to time out.
        // A command may announce at most the gate's command limit (more is
        // cut at once, see `a_four_gib_frame_header...`).
        Port::ZmqPub => {
            let mut b = Bad::open(name, t.zmq_pub).await;
            b.send(&garbage::zmtp_greeting()).await;
            (
                b,
                garbage::zmtp_long_header(true, sealrpc_zmq::gate::MAX_COMMAND),
            )
        }
    };
    b.send(&header).await;
    b.trickle(vec![0x5a; 64], PAUSE);
    b
}

#[tokio::test]
async fn hundreds_of_bad_peers_keep_memory_bounded() {
    let _alone = EXCLUSIVE.write().await;
    let _ = sealrpc::rlimit::raise_open_files(0);
    let t = Target::start("garbage-memory", MEM_TIMEOUT).await;
    // Warm up: one of each, so that lazily built state is not counted.
    let mut warm = Vec::new();
    let mut slow = Vec::new();
    for port in Port::ALL {
        warm.extend(four_gib(&t, port, MEM_BODY).await);
        slow.push(announcing_the_limit(&t, port, MANY).await);
    }
    for b in warm {
        b.ending(GUARD).await;
    }
    t.served("warm").await;
    let before = garbage::rss_kib();
    let mut gib = Vec::new();
    for i in 0..MANY {
        let port = Port::ALL[i % Port::ALL.len()];
        gib.extend(four_gib(&t, port, MEM_BODY).await);
        slow.push(announcing_the_limit(&t, port, i).await);
    }
    t.served("under attack").await;
    let during = garbage::rss_kib();
    let open = slow.iter().filter(|b| b.is_open()).count();
    let gibs = gib.len();
    eprintln!(
        "memory: RSS {before} KiB before, {during} KiB with {gibs} 4 GiB and {} slowloris \
         peers ({open} slowloris still open)",
        slow.len()
    );
    assert!(
        during.saturating_sub(before) < RSS_BOUND_KIB,
        "RSS grew from {before} to {during} KiB"
    );
    let mut slowest = Duration::ZERO;
    for b in gib {
        let what = b.what.clone();
        let end = b.ending(GUARD).await;
        assert!(end.after < MEM_TIMEOUT, "{what}: {end:?}");
        slowest = slowest.max(end.after);
    }
    eprintln!("memory: slowest 4 GiB peer closed after {slowest:?}");
    let mut slowest = Duration::ZERO;
    for b in slow {
        let what = b.what.clone();
        let end = b.ending(MEM_TIMEOUT + SLACK).await;
        assert!(end.after >= MEM_TIMEOUT, "{what}: {end:?}");
        slowest = slowest.max(end.after);
    }
    eprintln!("memory: slowest slowloris peer closed after {slowest:?}");
    t.served("after").await;
    eprintln!("memory: RSS {} KiB after", garbage::rss_kib());
    t.stop().await;
}

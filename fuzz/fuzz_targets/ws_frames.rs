//! The WebSocket transport's inbound path on arbitrary bytes, over an
//! in-memory stream (`tokio::io::duplex`), on one current-thread runtime.
//!
//! Covers, in `transports/ws/src/`: the server handshake as the listener
//! runs it (`accept_stream` → `listener::server_handshake`, with our
//! `OnlyPath` callback and the tungstenite configuration from `WsConfig`:
//! the frame and message limits), the client handshake (`connect_stream`),
//! the byte counting `Conn`, and `WsReader::recv`: binary messages out,
//! text refused, pings, close codes, the refusals and their close frames,
//! the error mapping (`connection_error`) and sticky ends. The HTTP and
//! RFC 6455 parsing underneath is tungstenite's (and httparse's), fuzzed
//! here only as far as our configuration drives it. The keepalive is off
//! (it needs real time; its unit tests cover it).
//!
//! Input: `[config, stream...]`. `config` bits 0-1: the role: 0 and 3,
//! the server, with a valid upgrade request for `/sealrpc` put before the
//! stream (so most inputs reach the frame parser); 1, the server, the
//! stream as is (the handshake itself is fuzzed); 2, the client, the
//! stream being what the server sends after a valid `101` answer (computed
//! from the client's real key). Bits 2-3: the frame limit (16, 125, 126 or
//! 1024 bytes: around the 7-bit and 16-bit length encodings); bits 4-5:
//! tungstenite's read buffer; bits 6-7: how the peer's writes are cut.
//! Checks: no panic, no hang; every message returned is within the limit;
//! ends are sticky; no single allocation above `alloc_bound` (an announced
//! length over the limit is refused from the frame header).
#![no_main]
#[path = "support/mod.rs"]
mod support;

use futures::FutureExt;
use libfuzzer_sys::fuzz_target;
use sealrpc_ws::{accept_stream, connect_stream, WsConfig, WsError, WsReader};
use std::sync::OnceLock;
use std::time::Duration;
use support::{Probe, Rng};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

#[global_allocator]
static ALLOC: Probe = Probe;

/// The request a real client sends (tokio-tungstenite's, key fixed).
const REQUEST: &[u8] = b"GET /sealrpc HTTP/1.1\r\n\
Host: 127.0.0.1:4506\r\n\
Connection: Upgrade\r\n\
Upgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

const MAX_FRAMES: [usize; 4] = [16, 125, 126, 1024];
const READ_BUFFERS: [usize; 4] = [1, 16, 1024, 8192];
/// Longer inputs are skipped (they would only slow the run down).
const MAX_INPUT: usize = 64 * 1024;

/// The largest single allocation allowed: a frame or a message of at most
/// the limit (tungstenite reserves an accepted frame's length up front,
/// and our reader may copy a message once), the read buffer, and a fixed
/// allowance for the handshake and buffers that grow with the input.
fn alloc_bound(max_frame: usize, read_buffer: usize, input: usize) -> usize {
    4 * max_frame + 2 * read_buffer + 4 * input + 64 * 1024
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

/// Writes `bytes` the way the peer's writes are cut.
async fn write_cut(io: &mut DuplexStream, bytes: &[u8], cut: u8, rng: &mut Rng) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = match cut {
            0 => rest.len(),
            1 => 1,
            _ => rng.chunk(if cut == 2 { 16 } else { 4096 }),
        }
        .min(rest.len());
        if io.write_all(&rest[..n]).await.is_err() {
            return false;
        }
        rest = &rest[n..];
        tokio::task::yield_now().await;
    }
    true
}

/// Reads up to the end of an HTTP head (or the end of the stream).
async fn read_head(io: &mut DuplexStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if io.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    head
}

/// Reads the server's answer to a request, or gives up once the server
/// has had its turns and said nothing (it may be waiting for more of a
/// request the fuzzer cut short; a real client would then wait for the
/// server's handshake timeout).
async fn await_answer(io: &mut DuplexStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let mut idle = 0;
    while !head.ends_with(b"\r\n\r\n") && idle < 16 {
        match io.read(&mut byte).now_or_never() {
            Some(Ok(1)) => {
                head.push(byte[0]);
                idle = 0;
            }
            Some(_) => return,
            None => {
                idle += 1;
                tokio::task::yield_now().await;
            }
        }
    }
}

/// The client's side of the stream: writes `bytes` up to the end of the
/// first HTTP head, waits for the answer's head as a real client does
/// (tungstenite refuses bytes sent after the request before its answer),
/// writes the rest, ends the stream (FIN), then reads everything the
/// server sends until it is gone.
async fn client_writes(mut io: DuplexStream, bytes: &[u8], cut: u8, seed: u64) {
    let mut rng = Rng::new(seed);
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let (head, rest) = bytes.split_at(split);
    if write_cut(&mut io, head, cut, &mut rng).await {
        if !rest.is_empty() {
            await_answer(&mut io).await;
        }
        write_cut(&mut io, rest, cut, &mut rng).await;
    }
    let _ = io.shutdown().await;
    let mut sink = Vec::new();
    let _ = io.read_to_end(&mut sink).await;
}

/// The server's side of the stream: writes `bytes` (a `101` answer and
/// what follows) the way writes are cut, ends the stream, then reads what
/// the client sends until it is gone.
async fn server_writes(mut io: DuplexStream, bytes: &[u8], cut: u8, seed: u64) {
    let mut rng = Rng::new(seed);
    write_cut(&mut io, bytes, cut, &mut rng).await;
    let _ = io.shutdown().await;
    let mut sink = Vec::new();
    let _ = io.read_to_end(&mut sink).await;
}

/// Reads messages until the end; checks sizes and that the end is sticky.
async fn read_all(mut reader: WsReader, max_frame: usize) {
    let end = loop {
        match reader.recv().await {
            Ok(Some(msg)) => assert!(msg.len() <= max_frame, "{} > {max_frame}", msg.len()),
            end => break end,
        }
    };
    let again = reader.recv().await;
    match (&end, &again) {
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(kind(a), kind(b), "{a} then {b}"),
        _ => panic!("the end is not sticky: {end:?} then {again:?}"),
    }
    if let Err(WsError::TooLarge { len, max }) = end {
        assert!(len > max && max == max_frame, "TooLarge {len} {max}");
    }
    // A hang would be a bug too: the peer ended its stream.
}

fn kind(e: &WsError) -> std::mem::Discriminant<WsError> {
    std::mem::discriminant(e)
}

/// The server side: the stream is what a client sends.
async fn server(stream: Vec<u8>, cfg: WsConfig, cut: u8, seed: u64) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let max_frame = cfg.max_frame;
    let serve = async move {
        if let Ok((reader, _writer)) = accept_stream(server, cfg).await {
            read_all(reader, max_frame).await;
        }
    };
    tokio::join!(serve, client_writes(client, &stream, cut, seed));
}

/// The client side: answers the client's real handshake request with a
/// valid `101`, then sends the stream.
async fn client(stream: Vec<u8>, cfg: WsConfig, cut: u8, seed: u64) {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    let max_frame = cfg.max_frame;
    let dial = async move {
        if let Ok((reader, _writer)) =
            connect_stream(client, "ws://127.0.0.1:4506/sealrpc", cfg).await
        {
            read_all(reader, max_frame).await;
        }
    };
    let answer = async move {
        let request = read_head(&mut server).await;
        if !request.ends_with(b"\r\n\r\n") {
            return;
        }
        let text = String::from_utf8_lossy(&request);
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("the client sends a key");
        let mut bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.trim().as_bytes())
        )
        .into_bytes();
        bytes.extend_from_slice(&stream);
        server_writes(server, &bytes, cut, seed).await;
    };
    tokio::join!(dial, answer);
}

fuzz_target!(|data: &[u8]| {
    let [config, stream @ ..] = data else {
        return;
    };
    if stream.len() > MAX_INPUT {
        return;
    }
    let max_frame = MAX_FRAMES[usize::from((config >> 2) & 3)];
    let read_buffer = READ_BUFFERS[usize::from((config >> 4) & 3)];
    let cut = config >> 6;
    let seed = stream.len() as u64 ^ u64::from(*config);
    let cfg = WsConfig {
        max_frame,
        ping_interval: Duration::ZERO,
        read_buffer,
        write_buffer: 1024,
        ..WsConfig::default()
    };
    let bound = alloc_bound(max_frame, read_buffer, data.len());
    Probe::start();
    runtime().block_on(async {
        match config & 3 {
            1 => server(stream.to_vec(), cfg, cut, seed).await,
            2 => client(stream.to_vec(), cfg, cut, seed).await,
            _ => {
                let mut bytes = REQUEST.to_vec();
                bytes.extend_from_slice(stream);
                server(bytes, cfg, cut, seed).await
            }
        }
    });
    let largest = Probe::stop();
    assert!(
        largest <= bound,
        "allocated {largest} bytes with max_frame {max_frame} (bound {bound})"
    );
});

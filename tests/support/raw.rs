//! An attacker's own protocol code for the attack suite: a raw transport
//! connection (frames in and out, on TCP, WebSocket or ZeroMQ) that runs
//! the Noise handshake by hand, and a sealed session on it whose sealer and
//! opener are set up as the channel's client sets up its own.
use super::attack::guard;
use bytes::BytesMut;
use sealrpc::error::WireError;
use sealrpc::keys::{Key, Keyring};
use sealrpc::pki::KeyPair;
use sealrpc::transport::{self, AnyRecv, AnySend, FrameRecv, FrameSend};
use sealrpc::wire::envelope::unix_ms;
use sealrpc::wire::handshake::{Completed, Initiator};
use sealrpc::wire::header::ALERT_KIND;
use sealrpc::wire::load::{self, Carrier, ReplyLoad, RequestLoad};
use sealrpc::wire::{Kind, Opener, Sealer, SessionRegistry};
use std::sync::Arc;

/// The frame limit of raw (attacker) connections: above the master's.
pub const RAW_MAX: usize = 1 << 20;
/// The envelope TTL the manual sessions use (the channel's default).
const TTL_MS: u64 = 60_000;

/// How a raw connection ended.
#[derive(Debug)]
pub struct Ending {
    /// The frames the peer sent before the end.
    pub frames: Vec<BytesMut>,
    /// The transport error, if it ended with one (a reset) rather than a clean end.
    pub error: Option<String>,
}

impl Ending {
    /// The reason code of the alert the peer sent last, if it sent one.
    pub fn alert(&self) -> Option<u8> {
        match self.frames.last().map(|f| &f[..]) {
            Some(&[0x53, 0x52, 0x01, ALERT_KIND, code]) => Some(code),
            _ => None,
        }
    }

    /// The peer sent exactly one frame, the alert with `code`, then ended.
    pub fn assert_alert(&self, code: u8) {
        assert_eq!(self.frames.len(), 1, "{self:?}");
        assert_eq!(self.alert(), Some(code), "{self:?}");
    }
}

/// A raw transport connection: frames in and out, nothing else.
pub struct Raw {
    r: AnyRecv,
    w: AnySend,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        let ep = sealrpc::channel::parse_url(url).expect("url");
        let (r, w, _) = transport::connect(&ep, RAW_MAX).await.expect("raw connect");
        Raw { r, w }
    }

    /// Sends one frame (the transport's own framing around `frame`).
    pub async fn send(&mut self, frame: &[u8]) {
        let mut batch = BytesMut::new();
        transport::push_frame(&mut batch, RAW_MAX, |b| {
            b.extend_from_slice(frame);
            Ok(())
        })
        .expect("frame");
        // The peer may already have closed: a failed send shows in `ending`.
        let _ = self.w.send_batch(&mut batch).await;
    }

    /// The next frame (`None` at the end of the connection).
    pub async fn recv(&mut self) -> Option<BytesMut> {
        guard("a frame or the end", self.r.recv())
            .await
            .ok()
            .flatten()
    }

    /// Reads until the peer ends the connection.
    pub async fn ending(&mut self) -> Ending {
        let mut frames = Vec::new();
        loop {
            match guard("the end of the connection", self.r.recv()).await {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => {
                    return Ending {
                        frames,
                        error: None,
                    }
                }
                Err(e) => {
                    return Ending {
                        frames,
                        error: Some(e.to_string()),
                    }
                }
            }
        }
    }

    /// Runs the Noise XX handshake as the initiator with `keys`, telling
    /// the responder `payload`. Returns the result and the two frames sent
    /// (frame 1, frame 3), for replaying.
    pub async fn handshake(&mut self, keys: &KeyPair, payload: &[u8]) -> (Completed, [Vec<u8>; 2]) {
        let (init, f1) = Initiator::start(keys.secret_bytes()).expect("start");
        self.send(&f1).await;
        let f2 = self.recv().await.expect("handshake frame 2");
        let (f3, done) = init.finish(&f2, payload).expect("finish");
        self.send(&f3).await;
        (done, [f1, f3])
    }
}

/// One side's sealed session on a connection after a manual handshake: it
/// seals requests with the handshake's send key (one sender session) and
/// opens replies with its receive key, bound to the request session's salt
/// (as `channel/connection.rs` does).
pub struct Session {
    sealer: Sealer,
    opener: Opener,
    next_id: u64,
}

impl Session {
    pub fn new(done: &Completed) -> Session {
        let salt = sealrpc::channel::random_token();
        let recv = Arc::new(Keyring::single(Key::from_bytes(*done.recv_key)));
        let registry = Arc::new(SessionRegistry::new(TTL_MS, 64));
        let mut opener = Opener::new(recv, registry, Kind::Reply, TTL_MS, RAW_MAX);
        opener.bind(salt);
        opener.also_accept(Kind::Publish);
        Session {
            sealer: Sealer::new(Key::from_bytes(*done.send_key), salt),
            opener,
            next_id: 1,
        }
    }

    /// A sealed request frame calling `method` with `body`.
    pub fn request(&mut self, method: &str, body: &[u8]) -> Vec<u8> {
        seal_request(&mut self.sealer, self.next_id, method, body)
            .inspect(|_| self.next_id += 1)
            .expect("seal")
    }

    /// Opens a reply: `(id, status, body)`.
    pub fn open_reply(&mut self, frame: &[u8]) -> Result<(u64, u8, Vec<u8>), WireError> {
        let mut f = frame.to_vec();
        let opened = self.opener.open(&mut f, unix_ms())?;
        let r: ReplyLoad = load::decode(&f[opened.load])?;
        Ok((r.id, r.status, r.body.to_vec()))
    }
}

/// A request envelope sealed by `sealer`.
pub fn seal_request(
    sealer: &mut Sealer,
    id: u64,
    method: &str,
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    let req = RequestLoad {
        retry: &[],
        id,
        method,
        body,
        deadline_ms: 10_000,
        trace: Carrier::default(),
    };
    let mut out = BytesMut::new();
    sealer.seal(Kind::Request, unix_ms(), RAW_MAX, &mut out, |b| {
        load::encode(&req, b)
    })?;
    Ok(out.to_vec())
}

//! Loop mode: a minimal hand-written sealed echo, the floor the channel is
//! measured against. The raw mode's loop (one connection, batched writes,
//! a reader task) with each frame sealed and opened by the same
//! [`Sealer`]/[`Opener`] and MessagePack loads the channel uses, and none
//! of the channel's machinery: no call tasks, ids matched by order, no
//! deadlines, no handler router, no spawned handlers.
use super::raw::Codec;
use crate::channel::ChannelConfig;
use crate::error::{Error, WireError};
use crate::keys::Key;
use crate::transport::DEFAULT_MAX_FRAME;
use crate::wire::envelope::unix_ms;
use crate::wire::load::{self, Carrier, ReplyLoad, RequestLoad};
use crate::wire::{Kind, Opener, Sealer, SessionRegistry};
use bytes::BytesMut;
use std::sync::Arc;

const METHOD: &str = "bench.echo";

/// One side of the connection: its sending session and its opener.
pub(crate) struct Side {
    sealer: Sealer,
    opener: Opener,
    next_id: u64,
    bound: bool,
}

/// A client side and a server side sharing one fresh key.
pub(crate) fn pair() -> (Side, Side) {
    let cfg = ChannelConfig::new(Key::generate());
    let side = |expect| {
        let registry = Arc::new(SessionRegistry::new(cfg.ttl_ms(), 64));
        let salt: [u8; 16] = rand::random();
        Side {
            sealer: Sealer::new(cfg.key.clone(), salt),
            opener: Opener::new(
                cfg.keyring.clone(),
                registry,
                expect,
                cfg.ttl_ms(),
                DEFAULT_MAX_FRAME,
            ),
            next_id: 1,
            bound: false,
        }
    };
    let mut client = side(Kind::Reply);
    // Replies are bound to the client's session, as on a channel.
    client.opener.bind(client.sealer.salt());
    (client, side(Kind::Request))
}

impl Codec for Side {
    fn request(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        let req = RequestLoad {
            retry: &[],
            id: self.next_id,
            method: METHOD,
            body: payload,
            deadline_ms: 0,
            trace: Carrier(Vec::new()),
        };
        self.next_id += 1;
        seal(&mut self.sealer, Kind::Request, out, |b| {
            load::encode(&req, b)
        })
    }

    fn reply(&mut self, frame: &mut BytesMut) -> Result<usize, Error> {
        let opened = self.opener.open(frame, unix_ms())?;
        let reply: ReplyLoad = load::decode(&frame[opened.load])?;
        Ok(reply.body.len())
    }

    fn echo(&mut self, frame: &mut BytesMut, out: &mut BytesMut) -> Result<(), Error> {
        let opened = self.opener.open(frame, unix_ms())?;
        if !self.bound {
            self.sealer.bind(opened.header.salt);
            self.bound = true;
        }
        let req: RequestLoad = load::decode(&frame[opened.load])?;
        let reply = ReplyLoad {
            id: req.id,
            status: 0,
            body: req.body,
        };
        seal(&mut self.sealer, Kind::Reply, out, |b| {
            load::encode(&reply, b)
        })
    }
}

fn seal(
    sealer: &mut Sealer,
    kind: Kind,
    out: &mut BytesMut,
    write_load: impl FnOnce(&mut BytesMut) -> Result<(), WireError>,
) -> Result<(), Error> {
    Ok(sealer.seal(kind, unix_ms(), DEFAULT_MAX_FRAME, out, write_load)?)
}

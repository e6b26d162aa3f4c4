//! Jobs on ZeroMQ PUB/SUB. The master's PUB socket seals every job with its
//! own sending session under the *publish key* and, with node identities,
//! signs the sealed envelope with the master's Ed25519 key: a minion holds
//! the publish key (to read jobs) but cannot forge one, and a replayed or
//! out-of-window publish fails the envelope's sequence window.
//!
//! Message: `[topic, envelope ‖ signature (64 bytes, identity mode only)]`,
//! topic `m:<id>\0` for one minion, `*\0` for all.
use super::config::{random_salt, ChannelConfig};
use super::publish::{decode_published, Job, Published};
use crate::error::{Error, WireError};
use crate::keys::{Key, Keyring};
use crate::transport::pubsub::{self, Publisher, Subscriber};
use crate::wire::envelope::unix_ms;
use crate::wire::{load, Kind, Opener, Sealer, SessionRegistry};
use bytes::BytesMut;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey, SIGNATURE_LENGTH};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The master's ZeroMQ PUB socket and the sender session it seals with.
pub struct PubSender {
    publisher: Publisher,
    sealer: Mutex<Sealer>,
    signer: Option<SigningKey>,
    max_frame: usize,
}

impl PubSender {
    /// Binds a PUB socket on `addr` (`HOST:PORT`), sealing under `key` and,
    /// when given, signing with `signer`.
    pub async fn bind(
        addr: &str,
        key: Key,
        signer: Option<SigningKey>,
        max_frame: usize,
    ) -> Result<PubSender, Error> {
        let timeout = crate::transport::DEFAULT_HANDSHAKE_TIMEOUT;
        PubSender::bind_with(addr, key, signer, max_frame, timeout).await
    }

    /// As [`PubSender::bind`]; a subscriber whose ZMTP handshake takes
    /// longer than `handshake_timeout` is dropped.
    pub async fn bind_with(
        addr: &str,
        key: Key,
        signer: Option<SigningKey>,
        max_frame: usize,
        handshake_timeout: std::time::Duration,
    ) -> Result<PubSender, Error> {
        Ok(PubSender {
            publisher: Publisher::bind_zmq_with(addr, max_frame, handshake_timeout).await?,
            sealer: Mutex::new(Sealer::new(key, random_salt())),
            signer,
            max_frame,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.publisher.local_addr()?)
    }

    /// The key minions need to verify signatures, in identity mode.
    pub fn verifying_key(&self) -> Option<[u8; 32]> {
        self.signer.as_ref().map(|s| s.verifying_key().to_bytes())
    }

    /// Starts a new sending session under the same key (new salt, sequence
    /// 0). Done on every ZeroMQ registration: a minion that subscribes
    /// again has released the previous salt into its replay registry (it
    /// stays refused there for 2 × TTL), so it must see a fresh one.
    pub fn new_session(&self) {
        self.sealer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rekey(random_salt());
    }

    /// Starts sealing under `key` (a new session: new salt, sequence 0).
    pub fn rotate(&self, key: Key) {
        *self.sealer.lock().unwrap_or_else(|p| p.into_inner()) = Sealer::new(key, random_salt());
    }

    /// Seals (and signs) `job` for `to` (a minion id, or `*`) and publishes
    /// it on that minion's topic (or the broadcast topic).
    pub async fn send(&self, job: &Job, to: &str) -> Result<(), Error> {
        let mut frame = BytesMut::new();
        {
            let mut sealer = self.sealer.lock().unwrap_or_else(|p| p.into_inner());
            if sealer.needs_rekey() {
                sealer.rekey(random_salt());
            }
            sealer.seal(Kind::Publish, unix_ms(), self.max_frame, &mut frame, |b| {
                load::encode(&job.load(to), b)
            })?;
        }
        if let Some(signer) = &self.signer {
            let signature = signer.sign(&frame);
            frame.extend_from_slice(&signature.to_bytes());
        }
        Ok(self.publisher.publish(&topic(to), frame.freeze()).await?)
    }
}

/// The ZeroMQ topic of minion `to` (`*` = broadcast). Terminated, so one
/// id never prefix-matches another's.
pub(crate) fn topic(to: &str) -> Vec<u8> {
    match to {
        "*" => b"*\0".to_vec(),
        id => [b"m:", id.as_bytes(), b"\0"].concat(),
    }
}

/// A minion's ZeroMQ subscription to its own topic and the broadcast one.
pub struct Subscription {
    sub: Subscriber,
    opener: Opener,
    verifier: Option<VerifyingKey>,
    tracing: bool,
}

impl Subscription {
    /// Subscribes minion `id` at the PUB socket `addr`: to the broadcast
    /// topic, then to its own, so a probe received on its own topic proves
    /// both are active (see `sealrpc_zmq::ZmqSubscriber`). Jobs open under
    /// `key` and, when `master` is given, must carry its signature.
    /// `registry` is the minion's session registry, kept across reconnects
    /// (replay defence).
    pub async fn connect(
        addr: SocketAddr,
        id: &str,
        cfg: &ChannelConfig,
        key: Key,
        master: Option<[u8; 32]>,
        registry: Arc<SessionRegistry>,
    ) -> Result<Subscription, Error> {
        let verifier = match master {
            Some(bytes) => Some(
                VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| Error::Publish("the master's signing key is invalid".into()))?,
            ),
            None => None,
        };
        let own = String::from_utf8(topic(id)).map_err(|_| Error::BadAddress(id.to_owned()))?;
        let sub = Subscriber::connect_zmq(addr, &["*\0", &own], cfg.max_frame).await?;
        let opener = Opener::new(
            Arc::new(Keyring::single(key)),
            registry,
            Kind::Publish,
            cfg.ttl_ms(),
            cfg.max_frame,
        );
        Ok(Subscription {
            sub,
            opener,
            verifier,
            tracing: cfg.telemetry.is_some(),
        })
    }

    /// Opens later jobs under `key` (the master rotated the publish key).
    pub fn set_key(&mut self, key: Key) {
        self.opener
            .set_keyring(Arc::new(Keyring::single(key)), unix_ms());
    }

    /// The next authenticated job. A message that does not verify or open
    /// (a forgery, a replay, a wrong key, garbage) costs only itself and is
    /// logged; an `Err` means the subscription is gone.
    pub async fn next(&mut self) -> Result<Published, Error> {
        loop {
            let mut frame = match self.sub.recv().await {
                Ok(f) => f,
                Err(e) if pubsub::skippable(&e) => {
                    tracing::warn!("publish dropped: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(e) = self.verify(&mut frame) {
                tracing::warn!("publish refused: {e}");
                continue;
            }
            let opened = match self.opener.open(&mut frame, unix_ms()) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("publish refused: {e}");
                    continue;
                }
            };
            match decode_published(frame.freeze(), opened.load, self.tracing) {
                Ok(p) => return Ok(p),
                Err(e) => tracing::warn!("publish refused: {e}"),
            }
        }
    }

    /// Checks and strips the master's signature (identity mode).
    fn verify(&self, frame: &mut BytesMut) -> Result<(), WireError> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let body_len = frame
            .len()
            .checked_sub(SIGNATURE_LENGTH)
            .ok_or(WireError::BadSignature)?;
        let signature =
            Signature::from_slice(&frame[body_len..]).map_err(|_| WireError::BadSignature)?;
        verifier
            .verify(&frame[..body_len], &signature)
            .map_err(|_| WireError::BadSignature)?;
        frame.truncate(body_len);
        Ok(())
    }
}

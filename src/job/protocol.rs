//! The bodies (MessagePack) of the channel methods a master serves to
//! minions and publishers. They travel inside sealed envelopes like any
//! other call.
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// A minion registers: `Hello` → `Welcome`.
pub const HELLO: &str = "sealrpc.hello";
/// A ZeroMQ minion confirms its subscription: `Ready` → nil.
pub const READY: &str = "sealrpc.ready";
/// A minion returns a job's result: `Return` → nil.
pub const RETURN: &str = "sealrpc.return";
/// A publisher publishes a job and waits for the returns:
/// `PublishRequest` → `JobReport`.
pub const PUBLISH: &str = "sealrpc.publish";
/// The method of subscription probes (never a handler's).
pub const PROBE: &str = "sealrpc.probe";
/// Pushed down a ZeroMQ minion's connection: a new publish key
/// (`PublishKey`), acknowledged with `KEY_ACK`.
pub const PUBLISH_KEY: &str = "sealrpc.publish-key";
/// A ZeroMQ minion holds a publish-key epoch: `KeyAck` → nil.
pub const KEY_ACK: &str = "sealrpc.key-ack";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub id: String,
}

/// The master's answer to `Hello`. For a ZeroMQ minion: the port of the
/// master's PUB socket (same host as the master URL) and the token the
/// master will publish on the minion's topic until it answers `Ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub publish_port: Option<u16>,
    pub probe: Option<String>,
    /// Identity mode, ZeroMQ: the publish key (sent over the minion's own
    /// authenticated connection), its epoch, and the master's Ed25519 key
    /// that signs every PUB message.
    #[serde(default)]
    pub publish_key: Option<ByteBuf>,
    #[serde(default)]
    pub epoch: u32,
    #[serde(default)]
    pub signing_key: Option<ByteBuf>,
}

/// A rotated publish key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishKey {
    pub epoch: u32,
    pub key: ByteBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAck {
    pub id: String,
    pub epoch: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub id: String,
    pub token: String,
}

/// One minion's result of one job: on success the handler's reply body,
/// on failure a UTF-8 message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinionResult {
    pub ok: bool,
    pub body: ByteBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    pub jid: String,
    pub id: String,
    pub result: MinionResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    /// `*`, `id1,id2`, or a glob such as `web*`.
    pub target: String,
    pub method: String,
    pub body: ByteBuf,
    /// How long to collect returns.
    pub timeout_ms: u64,
}

/// Every targeted minion, each either in `returns` or in `missing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub jid: String,
    pub returns: BTreeMap<String, MinionResult>,
    /// Targeted minions that did not return in time (or were not connected,
    /// or could not be sent the job), sorted.
    pub missing: Vec<String>,
    /// The minions of `missing` the job never reached, and why. A minion
    /// in `missing` but not here was sent the job and did not return in
    /// time.
    #[serde(default)]
    pub undelivered: BTreeMap<String, Undelivered>,
}

/// Why a job never reached a targeted minion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Undelivered {
    /// Listed in the target, but not connected.
    NotConnected,
    /// Its connection is backed up: 1 MiB or more not yet sent, because
    /// the minion is not reading (`Error::Busy`). The job is not queued
    /// behind that, so one stalled minion never holds up the others and
    /// never grows the master's memory.
    Busy,
    /// Its connection closed.
    ConnectionClosed,
    /// Another failure, as a message.
    Failed(String),
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undelivered::NotConnected => f.write_str("not connected"),
            Undelivered::Busy => {
                f.write_str("its connection is backed up (it is not reading); the job was not sent")
            }
            Undelivered::ConnectionClosed => f.write_str("its connection closed"),
            Undelivered::Failed(m) => f.write_str(m),
        }
    }
}

impl JobReport {
    /// True when every targeted minion returned and none failed.
    pub fn all_ok(&self) -> bool {
        self.missing.is_empty() && self.returns.values().all(|r| r.ok)
    }
}

//! Jobs: what master and minions say to each other over the channel
//! (registration, probes, returns, publish requests), targets, and ids.
//! Plain data, no IO: the master and minion modules drive it.
mod protocol;
mod target;

pub use protocol::{Hello, JobReport, KeyAck, MinionResult, PublishKey, PublishRequest};
pub use protocol::{Ready, Return, Undelivered, Welcome};
pub use protocol::{HELLO, KEY_ACK, PROBE, PUBLISH, PUBLISH_KEY, READY, RETURN};
pub use target::{validate_id, Target, MAX_ID_LEN};

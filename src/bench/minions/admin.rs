//! Publishing as the admin, as `sealrpc publish --pki-dir MASTER_DIR`
//! does: the admin key pair from the master's PKI dir, the master's key
//! pinned, one `sealrpc.publish` call that ends when every return is in.
use super::keys::pinned_identity;
use crate::channel::{ChannelConfig, Client};
use crate::job::{self, JobReport, PublishRequest};
use crate::keys::Key;
use crate::pki::{KeyPair, PublicKey};
use serde_bytes::ByteBuf;
use std::time::Duration;

/// Extra time the publish call waits beyond the job's own timeout.
const CALL_MARGIN: Duration = Duration::from_secs(30);

pub(crate) struct Admin {
    client: Client,
}

impl Admin {
    /// Connects (the handshake happens here, before anything is timed).
    pub(crate) async fn connect(
        url: &str,
        keys: KeyPair,
        master: PublicKey,
        job_timeout: Duration,
    ) -> Result<Admin, crate::Error> {
        let mut cfg = ChannelConfig::new(Key::generate());
        cfg.identity = Some(pinned_identity(keys, "", master));
        cfg.timeout = job_timeout + CALL_MARGIN;
        let client = Client::connect(url, cfg).await?;
        // One round trip, so the connection is fully up before the timing.
        let _: bool = client.call_value("test.ping", &()).await?;
        Ok(Admin { client })
    }

    /// Publishes `test.ping` to `*` and waits for the master's report (it
    /// comes once every targeted minion returned, or at `timeout`).
    pub(crate) async fn ping_all(&self, timeout: Duration) -> Result<JobReport, crate::Error> {
        let request = PublishRequest {
            target: "*".to_owned(),
            method: "test.ping".to_owned(),
            body: ByteBuf::from(crate::builtin::args_body::<&str>(&[])?.to_vec()),
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        };
        self.client.call_value(job::PUBLISH, &request).await
    }
}

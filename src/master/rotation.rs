//! Cutting minions off (identity mode). When a minion's key is deleted or
//! rejected (by `sealrpc key`, in another process), the master closes its
//! connection and rotates the ZeroMQ publish key: the new key goes to every
//! remaining ZeroMQ minion down its own authenticated connection, and until
//! a minion acknowledges it, its jobs travel down that connection too.
use super::Hub;
use crate::channel::Job;
use crate::error::Error;
use crate::job::{self, PublishKey};
use crate::keys::Key;
use bytes::Bytes;
use std::time::Duration;

impl Hub {
    pub(crate) fn refresh_keys(&self) -> Result<Vec<String>, Error> {
        let Some(security) = &self.security else {
            return Ok(Vec::new());
        };
        let accepted = security.refresh()?;
        let cut = self.registry.cut(|id, key| accepted.get(id) == Some(key));
        if cut.is_empty() {
            return Ok(Vec::new());
        }
        for (id, link) in &cut {
            tracing::warn!("minion {id}: key no longer accepted; cut off");
            link.refuse();
        }
        self.rotate_publish_key();
        Ok(cut.into_iter().map(|(id, _)| id).collect())
    }

    /// A new publish key: sealed under from now on, sent to each ZeroMQ
    /// minion down its own connection.
    fn rotate_publish_key(&self) {
        let (epoch, key) = {
            let mut current = self.publish_key.lock().unwrap_or_else(|p| p.into_inner());
            current.0 = current.0.wrapping_add(1);
            current.1 = Key::generate();
            (current.0, current.1.clone())
        };
        if let Some(pubs) = &self.pub_sender {
            pubs.rotate(key.clone());
        }
        let body = PublishKey {
            epoch,
            key: serde_bytes::ByteBuf::from(key.bytes().to_vec()),
        };
        let Ok(body) = rmp_serde::to_vec(&body) else {
            return;
        };
        let job = Job::new(
            String::new(),
            job::PUBLISH_KEY.to_owned(),
            Bytes::from(body),
            Duration::ZERO,
            None,
        );
        for (id, link) in self.registry.topic_minions() {
            if let Err(e) = link.push(&job, &id) {
                tracing::warn!("publish key not sent to {id}: {e}");
            }
        }
    }

    /// The current publish-key epoch.
    pub(crate) fn epoch(&self) -> u32 {
        self.publish_key.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The current publish key and its epoch.
    pub(crate) fn current_publish_key(&self) -> (u32, Key) {
        self.publish_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

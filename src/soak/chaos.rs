//! A fault-injecting frame relay: it stands between peers and the master on
//! one transport, forwards frames, and at random cuts a connection (both
//! directions close at once) or loses one frame. The faults are counted.
use crate::error::Error;
use crate::transport::{self, AnyRecv, AnySend, Endpoint, FrameRecv, FrameSend, Listener};
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Faults the relays injected.
#[derive(Debug, Default)]
pub struct Faults {
    /// Connections cut.
    pub cuts: AtomicU64,
    /// Frames lost.
    pub drops: AtomicU64,
    /// Frames forwarded.
    pub frames: AtomicU64,
}

/// A relay in front of `upstream`, listening on a free loopback port.
pub struct Chaos {
    /// Where peers connect instead of the master.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Chaos {
    /// Starts relaying to `upstream`; each frame is lost with probability
    /// `rate / 2` and cuts its connection with probability `rate / 2`.
    pub async fn start(
        upstream: &str,
        rate: f64,
        max_frame: usize,
        faults: Arc<Faults>,
    ) -> Result<Chaos, Error> {
        let up = crate::channel::parse_url(upstream)?;
        let local = match &up {
            Endpoint::Tcp(_) => Endpoint::Tcp("127.0.0.1:0".into()),
            Endpoint::Ws { path, .. } => Endpoint::Ws {
                addr: "127.0.0.1:0".into(),
                path: path.clone(),
            },
            Endpoint::Zmq(_) => Endpoint::Zmq("127.0.0.1:0".into()),
        };
        let listener = Listener::bind(&local, max_frame).await?;
        let url = listener.local_url()?;
        // A cut or a loss each with probability rate / 2, as a threshold on
        // a uniform u64 (so the per-frame test is one comparison).
        let threshold = (rate.clamp(0.0, 1.0) / 2.0 * u64::MAX as f64) as u64;
        let task = tokio::spawn(accept_loop(listener, up, threshold, max_frame, faults));
        Ok(Chaos { url, task })
    }
}

async fn accept_loop(
    listener: Listener,
    up: Endpoint,
    threshold: u64,
    max_frame: usize,
    faults: Arc<Faults>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((r, w, _)) = accepted {
                    let (up, faults) = (up.clone(), faults.clone());
                    conns.spawn(relay(r, w, up, threshold, max_frame, faults));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn relay(
    r: AnyRecv,
    w: AnySend,
    up: Endpoint,
    threshold: u64,
    max_frame: usize,
    faults: Arc<Faults>,
) {
    let Ok((ur, uw, _)) = transport::connect(&up, max_frame).await else {
        w.close().await;
        return;
    };
    // The first direction to end (or be cut) ends both: dropping the other
    // closes its sockets.
    tokio::select! {
        _ = pump(r, uw, threshold, max_frame, &faults) => {}
        _ = pump(ur, w, threshold, max_frame, &faults) => {}
    }
}

async fn pump(mut r: AnyRecv, mut w: AnySend, threshold: u64, max_frame: usize, faults: &Faults) {
    let mut rng = Rng::new();
    let mut batch = BytesMut::new();
    while let Ok(Some(frame)) = r.recv().await {
        let roll = rng.next();
        if roll < threshold {
            faults.cuts.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if roll < threshold.saturating_mul(2) {
            faults.drops.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        faults.frames.fetch_add(1, Ordering::Relaxed);
        let pushed = transport::push_frame(&mut batch, max_frame, |b| {
            b.extend_from_slice(&frame);
            Ok(())
        });
        if pushed.is_err() || w.send_batch(&mut batch).await.is_err() {
            return;
        }
    }
    w.close().await;
}

/// xorshift64*, seeded from the OS: fault decisions, not cryptography.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng(rand::random::<u64>() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

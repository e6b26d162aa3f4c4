//! The read half: binary messages out, everything else handled here
//! (pings answered by tungstenite, keepalive, close, refusals).
use crate::shared::Shared;
use crate::{connection_error, WsError};
use bytes::{Bytes, BytesMut};
use futures::{future::poll_fn, FutureExt, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::{Error as TError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Longest keepalive period honoured (keeps the deadline arithmetic finite).
const MAX_PING_INTERVAL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Reads binary messages.
pub struct WsReader {
    shared: Arc<Shared>,
    keepalive: Option<Keepalive>,
    state: State,
}

impl std::fmt::Debug for WsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Open => "open",
            State::Closed => "closed",
            State::Failed(_) => "failed",
        };
        f.debug_struct("WsReader")
            .field(
                "ping_interval",
                &self.keepalive.as_ref().map(|k| k.interval),
            )
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

enum State {
    Open,
    Closed,
    Failed(WsError),
}

impl WsReader {
    pub(crate) fn new(shared: Arc<Shared>, ping_interval: Duration) -> WsReader {
        WsReader {
            shared,
            keepalive: (!ping_interval.is_zero())
                .then(|| Keepalive::new(ping_interval.min(MAX_PING_INTERVAL))),
            state: State::Open,
        }
    }

    /// The next binary message; `Ok(None)` once the peer has closed cleanly
    /// (close code 1000, 1001 or none). Pings are answered while this runs,
    /// and the keepalive (see the crate docs) runs inside it. Ends and errors
    /// are sticky. Cancel-safe: no message is lost if the future is dropped.
    pub async fn recv(&mut self) -> Result<Option<BytesMut>, WsError> {
        match &self.state {
            State::Open => {}
            State::Closed => return Ok(None),
            State::Failed(e) => return Err(e.again()),
        }
        let res = self.next().await;
        match &res {
            Ok(Some(_)) => {}
            Ok(None) => self.state = State::Closed,
            Err(e) => self.state = State::Failed(e.again()),
        }
        res
    }

    async fn next(&mut self) -> Result<Option<BytesMut>, WsError> {
        loop {
            let shared = &self.shared;
            let next = poll_fn(|cx| shared.with(|ws| ws.poll_next_unpin(cx)));
            let item = match &mut self.keepalive {
                None => next.await,
                Some(ka) => tokio::select! {
                    biased;
                    item = next => item,
                    due = ka.expired(|| shared.bytes_read()) => match due {
                        Due::Ping => {
                            shared.try_send_control(Message::Ping(Bytes::new()));
                            continue;
                        }
                        Due::Dead => return Err(WsError::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer did not answer the keepalive",
                        ))),
                    },
                },
            };
            let msg = match item {
                // tungstenite ended the stream: the close handshake is done.
                None => return Ok(None),
                Some(Ok(msg)) => msg,
                // We sent a close and the peer hung up without echoing it.
                Some(Err(TError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))
                    if shared.closed_by_us() =>
                {
                    return Ok(None)
                }
                Some(Err(e)) => {
                    let e = connection_error(e);
                    match e {
                        WsError::TooLarge { .. } => self.refuse(CloseCode::Size, "too large"),
                        WsError::Protocol(_) => self.refuse(CloseCode::Protocol, "protocol error"),
                        _ => {}
                    }
                    return Err(e);
                }
            };
            if let Some(ka) = &mut self.keepalive {
                ka.heard();
            }
            match msg {
                Message::Binary(b) => return Ok(Some(BytesMut::from(b))),
                // tungstenite has queued the pong; the next poll sends it.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(_) => {
                    self.refuse(CloseCode::Unsupported, "binary messages only");
                    return Err(WsError::Protocol(
                        "a text message: this transport carries binary messages only".into(),
                    ));
                }
                Message::Close(frame) => return self.on_close(frame),
            }
        }
    }

    /// The peer sent a close frame; tungstenite has queued its echo.
    fn on_close(&mut self, frame: Option<CloseFrame>) -> Result<Option<BytesMut>, WsError> {
        // One poll that does not wait: it writes the queued echo. Whatever it
        // reads is moot: tungstenite refuses data after a close.
        let shared = &self.shared;
        let _ = poll_fn(|cx| shared.with(|ws| ws.poll_next_unpin(cx))).now_or_never();
        match frame {
            None => Ok(None),
            Some(f) if matches!(f.code, CloseCode::Normal | CloseCode::Away) => Ok(None),
            Some(f) => Err(WsError::Protocol(format!(
                "the peer closed the connection with code {}",
                u16::from(f.code)
            ))),
        }
    }

    /// Ends the connection from our side after refusing what the peer sent.
    fn refuse(&self, code: CloseCode, reason: &'static str) {
        self.shared
            .try_send_control(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })));
    }
}

/// What the keepalive timer says.
#[derive(Debug, PartialEq)]
enum Due {
    Ping,
    Dead,
}

/// After one interval of silence, a Ping; another one interval later; dead
/// two intervals after the first Ping. Timed from when the first Ping is
/// actually sent, so a reader that was not polled for a while gives the
/// peer its full two intervals.
struct Keepalive {
    interval: Duration,
    /// When a message last arrived, or (checked when the timer fires) any
    /// byte: a large message still arriving is a live peer.
    heard: Instant,
    /// The socket's byte count when last checked.
    bytes: u64,
    /// When the first unanswered Ping was due, and how many were due since.
    first_ping: Option<Instant>,
    pings: u32,
    /// Armed at or before the next due time. Arrivals only update `heard`
    /// (cheap); a timer that fires early re-arms.
    timer: Pin<Box<Sleep>>,
}

impl Keepalive {
    fn new(interval: Duration) -> Keepalive {
        let now = Instant::now();
        Keepalive {
            interval,
            heard: now,
            bytes: 0,
            first_ping: None,
            pings: 0,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
        }
    }

    fn heard(&mut self) {
        self.heard = Instant::now();
        self.first_ping = None;
        self.pings = 0;
    }

    /// The next Ping (after 0 or 1 pings) or the verdict (after 2).
    fn due(&self) -> Instant {
        match self.first_ping {
            None => self.heard + self.interval,
            Some(first) => first + self.interval * self.pings,
        }
    }

    /// Waits until a Ping is due or the peer is dead. Cancel-safe: the state
    /// changes only after the timer has fired, without awaiting again.
    async fn expired(&mut self, bytes_read: impl Fn() -> u64) -> Due {
        loop {
            (&mut self.timer).await;
            let bytes = bytes_read();
            if bytes != self.bytes {
                self.bytes = bytes;
                self.heard();
            }
            let now = Instant::now();
            let due = self.due();
            if now < due {
                self.timer.as_mut().reset(due);
                continue;
            }
            if self.pings >= 2 {
                return Due::Dead;
            }
            self.first_ping.get_or_insert(now);
            self.pings += 1;
            let next = self.due();
            self.timer.as_mut().reset(next);
            return Due::Ping;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Due, Keepalive};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tokio::time::{advance, Instant};

    const I: Duration = Duration::from_millis(100);

    /// Runs `expired`: what it returned, and after how long (virtual time).
    async fn expiry(ka: &mut Keepalive, bytes: &AtomicU64) -> (Due, Duration) {
        let start = Instant::now();
        let due = ka.expired(|| bytes.load(Ordering::Relaxed)).await;
        (due, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn silence_gives_two_pings_then_the_verdict() {
        let bytes = AtomicU64::new(0);
        let mut ka = Keepalive::new(I);
        assert_eq!(expiry(&mut ka, &bytes).await.0, Due::Ping);
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Ping, I));
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Dead, I));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_first_ping_still_gets_two_intervals() {
        let bytes = AtomicU64::new(0);
        let mut ka = Keepalive::new(I);
        // recv not polled for ten intervals: the first Ping goes out now,
        // and the verdict comes two intervals after it, not at once.
        advance(10 * I).await;
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Ping, Duration::ZERO));
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Ping, I));
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Dead, I));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_heard_restarts_the_count() {
        let bytes = AtomicU64::new(0);
        let mut ka = Keepalive::new(I);
        assert_eq!(expiry(&mut ka, &bytes).await.0, Due::Ping);
        assert_eq!(expiry(&mut ka, &bytes).await.0, Due::Ping);
        advance(I / 2).await;
        ka.heard();
        let (due, waited) = expiry(&mut ka, &bytes).await;
        assert_eq!((due, waited), (Due::Ping, I), "a fresh first Ping");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_still_arriving_keep_the_peer_alive() {
        let bytes = AtomicU64::new(0);
        let mut ka = Keepalive::new(I);
        let trickle = async {
            loop {
                advance(I / 2).await;
                bytes.fetch_add(1, Ordering::Relaxed);
            }
        };
        let expired = ka.expired(|| bytes.load(Ordering::Relaxed));
        tokio::select! {
            due = expired => panic!("{due:?} while bytes were arriving"),
            () = trickle => unreachable!(),
            () = tokio::time::sleep(50 * I) => {}
        }
        // The trickle stops: pings, then the verdict, as usual.
        assert_eq!(expiry(&mut ka, &bytes).await.0, Due::Ping);
        assert_eq!(expiry(&mut ka, &bytes).await, (Due::Ping, I));
        assert_eq!(expiry(&mut ka, &bytes).await, (Due::Dead, I));
    }
}

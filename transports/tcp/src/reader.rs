//! The read half: pulls whole frames out of one read buffer, zero-copy.
use crate::{FrameError, TcpConfig, PREFIX_LEN};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;

/// The most the read buffer grows by ahead of the data.
const READ_CHUNK: usize = 64 * 1024;

/// Reads length-delimited frames from `R`: the read half of a TCP stream
/// (the default, as [`crate::connect`] and [`crate::Listener`] return it),
/// or any other [`AsyncRead`] through [`FrameReader::new`] (in-memory
/// streams in tests and the fuzz targets).
pub struct FrameReader<R = OwnedReadHalf> {
    io: R,
    buf: BytesMut,
    max_frame: usize,
}

impl FrameReader<OwnedReadHalf> {
    /// The address of the peer.
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.io.peer_addr()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `io` with `cfg`'s limit and initial buffer. The TCP
    /// constructors ([`crate::split`] and the like) call this.
    pub fn new(io: R, cfg: TcpConfig) -> FrameReader<R> {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(cfg.read_buffer),
            max_frame: cfg.max_frame,
        }
    }

    /// The next frame, `Ok(None)` on a clean end of stream. The returned
    /// buffer is split off the read buffer: no copy. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<BytesMut>, FrameError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(Some(frame));
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::UnexpectedEof)
                };
            }
        }
    }

    /// Check-then-split: the announced length is checked against the limit
    /// before the buffer is grown for it.
    fn parse(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let Some(prefix) = self.buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let have = self.buf.len() - PREFIX_LEN;
        if have < len {
            // Grow with the data actually arriving, not with the announced
            // length: an unauthenticated peer cannot make us reserve 16 MiB
            // by sending four bytes.
            self.buf.reserve((len - have).min(READ_CHUNK));
            return Ok(None);
        }
        self.buf.advance(PREFIX_LEN);
        Ok(Some(self.buf.split_to(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::FrameReader;
    use crate::{push_frame_with, FrameError, TcpConfig};
    use bytes::BytesMut;

    fn cfg(max_frame: usize) -> TcpConfig {
        TcpConfig {
            max_frame,
            read_buffer: 0,
        }
    }

    fn stream(frames: &[&[u8]]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for f in frames {
            push_frame_with(&mut buf, usize::MAX, |b: &mut BytesMut| {
                b.extend_from_slice(f);
                Ok::<(), FrameError>(())
            })
            .expect("push");
        }
        buf.to_vec()
    }

    /// The reader over a byte slice (no socket): frames, then a clean end.
    #[tokio::test]
    async fn reads_frames_from_any_async_read() {
        let bytes = stream(&[b"", b"one", &[7; 300]]);
        let mut r = FrameReader::new(&bytes[..], cfg(300));
        assert_eq!(r.recv().await.expect("recv").expect("frame"), b""[..]);
        assert_eq!(r.recv().await.expect("recv").expect("frame"), b"one"[..]);
        assert_eq!(r.recv().await.expect("recv").expect("frame"), [7; 300][..]);
        assert!(r.recv().await.expect("clean end").is_none());
    }

    /// Over the limit by one is refused from the prefix alone; a stream
    /// cut inside a frame is `UnexpectedEof`.
    #[tokio::test]
    async fn refuses_oversize_and_truncation() {
        let bytes = stream(&[&[1; 301]]);
        let mut r = FrameReader::new(&bytes[..4], cfg(300));
        assert!(matches!(
            r.recv().await,
            Err(FrameError::TooLarge { len: 301, max: 300 })
        ));
        let mut r = FrameReader::new(&bytes[..100], cfg(301));
        assert!(matches!(r.recv().await, Err(FrameError::UnexpectedEof)));
        let mut r = FrameReader::new(&bytes[..3], cfg(301));
        assert!(matches!(r.recv().await, Err(FrameError::UnexpectedEof)));
    }
}

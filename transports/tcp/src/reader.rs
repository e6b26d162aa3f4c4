//! The read half: pulls whole frames out of one read buffer, zero-copy.
use crate::{FrameError, TcpConfig, PREFIX_LEN};
use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

/// The most the read buffer grows by ahead of the data.
const READ_CHUNK: usize = 64 * 1024;

/// Reads length-delimited frames.
pub struct FrameReader {
    io: OwnedReadHalf,
    buf: BytesMut,
    max_frame: usize,
}

impl FrameReader {
    pub(crate) fn new(io: OwnedReadHalf, cfg: TcpConfig) -> FrameReader {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(cfg.read_buffer),
            max_frame: cfg.max_frame,
        }
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.io.peer_addr()
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

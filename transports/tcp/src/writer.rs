//! The write half: frames are built directly in one output buffer and
//! written with as few syscalls as the caller's batching allows.
use crate::{FrameError, TcpConfig, PREFIX_LEN};
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

/// Writes length-delimited frames.
pub struct FrameWriter {
    io: OwnedWriteHalf,
    buf: BytesMut,
    max_frame: usize,
}

impl FrameWriter {
    pub(crate) fn new(io: OwnedWriteHalf, cfg: TcpConfig) -> FrameWriter {
        FrameWriter {
            io,
            buf: BytesMut::with_capacity(cfg.read_buffer),
            max_frame: cfg.max_frame,
        }
    }

    /// The largest payload this writer sends.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends one frame whose payload `fill` writes straight into the
    /// output buffer (so a caller can encrypt in place, without a copy).
    /// If `fill` fails or the payload exceeds the limit, the buffer is
    /// restored and nothing of this frame is sent.
    pub fn push_with<E: From<FrameError>>(
        &mut self,
        fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), E> {
        push_frame_with(&mut self.buf, self.max_frame, fill)
    }

    /// Appends one frame holding `payload`.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.push_with(|b: &mut BytesMut| {
            b.extend_from_slice(payload);
            Ok::<(), FrameError>(())
        })
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything pushed so far.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        while self.buf.has_remaining() {
            let n = self.io.write(&self.buf).await?;
            if n == 0 {
                return Err(FrameError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
        }
        Ok(())
    }

    /// Pushes and flushes one frame.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.push(payload)?;
        self.flush().await
    }

    /// Writes all of `buf` (frames built with [`push_frame_with`]) and
    /// leaves it empty, keeping its capacity.
    pub async fn write_frames(&mut self, buf: &mut BytesMut) -> Result<(), FrameError> {
        self.flush().await?;
        self.io.write_all(buf).await?;
        buf.clear();
        Ok(())
    }

    /// Graceful close: flush, then shut the write side down (FIN).
    pub async fn shutdown(mut self) -> Result<(), FrameError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// Appends one frame to `buf`, its payload written in place by `fill`. If
/// `fill` fails or the payload exceeds `max_frame`, `buf` is restored and
/// the error returned. Lets a caller build frames under its own lock and
/// hand the batch to [`FrameWriter::write_frames`].
pub fn push_frame_with<E: From<FrameError>>(
    buf: &mut BytesMut,
    max_frame: usize,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let start = buf.len();
    buf.extend_from_slice(&[0; PREFIX_LEN]);
    if let Err(e) = fill(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - start - PREFIX_LEN;
    let Ok(len32) = u32::try_from(len) else {
        buf.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        }
        .into());
    };
    if len > max_frame {
        buf.truncate(start);
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        }
        .into());
    }
    buf[start..start + PREFIX_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

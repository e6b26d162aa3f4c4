//! Loads: the MessagePack (rmp-serde, array form) plaintext inside an
//! envelope. Decoding borrows strings and bodies from the decrypted buffer:
//! no body is copied.
//!
//! Request: `[id u64, method str, body bin, deadline_ms u32 (0 = none)]`, and
//! only when a recording span exists, a fifth element `trace`: an array of
//! `[name str, value str]` pairs (`traceparent`, `tracestate`); and only for
//! a call that may be retried, a sixth element `retry`: its retry key (bin,
//! 1 to 64 bytes; `trace` is then present, empty if there is no span).
//! Reply: `[id u64, status u8, body bin]`.
use crate::error::WireError;
use bytes::{BufMut, BytesMut};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Most trace-carrier pairs a load may carry.
pub const MAX_TRACE_PAIRS: usize = 16;

/// Trace carrier pairs, borrowed from the decrypted load.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Carrier<'a>(pub Vec<(&'a str, &'a str)>);

impl Carrier<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Carrier<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Carrier<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "at most {MAX_TRACE_PAIRS} [name, value] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(pair) = seq.next_element::<(&'de str, &'de str)>()? {
                    if v.len() == MAX_TRACE_PAIRS {
                        return Err(serde::de::Error::custom("too many trace pairs"));
                    }
                    v.push(pair);
                }
                Ok(Carrier(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Longest retry key accepted.
pub const MAX_RETRY_KEY: usize = 64;

/// A call.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RequestLoad<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub method: &'a str,
    #[serde(borrow, with = "serde_bytes")]
    pub body: &'a [u8],
    /// Time the caller will wait, in ms, relative (no clock-skew issue); 0 = none.
    pub deadline_ms: u32,
    #[serde(borrow, default)]
    pub trace: Carrier<'a>,
    /// The call's retry key: every attempt of one call carries the same
    /// key, and the server runs its handler once per key. Empty = the call
    /// is not retried (and the element is not sent).
    #[serde(borrow, default, with = "serde_bytes")]
    pub retry: &'a [u8],
}

impl Serialize for RequestLoad<'_> {
    /// Array form; `trace` and `retry` only when needed (see the module doc).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let len = if !self.retry.is_empty() {
            6
        } else if !self.trace.is_empty() {
            5
        } else {
            4
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&self.id)?;
        seq.serialize_element(self.method)?;
        seq.serialize_element(serde_bytes::Bytes::new(self.body))?;
        seq.serialize_element(&self.deadline_ms)?;
        if len > 4 {
            seq.serialize_element(&self.trace)?;
        }
        if len > 5 {
            seq.serialize_element(serde_bytes::Bytes::new(self.retry))?;
        }
        seq.end()
    }
}

/// A published job (master to minion), or a subscription probe (an empty
/// `jid`). `to` is the one minion it is addressed to, or `*` for all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishLoad<'a> {
    #[serde(borrow)]
    pub jid: &'a str,
    #[serde(borrow)]
    pub to: &'a str,
    #[serde(borrow)]
    pub method: &'a str,
    #[serde(borrow, with = "serde_bytes")]
    pub body: &'a [u8],
    /// How long the master waits for returns, in ms; 0 = none.
    pub deadline_ms: u32,
    #[serde(borrow, default, skip_serializing_if = "Carrier::is_empty")]
    pub trace: Carrier<'a>,
}

/// How a call ended, as told by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReplyStatus {
    Ok = 0,
    /// The handler failed; the body is a UTF-8 message.
    Error = 1,
    NoSuchMethod = 2,
    DeadlineExceeded = 3,
    /// The caller may not call this method (an ACL); the body is a UTF-8 message.
    PermissionDenied = 4,
    /// The server is at a limit and did not run the handler; the body is a
    /// UTF-8 message. Retrying later is safe.
    Overloaded = 5,
}

impl ReplyStatus {
    /// Parses a status byte.
    pub fn from_u8(b: u8) -> Result<ReplyStatus, WireError> {
        Ok(match b {
            0 => ReplyStatus::Ok,
            1 => ReplyStatus::Error,
            2 => ReplyStatus::NoSuchMethod,
            3 => ReplyStatus::DeadlineExceeded,
            4 => ReplyStatus::PermissionDenied,
            5 => ReplyStatus::Overloaded,
            _ => return Err(WireError::BadLoad("unknown reply status")),
        })
    }
}

/// The answer to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyLoad<'a> {
    pub id: u64,
    pub status: u8,
    #[serde(borrow, with = "serde_bytes")]
    pub body: &'a [u8],
}

/// Appends the MessagePack encoding of `load` to `out`.
pub fn encode<T: Serialize>(load: &T, out: &mut BytesMut) -> Result<(), WireError> {
    rmp_serde::encode::write(&mut out.writer(), load)
        .map_err(|_| WireError::BadLoad("the load could not be encoded"))
}

/// Decodes a load from `buf`, borrowing from it. Trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(buf: &'a [u8]) -> Result<T, WireError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(buf);
    de.set_max_depth(16);
    let v = T::deserialize(&mut de).map_err(|e| WireError::BadLoad(reason(&e)))?;
    // rmp-serde exposes no "remaining" on a borrowing reader: reading one
    // more value must hit end-of-input, or there were trailing bytes.
    match serde::de::IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(v)
        }
        _ => Err(WireError::BadLoad("trailing bytes after the load")),
    }
}

/// A fixed description of a decode failure (never the decoder's message,
/// which may quote the input).
fn reason(e: &rmp_serde::decode::Error) -> &'static str {
    use rmp_serde::decode::Error as E;
    match e {
        E::InvalidMarkerRead(_) | E::InvalidDataRead(_) => "truncated MessagePack",
        E::TypeMismatch(_) => "a field has the wrong MessagePack type",
        E::OutOfRange => "an integer is out of range",
        E::LengthMismatch(_) => "an array has the wrong number of fields",
        E::Utf8Error(_) => "a string is not UTF-8",
        E::DepthLimitExceeded => "nested too deeply",
        _ => "not a valid load",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_without_trace_has_four_elements_and_round_trips() {
        let load = RequestLoad {
            retry: &[],
            id: 7,
            method: "m",
            body: b"xy",
            deadline_ms: 5,
            trace: Carrier::default(),
        };
        let mut out = BytesMut::new();
        encode(&load, &mut out).expect("encode");
        assert_eq!(out[0], 0x94, "fixarray of 4");
        assert_eq!(decode::<RequestLoad>(&out).expect("decode"), load);
    }

    #[test]
    fn request_with_trace_round_trips() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let load = RequestLoad {
            retry: &[],
            id: u64::MAX,
            method: "test.echo",
            body: &[0xc0],
            deadline_ms: 0,
            trace: Carrier(vec![("traceparent", tp)]),
        };
        let mut out = BytesMut::new();
        encode(&load, &mut out).expect("encode");
        assert_eq!(out[0], 0x95);
        assert_eq!(decode::<RequestLoad>(&out).expect("decode"), load);
    }

    #[test]
    fn request_with_a_retry_key_has_six_elements_and_round_trips() {
        let load = RequestLoad {
            retry: &[7; 24],
            id: 3,
            method: "m",
            body: b"",
            deadline_ms: 100,
            trace: Carrier::default(),
        };
        let mut out = BytesMut::new();
        encode(&load, &mut out).expect("encode");
        assert_eq!(out[0], 0x96, "fixarray of 6");
        // The empty trace is present (an empty array) before the key.
        assert_eq!(out[out.len() - 27], 0x90);
        assert_eq!(decode::<RequestLoad>(&out).expect("decode"), load);
    }

    #[test]
    fn trailing_bytes_and_garbage_are_typed_errors() {
        let mut out = BytesMut::new();
        encode(
            &ReplyLoad {
                id: 1,
                status: 0,
                body: b"",
            },
            &mut out,
        )
        .expect("encode");
        out.extend_from_slice(b"x");
        assert!(matches!(
            decode::<ReplyLoad>(&out),
            Err(WireError::BadLoad(_))
        ));
        for junk in [&b""[..], b"\xff", b"\x93\x01", b"\xdd\xff\xff\xff\xff"] {
            assert!(matches!(
                decode::<RequestLoad>(junk),
                Err(WireError::BadLoad(_))
            ));
        }
    }

    /// Regression: a decoder message quoting a multi-byte string used to be
    /// cut inside a character (a panic). Errors now carry fixed phrases.
    #[test]
    fn errors_never_quote_the_input() {
        let mut out = BytesMut::new();
        let evil = format!("a{}", "€".repeat(100));
        let fields: (u64, &str, &serde_bytes::Bytes, u32, &str) =
            (1, "m", serde_bytes::Bytes::new(b""), 0, &evil);
        encode(&fields, &mut out).expect("encode");
        match decode::<RequestLoad>(&out) {
            Err(WireError::BadLoad(reason)) => assert!(!reason.contains('€')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_many_trace_pairs_refused() {
        let pairs: Vec<(&str, &str)> = (0..MAX_TRACE_PAIRS + 1).map(|_| ("a", "b")).collect();
        let load = RequestLoad {
            retry: &[],
            id: 1,
            method: "m",
            body: b"",
            deadline_ms: 0,
            trace: Carrier(pairs),
        };
        let mut out = BytesMut::new();
        encode(&load, &mut out).expect("encode");
        assert!(matches!(
            decode::<RequestLoad>(&out),
            Err(WireError::BadLoad(_))
        ));
    }
}

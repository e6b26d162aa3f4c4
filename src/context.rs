//! W3C Trace Context (`traceparent` / `tracestate`) over a sealrpc *carrier*:
//! the ordered `(name, value)` string pairs carried inside the sealed load.
//! Pure std, no OpenTelemetry types.
//!
//! Conformance is checked against the W3C suite (`w3c/trace-context`
//! `test/test.py` at `acab820`, strict level 2) by `tests/w3c_context.rs`.
//! Where that suite is newer than the Level 1/2 ABNF, the suite (and the
//! current spec text it matches) wins:
//! - tracestate keys use `key = (lcalpha / DIGIT) 0*255 keychar` where
//!   `keychar` includes `@`; there is no tenant/system split any more
//!   (cases `test_tracestate_key_illegal_vendor_format`: `foo@`, `foo@@bar`,
//!   `foo@bar@baz` valid, `@foo` invalid; `test_tracestate_key_length_limit`:
//!   `t{242}@v` and `t@v{15}` valid, a 257-byte key invalid).
//! - duplicated tracestate keys do not discard the header; the first
//!   (left-most) entry is kept (`test_tracestate_duplicated_keys`).
//!
//! Hostile input never panics, costs O(input) and error messages never echo
//! input (only static field names and small numbers).

use std::fmt;

/// Carrier name of the trace parent (matched ASCII case-insensitively).
pub const TRACEPARENT: &str = "traceparent";
/// Carrier name of the trace state (matched ASCII case-insensitively).
pub const TRACESTATE: &str = "tracestate";
/// Longest traceparent value examined; longer is [`ContextError::TooLong`].
pub const MAX_TRACEPARENT_LEN: usize = 512;
/// Longest combined tracestate (values joined by `,`); longer is discarded.
pub const MAX_TRACESTATE_LEN: usize = 8192;
/// Most tracestate list members; more discards the whole tracestate.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// `trace-flags` bit: the caller may have recorded the trace.
pub const FLAG_SAMPLED: u8 = 0x01;
/// `trace-flags` bit (Level 2): the right-most 7 trace-id bytes are random.
pub const FLAG_RANDOM: u8 = 0x02;
const V00_LEN: usize = 55;
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a traceparent or tracestate was rejected. Messages are short and
/// never contain the offending input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// More than one traceparent in one carrier.
    #[error("more than one traceparent in the carrier")]
    Duplicated,
    /// Input exceeds the examined-length cap.
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    /// Version 00 must be exactly 55 bytes, later versions at least 55.
    #[error("traceparent is {len} bytes long; version 00 needs 55, later versions at least 55")]
    BadLength { len: usize },
    /// The value does not start with two lowercase hex digits and `-`.
    #[error("traceparent version is not two lowercase hex digits followed by '-'")]
    BadVersion,
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// A `-` separator is missing at the given byte offset.
    #[error("traceparent has no '-' at byte {position}")]
    BadDelimiter { position: usize },
    /// `trace-id` or `parent-id` is not lowercase hex.
    #[error("traceparent {field} is not lowercase hex")]
    BadHex { field: &'static str },
    /// `trace-id` is all zeros.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// `parent-id` is all zeros.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
    /// `trace-flags` is not two lowercase hex digits.
    #[error("traceparent trace-flags is not two lowercase hex digits")]
    BadFlags,
    /// More than [`MAX_TRACESTATE_MEMBERS`] list members.
    #[error("tracestate has more than {MAX_TRACESTATE_MEMBERS} members")]
    TraceStateTooManyMembers,
    /// Member number `index` (1-based, non-empty members) is not `key=value`.
    #[error("tracestate member {index} is not key=value")]
    TraceStateBadMember { index: usize },
    /// Member number `index` has an invalid key.
    #[error("tracestate member {index} has an invalid key")]
    TraceStateBadKey { index: usize },
    /// Member number `index` has an invalid value.
    #[error("tracestate member {index} has an invalid value")]
    TraceStateBadValue { index: usize },
    /// Member number `index` repeats an earlier key (only from [`TraceState::from_pairs`]).
    #[error("tracestate member {index} repeats an earlier key")]
    TraceStateDuplicateKey { index: usize },
}

/// 16-byte trace id; `Display`/`LowerHex` print 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// 8-byte span (parent) id; `Display`/`LowerHex` print 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_display {
    ($t:ty) => {
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(self, f)
            }
        }
    };
}
hex_display!(TraceId);
hex_display!(SpanId);

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id (never all zeros when parsed).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeros when parsed).
    pub parent_id: SpanId,
    /// `trace-flags`; see [`FLAG_SAMPLED`], [`FLAG_RANDOM`].
    pub flags: u8,
}

impl TraceParent {
    /// Parses a traceparent value. Surrounding spaces/tabs are ignored (W3C
    /// `test_traceparent_ows_handling`). Versions above 00 are parsed as 00
    /// for the first 55 bytes, which may only be followed by `-` and more;
    /// their unknown flag bits are cleared.
    pub fn parse(s: &str) -> Result<TraceParent, ContextError> {
        use ContextError::*;
        if s.len() > MAX_TRACEPARENT_LEN {
            return Err(TooLong {
                what: TRACEPARENT,
                max: MAX_TRACEPARENT_LEN,
            });
        }
        let b = s.trim_matches(is_ows).as_bytes();
        let version = match b {
            [v0, v1, b'-', ..] => decode_hex::<1>(&[*v0, *v1]).ok_or(BadVersion)?[0],
            _ => return Err(BadVersion),
        };
        if version == 0xff {
            return Err(ForbiddenVersion);
        }
        if b.len() < V00_LEN || (version == 0 && b.len() != V00_LEN) {
            return Err(BadLength { len: b.len() });
        }
        for position in [35, 52, V00_LEN] {
            if position < b.len() && b.get(position) != Some(&b'-') {
                return Err(BadDelimiter { position });
            }
        }
        let trace_id = b.get(3..35).and_then(decode_hex::<16>);
        let trace_id = TraceId(trace_id.ok_or(BadHex { field: "trace-id" })?);
        let parent_id = b.get(36..52).and_then(decode_hex::<8>);
        let parent_id = SpanId(parent_id.ok_or(BadHex { field: "parent-id" })?);
        let [mut flags] = b.get(53..55).and_then(decode_hex::<1>).ok_or(BadFlags)?;
        if version != 0 {
            flags &= FLAG_SAMPLED | FLAG_RANDOM; // "set unknown trace-flags to 0"
        }
        if trace_id.0 == [0; 16] {
            return Err(ZeroTraceId);
        }
        if parent_id.0 == [0; 8] {
            return Err(ZeroParentId);
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Formats as a version-00 header value (55 bytes).
    pub fn to_header(&self) -> String {
        self.header().as_str().to_owned()
    }

    /// Appends the version-00 header value to `out`.
    pub fn write_header(&self, out: &mut String) {
        out.push_str(self.header().as_str());
    }

    /// The version-00 header value, formatted on the stack.
    pub fn header(&self) -> HeaderValue {
        let mut out = [b'-'; V00_LEN];
        out[..2].copy_from_slice(b"00");
        hex_into(&mut out[3..35], &self.trace_id.0);
        hex_into(&mut out[36..52], &self.parent_id.0);
        hex_into(&mut out[53..], &[self.flags]);
        HeaderValue(out)
    }
}

/// A version-00 `traceparent` value (55 ASCII bytes), made by
/// [`TraceParent::header`] without allocating.
#[derive(Clone, Copy)]
pub struct HeaderValue([u8; V00_LEN]);

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HeaderValue {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `a`-`f` and `-` are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header().as_str())
    }
}

/// An ordered, validated `tracestate` list (left-most = most recent).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Parses one or more tracestate values as if joined by `,` (how W3C
    /// combines repeated headers). Empty/whitespace-only members are skipped;
    /// any invalid member, more than [`MAX_TRACESTATE_MEMBERS`] members or a
    /// combined length over [`MAX_TRACESTATE_LEN`] rejects the whole list.
    /// A repeated key keeps its first entry (see the module docs).
    pub fn parse_members<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<TraceState, ContextError> {
        let mut members: Vec<(String, String)> = Vec::new();
        let (mut total, mut index) = (0usize, 0usize);
        for (n, value) in values.into_iter().enumerate() {
            total = total
                .saturating_add(value.len())
                .saturating_add(usize::from(n > 0));
            if total > MAX_TRACESTATE_LEN {
                return Err(ContextError::TooLong {
                    what: TRACESTATE,
                    max: MAX_TRACESTATE_LEN,
                });
            }
            for member in value.split(',').map(|m| m.trim_matches(is_ows)) {
                if member.is_empty() {
                    continue;
                }
                index += 1;
                let (key, value) = check_member(index, member.split_once('='))?;
                if !members.iter().any(|(k, _)| k == key) {
                    members.push((key.to_owned(), value.to_owned()));
                }
            }
        }
        Ok(TraceState { members })
    }

    /// Builds a state from locally produced pairs, left-most first. Unlike
    /// parsing, a repeated key is an error: senders MUST NOT produce them.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TraceState, ContextError> {
        let mut members: Vec<(String, String)> = Vec::new();
        for (n, (key, value)) in pairs.into_iter().enumerate() {
            let index = n + 1;
            let (key, value) = check_member(index, Some((key.as_ref(), value.as_ref())))?;
            if members.iter().any(|(k, _)| k == key) {
                return Err(ContextError::TraceStateDuplicateKey { index });
            }
            members.push((key.to_owned(), value.to_owned()));
        }
        Ok(TraceState { members })
    }

    /// The value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in order, left-most first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Formats as `k1=v1,k2=v2` (empty string when empty).
    pub fn to_header(&self) -> String {
        let mut out = String::new();
        for (n, (k, v)) in self.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// A valid remote parent and the tracestate that came with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteContext {
    /// The caller's traceparent.
    pub parent: TraceParent,
    /// The caller's tracestate; empty if absent or discarded as invalid.
    pub state: TraceState,
}

/// Result of [`extract`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    /// No traceparent was sent: start a new trace.
    None,
    /// A traceparent was sent but is invalid or duplicated: the caller MUST
    /// start a fresh trace (and may log the reason). Tracestate is ignored.
    Invalid(ContextError),
    /// A valid traceparent (with its possibly empty tracestate).
    Valid(RemoteContext),
}

/// Reads trace context from a carrier. Names match ASCII case-insensitively;
/// a tracestate that fails to parse is discarded but keeps the traceparent.
pub fn extract<N: AsRef<str>, V: AsRef<str>>(carrier: &[(N, V)]) -> Extracted {
    let named = |name: &'static str| {
        carrier
            .iter()
            .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    };
    let mut parents = named(TRACEPARENT);
    let parent = match (parents.next(), parents.next()) {
        (None, _) => return Extracted::None,
        (Some(_), Some(_)) => return Extracted::Invalid(ContextError::Duplicated),
        (Some(value), None) => match TraceParent::parse(value) {
            Ok(parent) => parent,
            Err(e) => return Extracted::Invalid(e),
        },
    };
    let state = TraceState::parse_members(named(TRACESTATE)).unwrap_or_default();
    Extracted::Valid(RemoteContext { parent, state })
}

/// Writes trace context into a carrier: removes any existing traceparent /
/// tracestate entries (so the receiver never sees duplicates), then pushes
/// `traceparent` and, only when `state` is non-empty, `tracestate`.
pub fn inject(parent: &TraceParent, state: &TraceState, carrier: &mut Vec<(String, String)>) {
    carrier.retain(|(n, _)| {
        !n.eq_ignore_ascii_case(TRACEPARENT) && !n.eq_ignore_ascii_case(TRACESTATE)
    });
    carrier.push((TRACEPARENT.to_owned(), parent.to_header()));
    if !state.is_empty() {
        carrier.push((TRACESTATE.to_owned(), state.to_header()));
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn check_member<'a>(
    index: usize,
    pair: Option<(&'a str, &'a str)>,
) -> Result<(&'a str, &'a str), ContextError> {
    if index > MAX_TRACESTATE_MEMBERS {
        return Err(ContextError::TraceStateTooManyMembers);
    }
    let (key, value) = pair.ok_or(ContextError::TraceStateBadMember { index })?;
    let kb = key.as_bytes();
    let key_ok = kb.len() <= MAX_KEY_LEN
        && kb
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && kb.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        });
    if !key_ok {
        return Err(ContextError::TraceStateBadKey { index });
    }
    let vb = value.as_bytes();
    let value_ok = (1..=MAX_VALUE_LEN).contains(&vb.len())
        && vb.last() != Some(&b' ')
        && vb
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=');
    if !value_ok {
        return Err(ContextError::TraceStateBadValue { index });
    }
    Ok((key, value))
}

/// Each byte's value as a lowercase hex digit; 0xff where it is none
/// (W3C forbids uppercase in traceparent).
const UNHEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[HEX[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn decode_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut bad = 0;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (UNHEX[usize::from(pair[0])], UNHEX[usize::from(pair[1])]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad <= 0x0f).then_some(out)
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trip_to_header_and_parse() {
        let parent = TraceParent::parse(TP).unwrap();
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(format!("{:x}", parent.parent_id), "00f067aa0ba902b7");
        assert!(parent.sampled());
        assert_eq!(parent.to_header(), TP);
        for flags in [0x00, 0x01, 0x02, 0x03, 0xff] {
            let p = TraceParent {
                trace_id: TraceId([0xab; 16]),
                parent_id: SpanId([7; 8]),
                flags,
            };
            let mut out = String::from("x");
            p.write_header(&mut out);
            assert_eq!(out.len(), 1 + V00_LEN);
            assert_eq!(TraceParent::parse(&out[1..]), Ok(p));
        }
        let state =
            TraceState::from_pairs([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
                .unwrap();
        let mut carrier = vec![("TraceParent".to_owned(), "stale".to_owned())];
        inject(&parent, &state, &mut carrier);
        assert_eq!(carrier.len(), 2);
        assert_eq!(
            extract(&carrier),
            Extracted::Valid(RemoteContext { parent, state })
        );
    }

    #[test]
    fn future_version_with_extra_fields() {
        let p =
            TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what-next")
                .unwrap();
        assert_eq!(
            p.flags,
            FLAG_SAMPLED | FLAG_RANDOM,
            "unknown flags cleared for a future version"
        );
        assert_eq!(
            p.to_header(),
            TP.replace("-01", "-03"),
            "re-emitted as version 00"
        );
        assert!(TraceParent::parse(&TP.replace("00-", "cc-")).is_ok());
        let bad = format!("{}.next", TP.replace("00-", "cc-"));
        assert_eq!(
            TraceParent::parse(&bad),
            Err(ContextError::BadDelimiter { position: 55 })
        );
        assert_eq!(
            TraceParent::parse(&format!("{TP}-next")),
            Err(ContextError::BadLength { len: 60 })
        );
        assert_eq!(
            TraceParent::parse(&TP.replace("00-", "ff-")),
            Err(ContextError::ForbiddenVersion)
        );
        assert_eq!(
            TraceParent::parse("cc-4bf9"),
            Err(ContextError::BadLength { len: 7 })
        );
    }

    #[test]
    fn uppercase_hex_rejected() {
        let upper = |from: &str, to: &str| TraceParent::parse(&TP.replacen(from, to, 1));
        assert_eq!(
            upper("4bf9", "4BF9"),
            Err(ContextError::BadHex { field: "trace-id" })
        );
        assert_eq!(
            upper("00f067aa", "00F067AA"),
            Err(ContextError::BadHex { field: "parent-id" })
        );
        assert_eq!(
            TraceParent::parse(&TP.replace("-01", "-0A")),
            Err(ContextError::BadFlags)
        );
        assert_eq!(upper("00-", "0A-"), Err(ContextError::BadVersion));
        assert!(TraceState::parse_members(["FOO=1"]).is_err());
    }

    #[test]
    fn error_messages_bounded_for_hostile_megabyte() {
        let huge = "\u{e9}A=,-".repeat(200_000); // ~1 MB, multi-byte UTF-8 included
        let mut errors = vec![TraceParent::parse(&huge).unwrap_err()];
        errors.push(TraceState::parse_members([huge.as_str()]).unwrap_err());
        for cut in 0..MAX_TRACEPARENT_LEN {
            let s = huge.get(..cut).unwrap_or("");
            errors.extend(TraceParent::parse(s).err());
            errors.extend(TraceState::parse_members([s]).err());
        }
        let carrier = [(TRACEPARENT, TP), (TRACESTATE, huge.as_str())];
        assert!(matches!(extract(&carrier), Extracted::Valid(rc) if rc.state.is_empty()));
        let carrier = [(TRACEPARENT, huge.as_str())];
        assert_eq!(
            extract(&carrier),
            Extracted::Invalid(ContextError::TooLong {
                what: TRACEPARENT,
                max: 512
            })
        );
        for e in errors {
            let msg = e.to_string();
            assert!(
                msg.len() < 100 && !msg.contains('\u{e9}') && !msg.contains("A="),
                "{msg}"
            );
        }
    }

    #[test]
    fn tracestate_with_33_members_discarded() {
        let members: Vec<String> = (1..=33).map(|i| format!("k{i}=v{i}")).collect();
        let all = members.join(",");
        assert_eq!(
            TraceState::parse_members([all.as_str()]),
            Err(ContextError::TraceStateTooManyMembers)
        );
        let carrier = [(TRACEPARENT, TP), (TRACESTATE, all.as_str())];
        assert!(matches!(extract(&carrier), Extracted::Valid(rc) if rc.state.is_empty()));
        let first32 = members[..32].join(" , ,");
        assert_eq!(
            TraceState::parse_members([first32.as_str()]).map(|s| s.len()),
            Ok(32)
        );
    }

    #[test]
    fn tracestate_duplicates() {
        let s = TraceState::parse_members(["foo=1,bar=2", "foo=3"]).unwrap();
        assert_eq!(s.to_header(), "foo=1,bar=2");
        let dup = TraceState::from_pairs([("a", "1"), ("a", "2")]);
        assert_eq!(dup, Err(ContextError::TraceStateDuplicateKey { index: 2 }));
        assert!(TraceState::from_pairs([("a", "x ")]).is_err());
        assert!(TraceState::from_pairs([("@a", "x")]).is_err());
    }

    #[test]
    fn never_panics_on_noise() {
        const ALPHABET: [&str; 12] = [
            "0", "a", "f", "c", "-", " ", "\t", "=", ",", "@", "\u{e9}", "A",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 90) as usize;
            let s: String = (0..len)
                .map(|i| ALPHABET[((x >> (i % 60)) % 12) as usize])
                .collect();
            let _ = TraceParent::parse(&s);
            let _ = extract(&[(TRACEPARENT, s.as_str()), (TRACESTATE, s.as_str())]);
            let _ = extract(&[(TRACEPARENT, TP), (TRACESTATE, s.as_str())]);
            let mut near = TP.to_owned(); // one-character mutations of a valid value
            let pos = (x % 55) as usize;
            near.replace_range(pos..=pos, ALPHABET[((x >> 8) % 12) as usize]);
            let _ = TraceParent::parse(&near).map(|p| p.to_header());
        }
    }
}

//! Cheap hashers for tables whose keys no peer can insert: SipHash's
//! flooding resistance buys nothing there, and costs on every request.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes call ids, which a client numbers itself (1, 2, 3, …): a multiply
/// spreads them over the table, and since the keys never come from the
/// network there is nothing for a peer to collide.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// FNV-1a, for method names. A router's names are fixed by the program;
/// a peer only looks names up, and a lookup cannot make the table degrade
/// (only inserting colliding keys could).
pub(crate) struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;
pub(crate) type NameSet = std::collections::HashSet<String, BuildHasherDefault<NameHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spread_and_look_up() {
        let mut m = NameMap::default();
        for i in 0..1000 {
            m.insert(format!("method.{i}"), i);
        }
        for i in 0..1000 {
            assert_eq!(m.get(format!("method.{i}").as_str()), Some(&i));
        }
        assert_eq!(m.get("method.1000"), None);
        let h = |s: &str| {
            let mut h = NameHasher::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_ne!(h("a"), h("b"));
        assert_ne!(h("ab"), h("ba"));
    }
}

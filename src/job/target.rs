//! Publish targets (`*`, a list, a glob) and minion ids.
use crate::error::Error;

/// Longest minion id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Refuses ids that could name a path or confuse a log: only ASCII letters,
/// digits, `.`, `_` and `-`; no `..`; 1 to [`MAX_ID_LEN`] bytes.
pub fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Publish(format!(
            "invalid minion id {:?}: use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ - (no \"..\")",
            id.chars().take(MAX_ID_LEN).collect::<String>()
        )))
    }
}

/// Which minions a job is for.
#[derive(Clone, Debug)]
pub enum Target {
    /// `*`: every connected minion.
    All,
    /// `a,b,c` (or one id): exactly these; those not connected are missing.
    List(Vec<String>),
    /// A shell glob over ids (`*`, `?`, `[...]`), e.g. `web*`.
    Glob(glob::Pattern),
}

impl Target {
    /// Parses a target expression.
    pub fn parse(s: &str) -> Result<Target, Error> {
        let s = s.trim();
        if s == "*" {
            return Ok(Target::All);
        }
        if s.contains(',') || !s.contains(['*', '?', '[']) {
            let ids: Vec<String> = s.split(',').map(|i| i.trim().to_owned()).collect();
            for id in &ids {
                validate_id(id)?;
            }
            let mut ids = ids;
            ids.sort();
            ids.dedup();
            return Ok(Target::List(ids));
        }
        glob::Pattern::new(s)
            .map(Target::Glob)
            .map_err(|e| Error::Publish(format!("invalid target glob: {e}")))
    }

    /// Whether the connected minion `id` is targeted.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            Target::All => true,
            Target::List(ids) => ids.binary_search_by(|i| i.as_str().cmp(id)).is_ok(),
            Target::Glob(p) => p.matches(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["m1", "web-01.example.com", "a_b"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "x..y",
            "é",
            &"a".repeat(129),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn targets() {
        assert!(Target::parse("*").unwrap().matches("anything"));
        let list = Target::parse("m2, m1").unwrap();
        assert!(list.matches("m1") && list.matches("m2") && !list.matches("m3"));
        let glob = Target::parse("web*").unwrap();
        assert!(glob.matches("web1") && !glob.matches("db1"));
        let one = Target::parse("m1").unwrap();
        assert!(one.matches("m1") && !one.matches("m10"));
        assert!(Target::parse("a/b").is_err());
        assert!(Target::parse("m1,../x").is_err());
        assert!(Target::parse("[").is_err());
    }
}

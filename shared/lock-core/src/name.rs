//! `Name`: an immutable string kept inline when short (key names, owners), shared when long.
//!
//! A group holds millions of keys and owners, most of them short. Kept inline, a name costs
//! no heap allocation (a 15-byte key name in an `Arc<str>` costs a 48-byte heap chunk), and
//! cloning one into an effect or the expiry index is a copy. Ordering and equality compare
//! the UTF-8 bytes, which orders like `str` does.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const INLINE: usize = 22;

/// An immutable UTF-8 string, inline up to 22 bytes, reference-counted beyond.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl Name {
    /// Copies `s` into a new name.
    pub fn new(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Name(Repr::Shared(Arc::from(s)))
        }
    }

    /// The name's bytes (valid UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Inline bytes were copied from a `&str` whole, so they are valid UTF-8.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Shared(s) => s,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for the empty name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the name begins with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.as_bytes().starts_with(prefix.as_bytes())
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name::new(&s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name::new(s)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Name::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_behave_like_strings() {
        let long = "x".repeat(100);
        for s in ["", "a", "orders/00000001", "ünïcødé-ключ", &long] {
            let name = Name::new(s);
            assert_eq!(name.as_str(), s);
            assert_eq!(name.len(), s.len());
            assert_eq!(&*name, s);
        }
        assert!(matches!(
            Name::new("abcdefghijklmnopqrstuv").0,
            Repr::Inline { .. }
        ));
        assert!(matches!(
            Name::new("abcdefghijklmnopqrstuvw").0,
            Repr::Shared(_)
        ));
    }

    #[test]
    fn order_and_equality_follow_str_across_representations() {
        let long_a = format!("a{}", "z".repeat(30));
        let words = ["", "a", "ab", "b", "é", "zz", long_a.as_str(), "a\u{10000}"];
        for x in words {
            for y in words {
                assert_eq!(Name::new(x).cmp(&Name::new(y)), x.cmp(y), "{x:?} vs {y:?}");
                assert_eq!(Name::new(x) == Name::new(y), x == y);
            }
        }
        assert!(Name::new("orders/1").starts_with("orders/"));
    }
}

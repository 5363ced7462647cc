//! `BlobKey`: the only way to name an object. Parsing here is what makes path traversal
//! impossible in the local backend and keeps keys portable across S3 implementations.

use std::fmt;

/// Longest key S3 accepts (bytes of UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a string is not a valid key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty string.
    #[error("empty key")]
    Empty,
    /// Longer than [`MAX_KEY_BYTES`].
    #[error("key is {0} bytes; the limit is {MAX_KEY_BYTES}")]
    TooLong(usize),
    /// Starts with `/`.
    #[error("key {0:?} is absolute; keys are relative")]
    Absolute(String),
    /// An empty, `.` or `..` segment.
    #[error("key {0:?} has an empty, \".\" or \"..\" segment")]
    Traversal(String),
    /// A control character or a backslash.
    #[error("key {0:?} contains a control character or a backslash")]
    BadChar(String),
    /// The first segment starts with `.`: reserved for the store's temp area and probes.
    #[error("key {0:?} starts with '.', which is reserved for the store itself")]
    Reserved(String),
}

/// A validated object key: relative, `/`-separated, no empty, `.` or `..` segment, no control
/// character or backslash, at most 1024 bytes, first segment not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Parses and validates a key.
    pub fn parse(s: &str) -> Result<BlobKey, KeyError> {
        check(s)?;
        Ok(BlobKey(s.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `{prefix}/ab/cd/{sha256}.{ext}` where `ab`, `cd` are the hash's first two pairs of hex
    /// digits; `ext` is lower-cased and reduced to ASCII letters and digits (at most 16), and
    /// an empty one leaves no dot.
    ///
    /// # Panics
    /// When `prefix` is not a valid key or `sha256_hex` is not 64 lower-case hex digits: both
    /// come from code, never from users.
    pub fn content_addressed(prefix: &str, sha256_hex: &str, ext: &str) -> BlobKey {
        let prefix = prefix.trim_end_matches('/');
        assert!(
            check(prefix).is_ok(),
            "content_addressed: invalid prefix {prefix:?}"
        );
        assert!(
            is_sha256_hex(sha256_hex),
            "content_addressed: {sha256_hex:?} is not a lower-case hex SHA-256"
        );
        let ext = normalise_ext(ext);
        let dot = if ext.is_empty() { "" } else { "." };
        let key = format!(
            "{prefix}/{}/{}/{sha256_hex}{dot}{ext}",
            &sha256_hex[..2],
            &sha256_hex[2..4]
        );
        BlobKey::parse(&key).expect("a valid prefix and hex digits make a valid key")
    }

    /// The SHA-256 when this key has the [`BlobKey::content_addressed`] shape.
    pub fn content_hash(&self) -> Option<&str> {
        let mut rev = self.0.rsplit('/');
        let file = rev.next()?;
        let cd = rev.next()?;
        let ab = rev.next()?;
        rev.next()?; // a prefix is required
        let sha = file.split_once('.').map_or(file, |(stem, _)| stem);
        (is_sha256_hex(sha) && ab == &sha[..2] && cd == &sha[2..4]).then_some(sha)
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BlobKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for BlobKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlobKey::parse(s)
    }
}

/// Lower-case ASCII alphanumerics of `ext`, at most 16 (a file name's extension is user input).
pub(crate) fn normalise_ext(ext: &str) -> String {
    ext.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check(s: &str) -> Result<(), KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty);
    }
    if s.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(s.len()));
    }
    if s.starts_with('/') {
        return Err(KeyError::Absolute(s.to_owned()));
    }
    // Backslash is a separator on Windows and for some S3 gateways; never part of a name.
    if s.chars().any(|c| c.is_control() || c == '\\') {
        return Err(KeyError::BadChar(s.to_owned()));
    }
    if s.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(KeyError::Traversal(s.to_owned()));
    }
    if s.starts_with('.') {
        return Err(KeyError::Reserved(s.to_owned()));
    }
    Ok(())
}

/// Validates a listing prefix: empty, or a key prefix (a trailing `/` and a partial last
/// segment are fine, but no segment may climb out).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), KeyError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    check(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn ordinary_keys_parse_and_display_unchanged() {
        for k in [
            "a",
            "originals/ab/cd/x.flac",
            "hls/018f/seg 1+2 é.m4s",
            "a.b/c..d/e...",
        ] {
            let key = BlobKey::parse(k).unwrap();
            assert_eq!(key.as_str(), k);
            assert_eq!(key.to_string(), k);
            assert_eq!(k.parse::<BlobKey>().unwrap(), key);
        }
    }

    #[test]
    fn keys_that_climb_out_are_refused() {
        for k in [
            "..",
            "../etc/passwd",
            "a/../b",
            "a/..",
            "./a",
            "a/./b",
            "a/.",
        ] {
            assert!(
                matches!(BlobKey::parse(k), Err(KeyError::Traversal(_))),
                "{k}"
            );
        }
    }

    #[test]
    fn absolute_empty_and_doubled_slashes_are_refused() {
        assert_eq!(BlobKey::parse(""), Err(KeyError::Empty));
        assert!(matches!(
            BlobKey::parse("/etc/passwd"),
            Err(KeyError::Absolute(_))
        ));
        for k in ["a//b", "a/", "a/b/"] {
            assert!(
                matches!(BlobKey::parse(k), Err(KeyError::Traversal(_))),
                "{k}"
            );
        }
    }

    #[test]
    fn control_characters_and_backslashes_are_refused() {
        for k in [
            "a\nb", "a\0b", "a\tb", "a\u{7f}", "a\u{85}b", "..\\x", "a\\b",
        ] {
            assert!(
                matches!(BlobKey::parse(k), Err(KeyError::BadChar(_))),
                "{k:?}"
            );
        }
    }

    #[test]
    fn the_limit_is_1024_bytes_not_chars() {
        assert!(BlobKey::parse(&"a".repeat(1024)).is_ok());
        assert_eq!(
            BlobKey::parse(&"a".repeat(1025)),
            Err(KeyError::TooLong(1025))
        );
        // 512 two-byte characters are 1024 bytes; one more is over.
        assert!(BlobKey::parse(&"é".repeat(512)).is_ok());
        assert!(matches!(
            BlobKey::parse(&"é".repeat(513)),
            Err(KeyError::TooLong(1026))
        ));
    }

    #[test]
    fn the_store_s_own_dot_names_are_reserved() {
        for k in [".tmp/x", ".probe-1", ".hidden"] {
            assert!(
                matches!(BlobKey::parse(k), Err(KeyError::Reserved(_))),
                "{k}"
            );
        }
        assert!(BlobKey::parse("a/.hidden").is_ok());
    }

    #[test]
    fn content_addressed_keys_fan_out_by_the_hash() {
        let k = BlobKey::content_addressed("originals", SHA, "FLAC");
        assert_eq!(k.as_str(), format!("originals/e3/b0/{SHA}.flac"));
        assert_eq!(k.content_hash(), Some(SHA));
        let k = BlobKey::content_addressed("hls/seg/", SHA, "");
        assert_eq!(k.as_str(), format!("hls/seg/e3/b0/{SHA}"));
        assert_eq!(k.content_hash(), Some(SHA));
        let k = BlobKey::content_addressed("covers", SHA, "../J.p-g");
        assert_eq!(k.as_str(), format!("covers/e3/b0/{SHA}.jpg"));
    }

    #[test]
    fn content_hash_needs_the_whole_shape() {
        for k in [
            format!("e3/b0/{SHA}.flac"),
            format!("originals/e3/b1/{SHA}.flac"),
            "originals/e3/b0/e3b0.flac".to_owned(),
        ] {
            assert_eq!(BlobKey::parse(&k).unwrap().content_hash(), None, "{k}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid prefix")]
    fn a_climbing_prefix_is_a_programming_error() {
        let _ = BlobKey::content_addressed("../x", SHA, "mp3");
    }

    #[test]
    #[should_panic(expected = "not a lower-case hex SHA-256")]
    fn a_short_hash_is_a_programming_error() {
        let _ = BlobKey::content_addressed("originals", "abcd", "mp3");
    }

    #[test]
    fn listing_prefixes_may_end_in_a_slash_but_not_climb() {
        for p in ["", "originals", "originals/", "originals/ab", "hls/x/"] {
            assert!(check_prefix(p).is_ok(), "{p}");
        }
        for p in ["..", "../", "a/../", "/a", "a//", ".tmp/"] {
            assert!(check_prefix(p).is_err(), "{p}");
        }
    }
}

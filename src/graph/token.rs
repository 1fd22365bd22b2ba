//! Secrets: the access token, the app secret, and the [`Scrubber`] that keeps both out of every
//! message and body that leaves `graph`.
//!
//! This module owns how a secret prints (it does not) and how it is found in text that came from
//! the network, in whatever encoding the text carries it. It must not send anything, log anything
//! or decide what a message says; it only hides.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: a short string would redact ordinary words,
/// and no real token or app secret is that short (tokens run to about 200 characters, app
/// secrets to 32).
const MIN_SECRET_CHARS: usize = 8;

/// The Graph API access token. Its `Debug` and `Display` print nothing of it, and every message
/// that came from the network is scrubbed of it before it is kept, so it cannot reach a log.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(token.into().trim().to_string())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces any occurrence of the token in `text`, in any of the forms [`Scrubber`] knows.
    pub fn scrub(&self, text: &str) -> String {
        Scrubber::new([self.expose()]).scrub(text)
    }

    /// `appsecret_proof`: hex HMAC-SHA256 of the token keyed by the app secret. Graph API apps
    /// that require it refuse calls without it; it proves the caller knows the app secret.
    pub fn appsecret_proof(&self, app_secret: &str) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256>>::new_from_slice(app_secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(self.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl std::fmt::Display for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The Meta app's secret. It never travels: only the `appsecret_proof` derived from it does. A
/// type of its own so that it cannot be sent as a token by mistake, and prints nothing of itself.
#[derive(Clone)]
pub struct AppSecret(String);

impl AppSecret {
    pub fn new(secret: impl Into<String>) -> AppSecret {
        AppSecret(secret.into().trim().to_string())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The `appsecret_proof` of `token` under this secret.
    pub fn proof_for(&self, token: &AccessToken) -> String {
        token.appsecret_proof(&self.0)
    }
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSecret([redacted])")
    }
}

/// Finds secrets in text from the network and replaces them with `[redacted]`.
///
/// A server may echo a secret back in any of the encodings the request or its own JSON used, so
/// each character of a secret matches itself, its JSON escapes (`\/`, `\\`, `\"`, `\uXXXX` in
/// either hex case, surrogate pairs included), its percent-encoding (`%2F` or `%2f`, per UTF-8
/// byte) and, for a space, `+`. Works on bytes, so a body is never re-encoded: only the bytes of
/// a match change, and `[redacted]` is valid inside a JSON string.
#[derive(Clone)]
pub struct Scrubber {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Vec<Vec<char>>,
    /// Bytes a match can start with: each secret's first byte, and `\`, `%`, `+` (the start
    /// of an encoded character). Any other byte is skipped without trying the secrets.
    starts: [bool; 256],
}

impl Default for Scrubber {
    fn default() -> Scrubber {
        Scrubber::new([])
    }
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} secrets)", self.secrets.len())
    }
}

impl Scrubber {
    /// A scrubber for these secrets (tokens, app secrets, proofs). Blank and very short strings
    /// are ignored.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut list: Vec<Vec<char>> = secrets
            .into_iter()
            .map(|s| s.trim().chars().collect::<Vec<char>>())
            .filter(|s| s.len() >= MIN_SECRET_CHARS)
            .collect();
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        list.dedup();
        let mut starts = [false; 256];
        for b in [b'\\', b'%', b'+'] {
            starts[usize::from(b)] = true;
        }
        for s in &list {
            let mut buf = [0u8; 4];
            if let Some(c) = s.first() {
                starts[usize::from(c.encode_utf8(&mut buf).as_bytes()[0])] = true;
            }
        }
        Scrubber {
            secrets: list,
            starts,
        }
    }

    /// `text` with every secret replaced; borrowed when nothing matched.
    pub fn scrub_bytes<'t>(&self, text: &'t [u8]) -> Cow<'t, [u8]> {
        if self.secrets.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut i = 0;
        while i < text.len() {
            let end = if self.starts[usize::from(text[i])] {
                self.secrets.iter().find_map(|s| match_secret(text, i, s))
            } else {
                None
            };
            match end {
                Some(end) => {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
                    o.extend_from_slice(&text[copied..i]);
                    o.extend_from_slice(REDACTED.as_bytes());
                    copied = end;
                    i = end;
                }
                None => i += 1,
            }
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.extend_from_slice(&text[copied..]);
                Cow::Owned(o)
            }
        }
    }

    /// `text` with every secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        match self.scrub_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => text.to_string(),
            // Matches start and end on character boundaries, so this stays UTF-8; the lossy
            // path is there only so that no input can make it panic.
            Cow::Owned(bytes) => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// The end of a match of `secret` starting at `at`, if there is one. Tries every way each
/// character may be written (depth-first, so `%` written as `%25` is found too).
fn match_secret(text: &[u8], at: usize, secret: &[char]) -> Option<usize> {
    let Some((&c, rest)) = secret.split_first() else {
        return Some(at);
    };
    char_forms(text, at, c)
        .into_iter()
        .flatten()
        .find_map(|end| match_secret(text, end, rest))
}

/// Where each form of `c` found at `at` ends (at most four forms can match at one place).
fn char_forms(text: &[u8], at: usize, c: char) -> [Option<usize>; 4] {
    let mut ends = [None; 4];
    let mut buf = [0u8; 4];
    let raw = c.encode_utf8(&mut buf).as_bytes();
    let rest = text.get(at..).unwrap_or_default();
    if rest.starts_with(raw) {
        ends[0] = Some(at + raw.len());
    }
    if rest.first() == Some(&b'\\') {
        let short = match c {
            '/' => Some(b'/'),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            '\n' => Some(b'n'),
            '\r' => Some(b'r'),
            '\t' => Some(b't'),
            '\u{8}' => Some(b'b'),
            '\u{c}' => Some(b'f'),
            _ => None,
        };
        if short.is_some() && rest.get(1).copied() == short {
            ends[1] = Some(at + 2);
        }
        ends[2] = json_unicode_escape(rest, c).map(|n| at + n);
    }
    if rest.first() == Some(&b'%') {
        // Percent-encoding per UTF-8 byte (a multi-byte character may mix both forms).
        let mut j = 0;
        let mut any_percent = false;
        for &b in raw {
            if rest.get(j) == Some(&b'%') && hex_value(rest.get(j + 1..j + 3)) == Some(b as u32) {
                j += 3;
                any_percent = true;
            } else if rest.get(j) == Some(&b) {
                j += 1;
            } else {
                j = 0;
                break;
            }
        }
        if any_percent && j > 0 {
            ends[3] = Some(at + j);
        }
    }
    if c == ' ' && rest.first() == Some(&b'+') {
        ends[3] = Some(at + 1);
    }
    ends
}

/// The length of a `\uXXXX` (or surrogate pair) escape of `c` at the start of `text`.
fn json_unicode_escape(text: &[u8], c: char) -> Option<usize> {
    let unit = |i: usize| -> Option<u32> {
        if text.get(i) == Some(&b'\\') && text.get(i + 1) == Some(&b'u') {
            hex_value(text.get(i + 2..i + 6))
        } else {
            None
        }
    };
    let mut units = [0u16; 2];
    match c.encode_utf16(&mut units) {
        [one] => (unit(0)? == u32::from(*one)).then_some(6),
        [high, low] => (unit(0)? == u32::from(*high) && unit(6)? == u32::from(*low)).then_some(12),
        _ => None,
    }
}

/// The value of a run of hex digits (either case).
fn hex_value(digits: Option<&[u8]>) -> Option<u32> {
    let digits = digits?;
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "EAAG/leak+tok=en\"01";

    fn check(input: &str, expected: &str) {
        let s = Scrubber::new([SECRET, "app-secret-0123"]);
        assert_eq!(s.scrub(input), expected, "input: {input}");
    }

    #[test]
    fn every_encoding_of_a_secret_is_redacted() {
        check("x EAAG/leak+tok=en\"01 y", "x [redacted] y");
        // JSON: serde's escaping, the optional `\/`, `\u00XX` in both cases.
        check(r#"x EAAG\/leak+tok=en\"01 y"#, "x [redacted] y");
        check(r#"EAAG\u002fleak\u002Btok\u003den\u002201"#, "[redacted]");
        // Percent-encoding, upper and lower hex, and mixed with raw bytes.
        check("q=EAAG%2Fleak%2Btok%3Den%2201&x", "q=[redacted]&x");
        check("q=EAAG%2fleak%2btok%3den%2201", "q=[redacted]");
        check(
            "app-secret-0123 and app%2Dsecret%2D0123",
            "[redacted] and [redacted]",
        );
    }

    #[test]
    fn text_without_a_secret_is_left_alone() {
        check("EAAG/leak+tok=en", "EAAG/leak+tok=en");
        check(r#"\\u002f %zz %2"#, r#"\\u002f %zz %2"#);
        let s = Scrubber::new(["EAAGsecretTOKEN"]);
        let body = b"{\"a\": \"\xff\xfe EAAGsecretTOKEN\"}".to_vec();
        assert_eq!(
            s.scrub_bytes(&body).as_ref(),
            b"{\"a\": \"\xff\xfe [redacted]\"}",
            "invalid UTF-8 around a match is kept byte for byte"
        );
        assert!(matches!(s.scrub_bytes(b"nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_secrets_are_not_searched_for_and_the_longest_wins() {
        let s = Scrubber::new(["s", "", "secret-value", "secret-value-longer"]);
        assert_eq!(s.scrub("s secret-value-longer"), "s [redacted]");
        assert_eq!(
            format!("{:?}", AppSecret::new("secret-value")),
            "AppSecret([redacted])"
        );
    }

    #[test]
    fn a_secret_beyond_the_basic_plane_matches_its_surrogate_pair() {
        let s = Scrubber::new(["token-\u{1F600}-abc"]);
        assert_eq!(s.scrub(r"x token-\ud83d\ude00-abc"), "x [redacted]");
        assert_eq!(s.scrub("x token-%F0%9F%98%80-abc"), "x [redacted]");
    }
}

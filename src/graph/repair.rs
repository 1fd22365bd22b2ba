//! Undecodable characters in a response body, marked before the body is parsed.
//!
//! Graph (like Python's `json`) can send a caption holding a lone UTF-16 surrogate escape
//! (`"\ud83d"`, an emoji cut in half) or bytes that are not UTF-8. `serde_json` rejects either,
//! which would lose the whole body (a brand and all its media) for one character. This module
//! rewrites exactly those characters to [`UNDECODABLE`]; validation then turns the marker into
//! U+FFFD and counts the field (`Reason::InvalidUnicode`). **Pure: no IO.** It must not touch
//! anything `serde_json` would accept: valid surrogate pairs and escaped backslashes stay as
//! they are, and a body that needs nothing is returned borrowed.

use std::borrow::Cow;

use crate::validate::UNDECODABLE;

/// `body` with every invalid UTF-8 sequence and every unpaired surrogate escape replaced by
/// [`UNDECODABLE`] (as its UTF-8 bytes, or as the escape `\ufdd0` in place of an escape).
pub fn mark_undecodable(body: &[u8]) -> Cow<'_, [u8]> {
    let utf8: Cow<'_, [u8]> = match std::str::from_utf8(body) {
        Ok(_) => Cow::Borrowed(body),
        Err(_) => {
            let mut out = Vec::with_capacity(body.len() + 8);
            let mut marker = [0u8; 4];
            let marker = UNDECODABLE.encode_utf8(&mut marker).as_bytes();
            for chunk in body.utf8_chunks() {
                out.extend_from_slice(chunk.valid().as_bytes());
                if !chunk.invalid().is_empty() {
                    out.extend_from_slice(marker);
                }
            }
            Cow::Owned(out)
        }
    };
    let lone = lone_surrogate_escapes(&utf8);
    if lone.is_empty() {
        return utf8;
    }
    let escape = format!("\\u{:04x}", UNDECODABLE as u32);
    let mut out = utf8.into_owned();
    for at in lone {
        // Both are six ASCII bytes: the body keeps its length and every other byte.
        out[at..at + 6].copy_from_slice(escape.as_bytes());
    }
    Cow::Owned(out)
}

/// Offsets of the `\uXXXX` escapes that encode a surrogate without its partner. A backslash
/// always starts a two-character escape inside a JSON string, so skipping escapes in pairs
/// tells `\\ud83d` (a backslash, then text) from `\ud83d`.
fn lone_surrogate_escapes(text: &[u8]) -> Vec<usize> {
    let mut lone = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = escaped_unit(text, i) else {
            // `\"`, `\\`, `\n`…: skip the escaped character too.
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                if escaped_unit(text, i + 6).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u)) {
                    i += 12;
                } else {
                    lone.push(i);
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                lone.push(i);
                i += 6;
            }
            _ => i += 6,
        }
    }
    lone
}

/// The code unit of a `\uXXXX` escape starting at `at`.
fn escaped_unit(text: &[u8], at: usize) -> Option<u32> {
    if text.get(at) != Some(&b'\\') || text.get(at + 1) != Some(&b'u') {
        return None;
    }
    let digits = text.get(at + 2..at + 6)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: &[u8]) {
        let out = mark_undecodable(input);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expected),
            "input: {}",
            String::from_utf8_lossy(input)
        );
        if input == expected {
            assert!(
                matches!(out, Cow::Borrowed(_)),
                "untouched bodies are borrowed"
            );
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out) {
            assert!(v.is_object() || v.is_string());
        }
    }

    #[test]
    fn lone_surrogates_become_the_marker() {
        check(br#"{"c": "a\ud83d b"}"#, br#"{"c": "a\ufdd0 b"}"#);
        check(br#"{"c": "\udc00"}"#, br#"{"c": "\ufdd0"}"#);
        check(br#"{"c": "\uD83D\u0041"}"#, br#"{"c": "\ufdd0\u0041"}"#);
        check(
            br#"{"c": "\ud83d\ud83d\ude00"}"#,
            br#"{"c": "\ufdd0\ud83d\ude00"}"#,
        );
        check(br#"{"c": "end\ud83d"}"#, br#"{"c": "end\ufdd0"}"#);
        let v: serde_json::Value =
            serde_json::from_slice(&mark_undecodable(br#"{"c": "a\ud83d"}"#)).expect("parses");
        assert_eq!(v["c"], format!("a{UNDECODABLE}"));
    }

    #[test]
    fn what_serde_accepts_is_left_alone() {
        check(
            br#"{"c": "\ud83d\ude00 \uD83D\uDE00"}"#,
            br#"{"c": "\ud83d\ude00 \uD83D\uDE00"}"#,
        );
        check(
            br#"{"c": "\\ud83d \\\\udc00"}"#,
            br#"{"c": "\\ud83d \\\\udc00"}"#,
        );
        check(br#"{"c": "\"\u00e9\n"}"#, br#"{"c": "\"\u00e9\n"}"#);
        check(
            "{\"c\": \"caf\u{e9} \u{1F600}\"}".as_bytes(),
            "{\"c\": \"caf\u{e9} \u{1F600}\"}".as_bytes(),
        );
    }

    #[test]
    fn invalid_utf8_becomes_the_marker() {
        check(b"{\"c\": \"a\xffb\"}", "{\"c\": \"a\u{FDD0}b\"}".as_bytes());
        check(
            b"{\"c\": \"\xed\xa0\xbd\"}",
            "{\"c\": \"\u{FDD0}\u{FDD0}\u{FDD0}\"}".as_bytes(),
        );
    }
}

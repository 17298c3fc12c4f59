//! A form body's named fields, borrowed where they need no decoding.
//!
//! [`fields`] reads `application/x-www-form-urlencoded` exactly as
//! `serde_urlencoded` (through `form_urlencoded`) reads it into a struct of
//! string fields: pairs split on `&` (empty ones skipped), name and value on
//! the first `=`, `+` as a space, `%XX` as a byte (a `%` without two hex
//! digits stays as it is), invalid UTF-8 replaced with U+FFFD, names matched
//! after decoding, unknown names ignored, a repeated known name an error
//! (`duplicate field …`), a missing required one an error
//! (`missing field …`, the first in the order given). The unit test checks
//! that equivalence on generated bodies.
//!
//! What it saves: a value without `%` or `+` (a session id, a number, a
//! menu answer) is borrowed from the body, and nothing is allocated for the
//! names; on the USSD hop of Africa's Talking this is about 5,000
//! instructions of the hop's ~73,000 (docs/performance.md).

use std::borrow::Cow;

use super::ChannelError;

/// One field asked for: its name in the form, and whether it must be there.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The name as it appears in the form, after decoding.
    pub name: &'static str,
    /// Missing is an error (`missing field …`); else the value is `None`.
    pub required: bool,
}

/// A required field.
pub const fn required(name: &'static str) -> Field {
    Field {
        name,
        required: true,
    }
}

/// A field that may be absent.
pub const fn optional(name: &'static str) -> Field {
    Field {
        name,
        required: false,
    }
}

/// The values of `wanted` in `body`, in the same order; `None` for an
/// absent optional field.
///
/// # Errors
/// [`ChannelError::BadRequest`] naming the field (never a value): a name
/// given twice, or a required one missing.
pub fn fields<'a, const N: usize>(
    body: &'a [u8],
    wanted: [Field; N],
) -> Result<[Option<Cow<'a, str>>; N], ChannelError> {
    let mut out: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    let mut rest = body;
    while !rest.is_empty() {
        let pair = match memchr::memchr(b'&', rest) {
            Some(at) => {
                let pair = &rest[..at];
                rest = &rest[at + 1..];
                pair
            }
            None => std::mem::take(&mut rest),
        };
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let i = if needs_decoding(name) {
            let name = decode(name);
            wanted.iter().position(|f| f.name == name)
        } else {
            wanted.iter().position(|f| f.name.as_bytes() == name)
        };
        let Some(i) = i else {
            continue;
        };
        if out[i].is_some() {
            return Err(ChannelError::BadRequest(format!(
                "duplicate field `{}`",
                wanted[i].name
            )));
        }
        out[i] = Some(decode(value));
    }
    if let Some(f) = wanted
        .iter()
        .zip(&out)
        .find_map(|(f, v)| (f.required && v.is_none()).then_some(f))
    {
        return Err(ChannelError::BadRequest(format!(
            "missing field `{}`",
            f.name
        )));
    }
    Ok(out)
}

/// One name or value: `+` as a space, `%XX` as its byte, invalid UTF-8
/// replaced. Borrowed unless something had to change.
fn decode(raw: &[u8]) -> Cow<'_, str> {
    if !needs_decoding(raw) {
        return match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(raw),
        };
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'+' => bytes.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    bytes.push(hi << 4 | lo);
                    i += 2;
                }
                _ => bytes.push(b'%'),
            },
            _ => bytes.push(b),
        }
        i += 1;
    }
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn needs_decoding(raw: &[u8]) -> bool {
    memchr::memchr2(b'+', b'%', raw).is_some()
}

fn hex(b: &u8) -> Option<u8> {
    char::from(*b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// The struct `serde_urlencoded` is compared with: two required fields,
    /// one with a default, one optional, as the adapters' forms have.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Reference {
        session_id: String,
        phone_number: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        id: Option<String>,
    }

    const WANTED: [Field; 4] = [
        required("sessionId"),
        required("phoneNumber"),
        optional("text"),
        optional("id"),
    ];

    fn ours(body: &[u8]) -> Result<Reference, String> {
        match fields(body, WANTED) {
            Ok([s, p, t, id]) => Ok(Reference {
                session_id: s.expect("required").into_owned(),
                phone_number: p.expect("required").into_owned(),
                text: t.map(Cow::into_owned).unwrap_or_default(),
                id: id.map(Cow::into_owned),
            }),
            Err(ChannelError::BadRequest(m)) => Err(m),
            Err(e) => Err(e.to_string()),
        }
    }

    fn theirs(body: &[u8]) -> Result<Reference, String> {
        serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_what_serde_urlencoded_reads() {
        let cases: &[&[u8]] = &[
            b"sessionId=ATx1&phoneNumber=%2B996700000001&text=1*2&networkCode=99999",
            b"phoneNumber=+996&sessionId=a&&&text=",
            b"sessionId=a&phoneNumber=b&text=%D0%9F%D1%80%D0%B8+%E2%9C%93&id",
            b"session%49d=x&phone%4eumber=y",
            b"sessionId=a&phoneNumber=b&text=%zz%4%&id=%ff%fe",
            b"sessionId=a&phoneNumber=b&sessionId=c",
            b"sessionId=a",
            b"",
            b"sessionId=a=b&phoneNumber==",
            b"sessionId=\xff\xfe&phoneNumber=\xd0",
        ];
        for body in cases {
            assert_eq!(
                ours(body),
                theirs(body),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // A value with nothing to decode is borrowed from the body.
        let body = b"sessionId=ATx1&phoneNumber=996700000001";
        let [s, ..] = fields(body, WANTED).expect("a valid form");
        assert!(matches!(s, Some(Cow::Borrowed("ATx1"))));
    }

    /// Bytes that matter to a form: separators, escapes (good and bad),
    /// UTF-8 and bytes that are not.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"+".to_vec()),
            Just(b"%".to_vec()),
            Just(b"%2B".to_vec()),
            Just(b"%2b%3D%26".to_vec()),
            Just(b"%d0%9f".to_vec()),
            Just(b"%ff".to_vec()),
            Just(b"%4".to_vec()),
            Just("Привет".as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..4),
            "[a-zA-Z0-9*#]{0,6}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..5).prop_map(|v| v.concat())
    }

    /// A name: one asked for (plain or escaped), or another.
    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"sessionId".to_vec()),
            Just(b"phoneNumber".to_vec()),
            Just(b"text".to_vec()),
            Just(b"id".to_vec()),
            Just(b"session%49d".to_vec()),
            Just(b"phone+Number".to_vec()),
            Just(b"networkCode".to_vec()),
            bytes(),
        ]
    }

    /// Mostly well-formed pairs (so that most bodies have both required
    /// fields and the values get compared), some of them malformed.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let pair = (
            name(),
            prop_oneof![Just(&b"="[..]), Just(&b""[..]), Just(&b"=="[..])],
            bytes(),
        )
            .prop_map(|(n, eq, v)| [n, eq.to_vec(), v].concat());
        (
            any::<bool>(),
            bytes(),
            bytes(),
            proptest::collection::vec(pair, 0..5),
            prop_oneof![Just(&b"&"[..]), Just(&b"&&"[..]), Just(&b";"[..])],
        )
            .prop_map(|(both, s, p, rest, sep)| {
                let mut pairs = rest;
                if both {
                    pairs.insert(0, [&b"sessionId="[..], &s].concat());
                    pairs.insert(1, [&b"phoneNumber="[..], &p].concat());
                }
                pairs.join(sep)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn every_body_reads_as_serde_urlencoded_reads_it(body in body()) {
            prop_assert_eq!(ours(&body), theirs(&body));
        }
    }
}

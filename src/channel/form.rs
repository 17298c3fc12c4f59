//! A form body's named fields, borrowed where they need no decoding.
//!
//! [`fields`] reads `application/x-www-form-urlencoded` exactly as
//! `serde_urlencoded` (through `form_urlencoded`) reads it into a struct of
//! string fields: pairs split on `&` (empty ones skipped), name and value on
//! the first `=`, `+` as a space, `%XX` as a byte, names matched after
//! decoding, unknown names ignored, a repeated known name an error
//! (`duplicate field …`), a missing required one an error
//! (`missing field …`, the first in the order given). Unlike
//! `serde_urlencoded`, which keeps a `%` without two hex digits as it is
//! and replaces invalid UTF-8 with U+FFFD, it refuses both, in any pair
//! (`body is not a valid form: …`, [`check`]): a caller's answer must reach
//! the lawyer's SMS as she typed it or not at all, never as `��%zz`. The
//! unit test checks that equivalence, and that refusal, on generated bodies.
//!
//! [`content_type`] refuses a body declared as something other than a form
//! (`text/plain`, `multipart/form-data`, JSON): 415. A body with no
//! `Content-Type` is read as a form, as aggregators that omit it expect.
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
/// given twice, or a required one missing; or a fixed text when any pair
/// has a `%` without two hex digits or is not UTF-8 once decoded.
pub fn fields<'a, const N: usize>(
    body: &'a [u8],
    wanted: [Field; N],
) -> Result<[Option<Cow<'a, str>>; N], ChannelError> {
    let mut out: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    let mut duplicate: Option<&'static str> = None;
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
            let name = decode(name)?;
            wanted.iter().position(|f| f.name == name)
        } else {
            utf8(name)?;
            wanted.iter().position(|f| f.name.as_bytes() == name)
        };
        let Some(i) = i else {
            // Not asked for, but checked all the same: a body that is not
            // a valid form is refused whatever field is broken.
            decode(value)?;
            continue;
        };
        let value = decode(value)?;
        if out[i].is_some() {
            // Refused once the whole body is known to be a valid form, as
            // `check` would have refused it first.
            duplicate.get_or_insert(wanted[i].name);
            continue;
        }
        out[i] = Some(value);
    }
    if let Some(name) = duplicate {
        return Err(ChannelError::BadRequest(format!(
            "duplicate field `{name}`"
        )));
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

/// The refusal of a `%` not followed by two hex digits.
const BAD_ESCAPE: &str = "body is not a valid form: bad percent-encoding";
/// The refusal of bytes that are not UTF-8 (raw or percent-encoded).
const NOT_UTF8: &str = "body is not a valid form: not valid UTF-8";

/// Check a whole form body (or query string) as [`fields`] reads it: every
/// `%` followed by two hex digits, every name and value UTF-8 once
/// decoded. For the adapters that read forms through `serde_urlencoded`,
/// which accepts both silently.
///
/// # Errors
/// [`ChannelError::BadRequest`] with a fixed text.
pub fn check(body: &[u8]) -> Result<(), ChannelError> {
    for pair in body.split(|&b| b == b'&') {
        // Name, then value, as `fields` reads them (the same error first).
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        decode(name)?;
        decode(value)?;
    }
    Ok(())
}

/// Refuse a body declared as something other than a form: 415 through
/// [`ChannelError::UnsupportedMediaType`]. No `Content-Type` at all is
/// read as a form.
///
/// # Errors
/// [`ChannelError::UnsupportedMediaType`].
pub fn content_type(headers: &http::HeaderMap) -> Result<(), ChannelError> {
    let mut all = headers.get_all(http::header::CONTENT_TYPE).iter();
    let Some(value) = all.next() else {
        return Ok(());
    };
    if all.next().is_some() {
        // Declared twice: which one a proxy or the aggregator meant is
        // not ours to guess (hostile-traffic audit).
        return Err(ChannelError::UnsupportedMediaType(
            "Content-Type must be given once, as application/x-www-form-urlencoded",
        ));
    }
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(t) if t.eq_ignore_ascii_case("application/x-www-form-urlencoded") => Ok(()),
        _ => Err(ChannelError::UnsupportedMediaType(
            "Content-Type must be application/x-www-form-urlencoded",
        )),
    }
}

fn utf8(raw: &[u8]) -> Result<&str, ChannelError> {
    std::str::from_utf8(raw).map_err(|_| ChannelError::BadRequest(NOT_UTF8.into()))
}

/// One name or value: `+` as a space, `%XX` as its byte. Borrowed unless
/// something had to change.
fn decode(raw: &[u8]) -> Result<Cow<'_, str>, ChannelError> {
    if !needs_decoding(raw) {
        return utf8(raw).map(Cow::Borrowed);
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
                _ => return Err(ChannelError::BadRequest(BAD_ESCAPE.into())),
            },
            _ => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| ChannelError::BadRequest(NOT_UTF8.into()))
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

    /// `serde_urlencoded`, except that a body it would read with a `%`
    /// kept as it is or U+FFFD in place of bytes is refused.
    fn theirs(body: &[u8]) -> Result<Reference, String> {
        if let Err(ChannelError::BadRequest(m)) = check(body) {
            return Err(m);
        }
        serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_escapes_and_bytes_that_are_not_utf8_are_refused_in_any_pair() {
        for body in [
            &b"sessionId=a&phoneNumber=b&text=%zzPlace"[..],
            b"sessionId=a&phoneNumber=b&text=Place%",
            b"sessionId=a&phoneNumber=b&text=%4",
            b"sessionId=a&phoneNumber=b&text=%ff%fe",
            b"sessionId=a&phoneNumber=b&text=\xd0",
            b"sessionId=a&phoneNumber=b&networkCode=%zz",
            b"sessionId=a&phoneNumber=b&other%ff=1",
        ] {
            assert!(
                matches!(fields(body, WANTED), Err(ChannelError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert!(check(body).is_err());
        }
        assert!(check(b"a=%D0%9F%D1%80+b&c=%2B996&&d").is_ok());
    }

    #[test]
    fn only_a_form_or_no_content_type_is_read_as_a_form() {
        let with = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            content_type(&h)
        };
        assert!(content_type(&http::HeaderMap::new()).is_ok());
        let mut twice = http::HeaderMap::new();
        for ct in ["application/x-www-form-urlencoded", "text/plain"] {
            twice.append(http::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        assert!(matches!(
            content_type(&twice),
            Err(ChannelError::UnsupportedMediaType(_))
        ));
        assert!(with("application/x-www-form-urlencoded").is_ok());
        assert!(with("Application/X-WWW-Form-Urlencoded; charset=UTF-8").is_ok());
        for ct in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json",
            "",
        ] {
            assert!(
                matches!(with(ct), Err(ChannelError::UnsupportedMediaType(_))),
                "{ct}"
            );
        }
    }

    #[test]
    fn reads_what_serde_urlencoded_reads() {
        let cases: &[&[u8]] = &[
            b"sessionId=ATx1&phoneNumber=%2B996700000001&text=1*2&networkCode=99999",
            b"phoneNumber=+996&sessionId=a&&&text=",
            b"sessionId=a&phoneNumber=b&text=%D0%9F%D1%80%D0%B8+%E2%9C%93&id",
            b"session%49d=x&phone%4eumber=y",
            b"sessionId=a&phoneNumber=b&sessionId=c",
            b"sessionId=a",
            b"",
            b"sessionId=a=b&phoneNumber==",
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

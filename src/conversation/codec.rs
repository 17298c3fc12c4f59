//! A session in a store that keeps it in the process: a compact binary
//! form instead of JSON.
//!
//! The embedded store's data never leaves the process (it is neither
//! sealed nor written anywhere), so its sessions need no format that
//! outlives a restart: this one is read only by the binary that wrote it.
//! A store whose data leaves the process (Redis) keeps sealed JSON, as
//! before. Reading and writing a session this way costs about a third of
//! what JSON cost, and it takes about half the bytes (docs/performance.md).
//!
//! Layout: the byte [`TAG`], then in order `f`, `v`, `st` (`0`, or `1`
//! followed by node, language (`0`, or `1` and the text), the count of
//! variables and each name and value, invalid answers as one byte, steps),
//! `c`, `t0`. Texts are a length and UTF-8 bytes; numbers and lengths are
//! LEB128 varints. Anything else — a truncated record, a bad varint,
//! invalid UTF-8, bytes left over, another first byte — is an error, never
//! a panic (a property test feeds it arbitrary bytes).

use std::collections::BTreeMap;

use super::plan::{SessionData, SessionDataRef};
use crate::flow::engine;

/// The first byte of a record in this form (JSON starts with `{`).
const TAG: u8 = 0xB1;

/// Why bytes are not a session in this form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("session record is not in the in-process form: {0}")]
pub struct CodecError(&'static str);

/// A session in the in-process form.
pub(super) fn encode(data: &SessionDataRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(TAG);
    text(&mut out, data.f);
    text(&mut out, data.v);
    match data.st {
        None => out.push(0),
        Some(st) => {
            out.push(1);
            text(&mut out, &st.node);
            match &st.lang {
                None => out.push(0),
                Some(l) => {
                    out.push(1);
                    text(&mut out, l);
                }
            }
            varint(&mut out, st.vars.len() as u64);
            for (k, v) in &st.vars {
                text(&mut out, k);
                text(&mut out, v);
            }
            out.push(st.invalid);
            varint(&mut out, u64::from(st.steps));
        }
    }
    varint(&mut out, data.c as u64);
    varint(&mut out, data.t0);
    out
}

/// A session written by [`encode`].
///
/// # Errors
/// [`CodecError`] for anything [`encode`] did not write.
pub(super) fn decode(bytes: &[u8]) -> Result<SessionData, CodecError> {
    let mut r = Reader(bytes);
    if r.byte()? != TAG {
        return Err(CodecError("unknown first byte"));
    }
    let f = r.text()?;
    let v = r.text()?;
    let st = match r.byte()? {
        0 => None,
        1 => {
            let node = r.text()?;
            let lang = match r.byte()? {
                0 => None,
                1 => Some(r.text()?),
                _ => return Err(CodecError("bad language flag")),
            };
            let n = r.varint()?;
            let mut vars = BTreeMap::new();
            for _ in 0..n {
                let k = r.text()?;
                let v = r.text()?;
                vars.insert(k, v);
            }
            let invalid = r.byte()?;
            let steps = u32::try_from(r.varint()?).map_err(|_| CodecError("steps too large"))?;
            Some(engine::State {
                node,
                lang,
                vars,
                invalid,
                steps,
            })
        }
        _ => return Err(CodecError("bad state flag")),
    };
    let c = usize::try_from(r.varint()?).map_err(|_| CodecError("offset too large"))?;
    let t0 = r.varint()?;
    if !r.0.is_empty() {
        return Err(CodecError("bytes left over"));
    }
    Ok(SessionData { f, v, st, c, t0 })
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.0.split_first().ok_or(CodecError("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(CodecError("varint overflows"));
            }
            n |= part << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CodecError("varint too long"))
    }

    fn text(&mut self) -> Result<String, CodecError> {
        let len = usize::try_from(self.varint()?).map_err(|_| CodecError("length too large"))?;
        if len > self.0.len() {
            return Err(CodecError("truncated"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| CodecError("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state() -> impl Strategy<Value = engine::State> {
        (
            "\\PC{0,12}",
            proptest::option::of("[a-z]{2}"),
            proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,40}", 0..6),
            any::<u8>(),
            any::<u32>(),
        )
            .prop_map(|(node, lang, vars, invalid, steps)| engine::State {
                node,
                lang,
                vars,
                invalid,
                steps,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn every_session_reads_back_as_written(
            f in "[a-z-]{0,16}",
            v in "[0-9a-f]{0,16}",
            st in proptest::option::of(state()),
            c in any::<usize>(),
            t0 in any::<u64>(),
        ) {
            let d = SessionData { f, v, st, c, t0 };
            let back = decode(&encode(&d.as_ref())).expect("what encode wrote");
            prop_assert_eq!(
                (back.f, back.v, back.st, back.c, back.t0),
                (d.f, d.v, d.st, d.c, d.t0)
            );
        }

        #[test]
        fn arbitrary_bytes_are_an_error_or_a_session_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            tagged in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if tagged {
                bytes.insert(0, TAG);
            }
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn damaged_records_are_named_errors() {
        let st = engine::State {
            node: "city".into(),
            lang: Some("ru".into()),
            vars: BTreeMap::from([("lang".into(), "ru".into())]),
            invalid: 1,
            steps: 2,
        };
        let d = SessionData {
            f: "legal-help".into(),
            v: "3f2a".into(),
            st: Some(st),
            c: 3,
            t0: 1_700_000_000_000,
        };
        let good = encode(&d.as_ref());
        assert!(good.len() < serde_json::to_vec(&d).unwrap().len() / 2);
        // Every strict prefix is truncated; one byte more is left over.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer).unwrap_err(), CodecError("bytes left over"));
        // JSON (what a store outside the process keeps) is not this form.
        let json = serde_json::to_vec(&d).unwrap();
        assert_eq!(decode(&json).unwrap_err(), CodecError("unknown first byte"));
        // Invalid UTF-8 in a text.
        let mut bad = good;
        let at = bad.iter().position(|&b| b == b'l').expect("the flow id");
        bad[at] = 0xff;
        assert_eq!(decode(&bad).unwrap_err(), CodecError("text is not UTF-8"));
    }
}

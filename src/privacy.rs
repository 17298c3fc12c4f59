//! Privacy: keyed pseudonyms for logs and keys, sealing data at rest.
//!
//! Owns the one secret that protects callers, `HOTLINE_PII_KEY`, and the
//! subkeys derived from it. A number appears in logs only as a
//! [`Pseudonym`]: an HMAC-SHA256 under a key an attacker who reads the logs
//! does not have, so it cannot be reversed by hashing every number in a
//! country (as a plain hash could). Session and case data are sealed with
//! XChaCha20-Poly1305 before they reach a store.
//!
//! **Rotating the key.** With the old key in `HOTLINE_PII_KEY_PREVIOUS`
//! (`<privacy.pii_key_env>_PREVIOUS`), data sealed under it still opens:
//! [`Privacy::open`] tries the current key, then the previous one, and
//! counts each open the previous key made
//! (`hotline_sealed_opened_with_previous_key_total`). Everything is sealed
//! under the current key, and pseudonyms are always the current key's.
//!
//! Must never: log, format or return a key; build a pseudonym without the key.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The development key used when `HOTLINE_PII_KEY` is unset. Only for trying
/// the gateway on a laptop: the server logs a loud warning when it is used.
pub const DEV_KEY: &str = "hotline-development-key-do-not-use-in-production";

/// Shortest acceptable key, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A keyed pseudonym of a phone number: stable for one key, meaningless
/// without it. Safe for logs and store keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pseudonym(String);

impl Pseudonym {
    /// The pseudonym's text (`p_1f2e…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A shard number in `0..n` derived from the pseudonym, so that every key
    /// of one caller lands in the same Redis Cluster slot.
    pub fn bucket(&self, n: u16) -> u16 {
        let v = u16::from_str_radix(&self.0[2..6], 16).unwrap_or(0);
        v % n
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why sealed data could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Too short to hold a nonce and a tag.
    #[error("sealed data is truncated")]
    Truncated,
    /// Wrong key, or the data was changed.
    #[error("sealed data failed authentication")]
    Authentication,
}

/// Why a sealed record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It could not be decrypted (wrong `HOTLINE_PII_KEY`, or altered).
    #[error("cannot decrypt: {0}")]
    Seal(#[from] SealError),
    /// It decrypted, but is not the record this version expects.
    #[error("cannot decode: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The keys derived from `HOTLINE_PII_KEY`.
#[derive(Clone)]
pub struct Privacy {
    /// HMAC-SHA256 keyed with the pseudonym subkey, its key blocks already
    /// hashed: each pseudonym clones it (two compressions fewer a call).
    pseudonym_mac: HmacSha256,
    cipher: XChaCha20Poly1305,
    /// The previous key's cipher, to open what it sealed (a rotation).
    previous: Option<XChaCha20Poly1305>,
    /// Opens the previous key made, since start (shared by clones).
    opened_with_previous: Arc<AtomicU64>,
    /// True when running on [`DEV_KEY`].
    pub is_dev_key: bool,
}

impl fmt::Debug for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Privacy")
            .field("is_dev_key", &self.is_dev_key)
            .field("previous_key", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

fn derive(master: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Privacy {
    /// Derive the subkeys from a master key.
    pub fn new(master: &[u8]) -> Self {
        let seal_key = derive(master, "hotline/seal/v1");
        Privacy {
            pseudonym_mac: <HmacSha256 as Mac>::new_from_slice(&derive(
                master,
                "hotline/pseudonym/v1",
            ))
            .expect("HMAC takes any key length"),
            cipher: XChaCha20Poly1305::new((&seal_key).into()),
            previous: None,
            opened_with_previous: Arc::new(AtomicU64::new(0)),
            is_dev_key: master == DEV_KEY.as_bytes(),
        }
    }

    /// [`Privacy::new`] that also opens what `previous` (the key before a
    /// rotation) sealed.
    pub fn with_previous(master: &[u8], previous: Option<&[u8]>) -> Self {
        let mut p = Privacy::new(master);
        p.previous =
            previous.map(|k| XChaCha20Poly1305::new((&derive(k, "hotline/seal/v1")).into()));
        p
    }

    /// The keys a configuration names: `HOTLINE_PII_KEY`, and
    /// `HOTLINE_PII_KEY_PREVIOUS` when set.
    pub fn from_config(c: &crate::config::PrivacyConfig) -> Self {
        Privacy::with_previous(&c.pii_key, c.previous_pii_key.as_deref())
    }

    /// How many times, since start, data opened only with the previous key
    /// (`HOTLINE_PII_KEY_PREVIOUS`): while it grows, that key is needed.
    pub fn opened_with_previous(&self) -> u64 {
        self.opened_with_previous.load(Ordering::Relaxed)
    }

    /// The keyed pseudonym of a number (or of any identifier).
    pub fn pseudonym(&self, value: &str) -> Pseudonym {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.pseudonym_mac.clone();
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(22);
        s.push_str("p_");
        for b in &out[..10] {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Pseudonym(s)
    }

    /// The id of the case a session opens: derived from the session's key
    /// and `instance`, so that a retried or replayed request names the same
    /// case (a session opens at most one), and meaningless without the key.
    ///
    /// `instance` tells apart sessions under one key: an SMS conversation's
    /// key is her number's, so each request she makes by SMS is a new
    /// session under the same key, told apart by its start time (ms); so is
    /// a USSD session of an operator that sends only the latest answer (it
    /// may reuse ids). 0: the key alone — a cumulative USSD session, whose
    /// id must be new for every session, online and on the outage path
    /// alike.
    pub fn case_id(&self, session_key: &str, instance: u64) -> String {
        let p = if instance == 0 {
            self.pseudonym(&format!("case:{session_key}"))
        } else {
            self.pseudonym(&format!("case:{session_key}:{instance}"))
        };
        format!("c_{}", &p.as_str()[2..])
    }

    /// Encrypt and authenticate `plain` with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let mut out = nonce_bytes.to_vec();
        let ct = self
            .cipher
            .encrypt(nonce, plain)
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        out.extend_from_slice(&ct);
        out
    }

    /// Serialise `value` as JSON and seal it.
    ///
    /// # Errors
    /// The serialiser's error (a record that JSON cannot hold); nothing
    /// is sealed then, never an empty payload.
    pub fn seal_json<T: serde::Serialize>(&self, value: &T) -> Result<Vec<u8>, serde_json::Error> {
        Ok(self.seal(&serde_json::to_vec(value)?))
    }

    /// Open data made by [`Privacy::seal_json`].
    ///
    /// # Errors
    /// [`OpenError`]: not decryptable with this key, or not a `T`.
    pub fn open_json<T: serde::de::DeserializeOwned>(&self, sealed: &[u8]) -> Result<T, OpenError> {
        Ok(serde_json::from_slice(&self.open(sealed)?)?)
    }

    /// Decrypt data made by [`Privacy::seal`] under this key, or under the
    /// previous one when it is set (counted).
    ///
    /// # Errors
    /// [`SealError`] when the data is truncated, altered, or from another key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 24 + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, ct) = sealed.split_at(24);
        let nonce = XNonce::from_slice(nonce);
        if let Ok(plain) = self.cipher.decrypt(nonce, ct) {
            return Ok(plain);
        }
        let plain = self
            .previous
            .as_ref()
            .and_then(|previous| previous.decrypt(nonce, ct).ok())
            .ok_or(SealError::Authentication)?;
        self.opened_with_previous.fetch_add(1, Ordering::Relaxed);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudonym names stored data (keys, buckets): its value must never
    /// change with how it is computed. Here: "p_" and the first 10 bytes,
    /// in lowercase hex, of HMAC-SHA256(derive(master, label), value).
    #[test]
    fn pseudonyms_are_the_documented_hmac() {
        let master = b"0123456789abcdef0123456789abcdef";
        let p = Privacy::new(master);
        for value in ["+996555123456", "", "case:u:at:ATUid_1", "ж"] {
            let mut mac =
                <HmacSha256 as Mac>::new_from_slice(&derive(master, "hotline/pseudonym/v1"))
                    .unwrap();
            mac.update(value.as_bytes());
            let out = mac.finalize().into_bytes();
            let hex: String = out[..10].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(p.pseudonym(value).as_str(), format!("p_{hex}"), "{value}");
        }
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let a = Privacy::new(b"0123456789abcdef0123456789abcdef");
        let b = Privacy::new(b"another key, another world......");
        let n = "+996555123456";
        assert_eq!(a.pseudonym(n), a.pseudonym(n));
        assert_ne!(a.pseudonym(n), b.pseudonym(n));
        assert_ne!(a.pseudonym(n), a.pseudonym("+996555123457"));
        assert!(!a.pseudonym(n).as_str().contains("555"));
        assert_eq!(a.pseudonym(n).as_str().len(), 22);
        assert!(a.pseudonym(n).bucket(16) < 16);
    }

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let p = Privacy::new(b"0123456789abcdef0123456789abcdef");
        let sealed = p.seal(b"Station 5");
        assert!(!sealed.windows(7).any(|w| w == b"Station"));
        assert_eq!(p.open(&sealed).unwrap(), b"Station 5");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(p.open(&bad), Err(SealError::Authentication)));
        assert!(matches!(p.open(&sealed[..10]), Err(SealError::Truncated)));
        let other = Privacy::new(b"another key, another world......");
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn after_a_rotation_the_previous_key_opens_what_it_sealed() {
        let old_key = b"0123456789abcdef0123456789abcdef";
        let new_key = b"another key, another world......";
        let old = Privacy::new(old_key);
        let sealed_before = old.seal(b"Station 5");
        let rotated = Privacy::with_previous(new_key, Some(old_key));
        assert_eq!(rotated.open(&sealed_before).unwrap(), b"Station 5");
        assert_eq!(rotated.opened_with_previous(), 1);
        // What it seals now is the new key's: the old key cannot open it,
        // and opening it does not count as the previous key's.
        let sealed_after = rotated.seal(b"Station 6");
        assert!(old.open(&sealed_after).is_err());
        assert_eq!(rotated.open(&sealed_after).unwrap(), b"Station 6");
        assert_eq!(rotated.opened_with_previous(), 1);
        // Pseudonyms are the new key's alone.
        assert_eq!(
            rotated.pseudonym("+996555123456"),
            Privacy::new(new_key).pseudonym("+996555123456")
        );
        // Without the previous key, the old data stays shut; a third key's
        // data opens with neither.
        assert!(Privacy::new(new_key).open(&sealed_before).is_err());
        let third = Privacy::new(b"a third key, a third world......").seal(b"x");
        assert!(matches!(
            rotated.open(&third),
            Err(SealError::Authentication)
        ));
        assert_eq!(rotated.opened_with_previous(), 1);
    }
}

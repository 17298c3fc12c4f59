//! Phone numbers: parsing into E.164, and the caller's country.
//!
//! A [`PhoneNumber`] is always E.164 (`+996555123456`). Its `Debug` is
//! redacted and it has no `Display`, so a number cannot reach a log line or a
//! panic message by accident; code that needs the digits calls
//! [`PhoneNumber::as_str`] on purpose.
//!
//! This is deliberately small instead of a full numbering-plan library: the
//! gateway only needs E.164 normalisation, the national formats of the
//! countries it serves, and the country of a number.

use std::fmt;

/// A country the gateway knows the numbering plan of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, as used in flows (`when = { country = ["KG"] }`).
    pub iso: &'static str,
    /// Calling code without the plus.
    pub calling_code: &'static str,
    /// Digits in a national significant number.
    pub national_len: usize,
    /// Whether numbers are dialled nationally with a leading `0`.
    pub trunk_zero: bool,
}

/// Every country the gateway recognises by prefix.
pub const COUNTRIES: &[Country] = &[
    Country {
        iso: "KG",
        calling_code: "996",
        national_len: 9,
        trunk_zero: true,
    },
    Country {
        iso: "UA",
        calling_code: "380",
        national_len: 9,
        trunk_zero: true,
    },
    Country {
        iso: "GE",
        calling_code: "995",
        national_len: 9,
        trunk_zero: false,
    },
];

/// Look a country up by its ISO code.
pub fn country_by_iso(iso: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|c| c.iso.eq_ignore_ascii_case(iso))
}

/// An E.164 phone number. Debug output is redacted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, PhoneError> {
        PhoneNumber::parse_international(&s)
    }
}

/// Why a text is not a phone number. Carries no digits of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but separators, or empty.
    #[error("empty phone number")]
    Empty,
    /// A character that is not a digit, separator or leading plus.
    #[error("phone number has a character that is not a digit")]
    BadCharacter,
    /// Too short or too long for E.164 (8 to 15 digits).
    #[error("phone number has the wrong number of digits")]
    BadLength,
    /// A national number without a country to put it in.
    #[error("phone number has no country code")]
    NoCountry,
}

/// Strip separators; return (had an international prefix, digits).
fn digits_of(raw: &str) -> Result<(bool, String), PhoneError> {
    let raw = raw.trim();
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    // Room for the `+` that `e164` puts in front.
    let mut digits = String::with_capacity(rest.len() + 1);
    for c in rest.chars() {
        match crate::text::digit_value(c) {
            Some(d) => digits.push(d),
            None if matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{a0}') => {}
            None => return Err(PhoneError::BadCharacter),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    if !plus && let Some(rest) = digits.strip_prefix("00") {
        return Ok((true, rest.to_owned()));
    }
    Ok((plus, digits))
}

fn e164(digits: String) -> Result<PhoneNumber, PhoneError> {
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(PhoneError::BadLength);
    }
    let mut number = digits;
    number.insert(0, '+');
    Ok(PhoneNumber(number))
}

impl PhoneNumber {
    /// Parse a number as aggregators send it: international, with or without
    /// `+` or `00` (`+996555123456`, `996555123456`, `00996555123456`).
    ///
    /// # Errors
    /// [`PhoneError`] when the text is not 8–15 digits in international form.
    pub fn parse_international(raw: &str) -> Result<Self, PhoneError> {
        let (_, digits) = digits_of(raw)?;
        e164(digits)
    }

    /// Parse a number a person typed: international forms as above, or a
    /// national form of `country` (`0555 123 456` in Kyrgyzstan).
    ///
    /// # Errors
    /// [`PhoneError`] when the text is no valid number.
    pub fn parse_typed(raw: &str, country: Option<&Country>) -> Result<Self, PhoneError> {
        let (international, digits) = digits_of(raw)?;
        if international {
            return e164(digits);
        }
        if let Some(c) = country {
            let national = if c.trunk_zero {
                digits.strip_prefix('0').unwrap_or(&digits)
            } else {
                digits.as_str()
            };
            if national.len() == c.national_len && !national.starts_with('0') {
                return e164(format!("{}{national}", c.calling_code));
            }
            if digits.starts_with(c.calling_code)
                && digits.len() == c.calling_code.len() + c.national_len
            {
                return e164(digits);
            }
            return Err(PhoneError::BadLength);
        }
        if COUNTRIES.iter().any(|c| digits.starts_with(c.calling_code)) {
            return e164(digits);
        }
        Err(PhoneError::NoCountry)
    }

    /// The E.164 digits with the plus. Handle with care: this is personal data.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country this number belongs to, when the gateway knows it.
    pub fn country(&self) -> Option<&'static Country> {
        let digits = &self.0[1..];
        COUNTRIES
            .iter()
            .find(|c| digits.starts_with(c.calling_code))
    }

    /// Whether the number is in a range reserved for fiction, which no
    /// phone answers: the UK's drama range +44 7700 900000–900999 (Ofcom)
    /// and North America's 555-0100–0199. Demo rosters use them.
    pub fn is_fictional(&self) -> bool {
        let d = &self.0[1..];
        let nanp = d.len() == 11
            && d.starts_with('1')
            && d.get(4..9).is_some_and(|x| x.starts_with("55501"));
        (d.len() == 12 && d.starts_with("447700900")) || nanp
    }

    /// A masked form for people who may see a number but not all of it
    /// (`+996•••••3456`).
    pub fn masked(&self) -> String {
        let cc = self.country().map_or(1, |c| c.calling_code.len());
        let digits = &self.0[1..];
        let keep_end = 4.min(digits.len().saturating_sub(cc));
        let hidden = digits.len() - cc - keep_end;
        format!(
            "+{}{}{}",
            &digits[..cc],
            "•".repeat(hidden),
            &digits[digits.len() - keep_end..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kg() -> Option<&'static Country> {
        country_by_iso("KG")
    }

    #[test]
    fn aggregator_numbers_become_e164() {
        for raw in [
            "+996555123456",
            "996555123456",
            "00996555123456",
            " +996 555-123-456 ",
        ] {
            assert_eq!(
                PhoneNumber::parse_international(raw).unwrap().as_str(),
                "+996555123456",
                "{raw}"
            );
        }
    }

    #[test]
    fn bad_numbers_are_rejected_without_echoing_them() {
        assert_eq!(PhoneNumber::parse_international(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse_international("+12"),
            Err(PhoneError::BadLength)
        );
        assert_eq!(
            PhoneNumber::parse_international("+99655512345678901"),
            Err(PhoneError::BadLength)
        );
        assert_eq!(
            PhoneNumber::parse_international("abc"),
            Err(PhoneError::BadCharacter)
        );
        let e = PhoneNumber::parse_international("+9965551x3456").unwrap_err();
        assert!(!e.to_string().contains("996"));
    }

    #[test]
    fn typed_national_numbers_take_the_callers_country() {
        assert_eq!(
            PhoneNumber::parse_typed("0555 123 456", kg())
                .unwrap()
                .as_str(),
            "+996555123456"
        );
        assert_eq!(
            PhoneNumber::parse_typed("555123456", kg())
                .unwrap()
                .as_str(),
            "+996555123456"
        );
        assert_eq!(
            PhoneNumber::parse_typed("050 123 45 67", country_by_iso("UA"))
                .unwrap()
                .as_str(),
            "+380501234567"
        );
        assert_eq!(
            PhoneNumber::parse_typed("+380501234567", kg())
                .unwrap()
                .as_str(),
            "+380501234567"
        );
        assert_eq!(
            PhoneNumber::parse_typed("١٢٣", kg()),
            Err(PhoneError::BadLength)
        );
        assert_eq!(
            PhoneNumber::parse_typed("555123456", None),
            Err(PhoneError::NoCountry)
        );
    }

    #[test]
    fn country_comes_from_the_prefix() {
        let n = |s| PhoneNumber::parse_international(s).unwrap();
        assert_eq!(n("+996555123456").country().unwrap().iso, "KG");
        assert_eq!(n("+380501234567").country().unwrap().iso, "UA");
        assert_eq!(n("+995555123456").country().unwrap().iso, "GE");
        assert!(n("+254711000000").country().is_none());
    }

    #[test]
    fn fictional_ranges() {
        let f = |s: &str| PhoneNumber::parse_international(s).unwrap().is_fictional();
        assert!(f("+44 7700 900123"));
        assert!(f("+1 202 555 0123"));
        assert!(!f("+44 7700 901123"));
        assert!(!f("+996 555 000 001"));
        assert!(!f("+1 202 555 1234"));
    }

    #[test]
    fn debug_is_redacted_and_masking_hides_the_middle() {
        let n = PhoneNumber::parse_international("+996555123456").unwrap();
        assert!(!format!("{n:?}").contains("555"));
        assert_eq!(n.masked(), "+996•••••3456");
    }
}

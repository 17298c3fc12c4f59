//! Measuring text the way a handset and a network do.
//!
//! Owns the GSM 03.38 alphabet, SMS segment counting, USSD screen limits and
//! the normalisation of what a caller types (trimming, digits from other
//! scripts). Pure functions only; nothing here allocates more than its output.

use std::fmt;

/// The GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table: each costs two septets (escape + char).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{0c}";

/// USSD screen limit when every character is GSM-7 (160 octets of septets).
pub const USSD_GSM7_LIMIT: usize = 182;
/// USSD screen limit when any character forces UCS-2.
pub const USSD_UCS2_LIMIT: usize = 80;

/// How a text travels over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 7-bit default alphabet.
    Gsm7,
    /// 16-bit; one character outside GSM-7 turns the whole text into this.
    Ucs2,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        })
    }
}

/// The on-air size of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// Length in the encoding's units: septets for GSM-7 (extension
    /// characters count two), UTF-16 code units for UCS-2.
    pub units: usize,
}

impl Measure {
    /// Number of SMS parts this text needs (0 for an empty text).
    pub fn sms_segments(&self) -> usize {
        let (single, part) = match self.encoding {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        };
        match self.units {
            0 => 0,
            n if n <= single => 1,
            n => n.div_ceil(part),
        }
    }

    /// The USSD screen limit for this text's encoding.
    pub fn ussd_limit(&self) -> usize {
        match self.encoding {
            Encoding::Gsm7 => USSD_GSM7_LIMIT,
            Encoding::Ucs2 => USSD_UCS2_LIMIT,
        }
    }

    /// Whether the text fits one USSD screen.
    pub fn fits_ussd(&self) -> bool {
        self.units <= self.ussd_limit()
    }
}

fn gsm7_cost(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measure a text: its encoding and its length in that encoding's units.
pub fn measure(text: &str) -> Measure {
    let mut septets = 0;
    for c in text.chars() {
        match gsm7_cost(c) {
            Some(n) => septets += n,
            None => {
                return Measure {
                    encoding: Encoding::Ucs2,
                    units: text.encode_utf16().count(),
                };
            }
        }
    }
    Measure {
        encoding: Encoding::Gsm7,
        units: septets,
    }
}

/// Code points of the digit zero in the decimal-digit blocks a handset may
/// produce (ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali,
/// Thai, Myanmar, Khmer, Mongolian, full width, …).
const DIGIT_ZEROS: &[u32] = &[
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0xFF10,
];

/// The ASCII digit a character stands for, from any of the common scripts.
pub fn digit_value(c: char) -> Option<char> {
    if c.is_ascii_digit() {
        return Some(c);
    }
    let cp = c as u32;
    DIGIT_ZEROS
        .iter()
        .find(|&&zero| (zero..zero + 10).contains(&cp))
        .and_then(|&zero| char::from_digit(cp - zero, 10))
}

/// Whether a character breaks a line of text or controls a terminal: the C0
/// and C1 control characters (NUL, BEL, ESC, CR, LF, tab, DEL, NEL, …) and
/// the Unicode line and paragraph separators.
fn is_break(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether a character changes the direction text is shown in: the
/// marks (LRM, RLM, ALM), embeddings and overrides (LRE, RLE, PDF, LRO,
/// RLO) and isolates (LRI, RLI, FSI, PDI). One RLO in her location would
/// show the rest of the lawyer's offer right to left — the number to call
/// back and the code to accept with reversed (`Call +996555222050` read as
/// `050222555699+`). No answer in the hotline's languages needs one. Also
/// the invisible characters that show nothing but force a whole SMS into
/// UCS-2 and can hide text: zero-width space, joiners and non-joiners, the
/// word joiner, the byte-order mark, the soft hyphen and the Mongolian
/// vowel separator (hostile-traffic audit).
fn is_direction_control(c: char) -> bool {
    matches!(
        c,
        '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
    )
}

/// Normalise an answer typed on a handset: direction controls and
/// invisible characters (zero-width, soft hyphen, byte-order mark) are
/// removed, every run of control characters and line breaks (with the
/// white space around it) becomes one space, surrounding white space is
/// trimmed, and digits from other scripts (`１`, `٣`) become ASCII digits.
/// What she types is free text that ends up in a lawyer's SMS (`Where:
/// …`), so nothing in it may start a new line, ring, colour a terminal, or
/// reverse the text after it there.
pub fn normalize_input(raw: &str) -> String {
    if raw.chars().any(is_direction_control) {
        let kept: String = raw.chars().filter(|&c| !is_direction_control(c)).collect();
        return normalize_input(&kept);
    }
    let mut out = String::with_capacity(raw.len());
    // Whether a break is pending: a space is written before the next
    // character that is neither white space nor a break.
    let mut gap = false;
    for c in raw
        .trim_matches(|c: char| c.is_whitespace() || is_break(c))
        .chars()
    {
        if is_break(c) {
            gap = true;
            // Spaces written just before the break belong to the gap.
            let kept = out.trim_end_matches(|c: char| c.is_whitespace()).len();
            out.truncate(kept);
        } else if gap && c.is_whitespace() {
            // Still inside the gap.
        } else {
            if gap {
                out.push(' ');
                gap = false;
            }
            out.push(digit_value(c).unwrap_or(c));
        }
    }
    out
}

/// Cut a text to at most `max` characters (never inside a character).
pub fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_text_is_counted_in_septets() {
        let m = measure("Hello @ £5");
        assert_eq!(m.encoding, Encoding::Gsm7);
        assert_eq!(m.units, 10);
        assert_eq!(measure("a{b}").units, 6, "extension characters cost two");
        assert_eq!(measure("€").units, 2);
    }

    #[test]
    fn one_cyrillic_letter_makes_the_whole_text_ucs2() {
        let m = measure("Bishkek Ош");
        assert_eq!(m.encoding, Encoding::Ucs2);
        assert_eq!(m.units, 10);
        assert_eq!(m.ussd_limit(), 80);
        assert_eq!(measure("ң ө ү є і ї ґ").encoding, Encoding::Ucs2);
    }

    #[test]
    fn segments_follow_the_concatenation_sizes() {
        assert_eq!(measure(&"a".repeat(160)).sms_segments(), 1);
        assert_eq!(measure(&"a".repeat(161)).sms_segments(), 2);
        assert_eq!(measure(&"a".repeat(306)).sms_segments(), 2);
        assert_eq!(measure(&"a".repeat(307)).sms_segments(), 3);
        assert_eq!(measure(&"ж".repeat(70)).sms_segments(), 1);
        assert_eq!(measure(&"ж".repeat(71)).sms_segments(), 2);
        assert_eq!(measure(&"ж".repeat(134)).sms_segments(), 2);
        assert_eq!(measure(&"ж".repeat(135)).sms_segments(), 3);
        assert_eq!(measure("").sms_segments(), 0);
    }

    #[test]
    fn ussd_limits_depend_on_encoding() {
        assert!(measure(&"a".repeat(182)).fits_ussd());
        assert!(!measure(&"a".repeat(183)).fits_ussd());
        assert!(measure(&"д".repeat(80)).fits_ussd());
        assert!(!measure(&"д".repeat(81)).fits_ussd());
    }

    #[test]
    fn digits_from_other_scripts_become_ascii() {
        assert_eq!(normalize_input("  １ "), "1");
        assert_eq!(normalize_input("٣"), "3");
        assert_eq!(normalize_input("۴"), "4");
        assert_eq!(normalize_input("Ош 5"), "Ош 5");
    }

    #[test]
    fn control_characters_and_line_breaks_become_one_space() {
        assert_eq!(normalize_input("Station\r\n5"), "Station 5");
        assert_eq!(normalize_input("\u{1b}[31mRed\u{1b}[0m"), "[31mRed [0m");
        assert_eq!(normalize_input("a\u{0}\u{7}b"), "a b");
        assert_eq!(normalize_input("a \n b"), "a b");
        // Direction controls are dropped, wherever they are.
        assert_eq!(normalize_input("\u{202E}TSAE 5"), "TSAE 5");
        assert_eq!(
            normalize_input(" \u{200F} Ул.\u{202E}TSAE 5\u{2066}x\u{2069} \u{061C}"),
            "Ул.TSAE 5x"
        );
        assert_eq!(
            normalize_input("\u{202A}\u{202B}\u{202C}\u{202D}\u{200E}\u{2067}\u{2068}"),
            ""
        );
        // So are the invisible ones (they would force UCS-2 and hide text).
        assert_eq!(
            normalize_input("Street 1 X\u{200B}Y\u{200C}\u{200D}\u{FEFF}Z li\u{00AD}ne\u{2060}"),
            "Street 1 XYZ line"
        );
        assert_eq!(
            measure(&normalize_input("Street\u{200B} 1")).encoding,
            Encoding::Gsm7
        );
        assert_eq!(
            normalize_input("a\u{85}b\u{2028}c\u{9b}d\u{7f}e"),
            "a b c d e"
        );
        assert_eq!(normalize_input("\n\t 1 \r"), "1");
        assert_eq!(normalize_input("a  b"), "a  b", "plain spaces are hers");
        assert_eq!(normalize_input("\u{0}\u{1b}"), "");
    }

    proptest::proptest! {
        #[test]
        fn normalized_input_has_no_control_character_or_line_break(
            raw in "(\\PC|[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}\\u{2029} \\u{200e}\\u{200f}\\u{61c}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}]){0,40}",
        ) {
            let out = normalize_input(&raw);
            proptest::prop_assert!(!out.chars().any(is_break), "{:?} -> {:?}", raw, out);
            proptest::prop_assert!(!out.chars().any(is_direction_control), "{:?} -> {:?}", raw, out);
            // The rest as if she had not typed them.
            let raw: String = raw.chars().filter(|&c| !is_direction_control(c)).collect();
            proptest::prop_assert_eq!(out.trim(), out.as_str());
            // Idempotent: a stored answer normalises to itself.
            proptest::prop_assert_eq!(normalize_input(&out), out.clone());
            // What is not a break or white space is kept, in order.
            let kept = |s: &str| -> String {
                s.chars()
                    .filter(|&c| !is_break(c) && !c.is_whitespace())
                    .map(|c| digit_value(c).unwrap_or(c))
                    .collect()
            };
            proptest::prop_assert_eq!(kept(&out), kept(&raw));
            // A break is never dropped between two characters she typed.
            if raw.trim_matches(|c: char| c.is_whitespace() || is_break(c)).chars().any(is_break) {
                proptest::prop_assert!(out.contains(' '));
            }
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("Бишкек", 3), "Биш");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}

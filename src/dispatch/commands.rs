//! Lawyers' SMS commands (codes have four digits; five or six in the rare
//! case that a city's shorter codes are all in use), in any of the pilots' languages and in Latin
//! letters: `OK 4821`, `ДА 4821`, `NO 4821`, `НЕТ 4821`, `DONE 4821`, `ON`,
//! `OFF`, `STATUS`, `HELP`. Pure parsing; nothing here touches a case.
//!
//! A case with an alias is named by both its codes in what lawyers read
//! (`8516/2356`, [`crate::store::named_code`]): a code may be typed as
//! printed, `OK 8516/2356`, and the first of the two is used (either finds
//! the case).
//!
//! `DONE 4821` may be followed by outcome words (`DONE 4821 ОСВ, ЖАЛ`),
//! separated by spaces or commas; they are returned as typed (uppercase)
//! and looked up in the lawyers' texts by the caller
//! ([`crate::dispatch::texts::LawyerTexts::outcome`]).
//!
//! A city's coordinator also has `ASSIGN 4821 aida` (offer a case to a
//! lawyer directly), `COVER aida 18:00` (aida is on call in her place of
//! the roster until then), `CASES` (open cases in her city) and `WHO` (on
//! call now and next). A lawyer is named by roster id or name, in Latin or
//! Cyrillic letters. `<until>` is either a local time in the city, `HH:MM`
//! or `HH` (the next such time: `COVER aida 9:00` at 18:00 means tomorrow
//! morning), or a duration, a number followed by `m`, `h` or `d` (`90m`,
//! `12h`, `2d`; also `м`, `ч`, `д`, `г`), at most [`MAX_COVER_DAYS`] days.

/// What a lawyer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Accept a case (by code, or the only one pending).
    Accept(Option<String>),
    /// Decline a case.
    Decline(Option<String>),
    /// Close a case (or correct the outcome of one she closed).
    Done {
        /// The case code (`None`: the only case she has).
        code: Option<String>,
        /// Outcome words as typed, uppercase, in order (may be empty).
        outcomes: Vec<String>,
    },
    /// Go on call.
    On,
    /// Go off call.
    Off,
    /// List my cases.
    Status,
    /// The one-line help.
    Help,
    /// Coordinator: offer a case to a lawyer directly.
    Assign {
        /// The case code.
        code: String,
        /// The lawyer, as typed (lowercase).
        lawyer: String,
    },
    /// Coordinator: a lawyer covers the city's on-call duty until a time.
    Cover {
        /// The lawyer, as typed (lowercase).
        lawyer: String,
        /// The city, as typed (lowercase), when named (`COVER aida osh
        /// 18:00`): needed when she works in several of the coordinator's
        /// cities.
        city: Option<String>,
        /// Until when (`None`: not understood).
        until: Option<Until>,
    },
    /// Open cases in her city.
    Cases,
    /// On call now and next.
    Who,
    /// Anything else.
    Unknown,
}

/// How long a `COVER` lasts, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until the next `hour:minute`, local time in the city.
    At {
        /// 0–23.
        hour: u8,
        /// 0–59.
        minute: u8,
    },
    /// For this many minutes.
    For(u32),
}

/// Longest `COVER` accepted.
pub const MAX_COVER_DAYS: u32 = 14;

/// Parse a `COVER` end: `18:00`, `18`, `90m`, `12h`, `2d` (Cyrillic units too).
pub fn parse_until(s: &str) -> Option<Until> {
    let s = s.trim().to_lowercase();
    if let Some((h, m)) = s.split_once(':') {
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        return (hour < 24 && minute < 60 && m.len() == 2).then_some(Until::At { hour, minute });
    }
    if let Ok(hour) = s.parse::<u8>() {
        return (hour < 24).then_some(Until::At { hour, minute: 0 });
    }
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: u32 = digits.parse().ok()?;
    let per = match &s[digits.len()..] {
        "m" | "min" | "м" | "мин" | "хв" => 1,
        "h" | "ч" | "г" | "с" | "саат" => 60,
        "d" | "д" | "дн" | "к" | "күн" => 24 * 60,
        _ => return None,
    };
    let minutes = n.checked_mul(per)?;
    (minutes > 0 && minutes <= MAX_COVER_DAYS * 24 * 60).then_some(Until::For(minutes))
}

impl Command {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Accept(_) => "accept",
            Command::Decline(_) => "decline",
            Command::Done { .. } => "done",
            Command::On => "on",
            Command::Off => "off",
            Command::Status => "status",
            Command::Help => "help",
            Command::Assign { .. } => "assign",
            Command::Cover { .. } => "cover",
            Command::Cases => "cases",
            Command::Who => "who",
            Command::Unknown => "unknown",
        }
    }

    /// Every label, for zeroed metric series.
    pub const LABELS: [&'static str; 12] = [
        "accept", "decline", "done", "on", "off", "status", "help", "assign", "cover", "cases",
        "who", "unknown",
    ];
}

const ACCEPT: &[&str] = &[
    "OK",
    "ОК",
    "OKAY",
    "YES",
    "Y",
    "ДА",
    "DA",
    "ООБА",
    "OOBA",
    "ТАК",
    "TAK",
    "ПРИНЯТЬ",
    "ACCEPT",
];
const DECLINE: &[&str] = &[
    "NO", "N", "НЕТ", "NET", "ЖОК", "JOK", "ZHOK", "НІ", "NI", "DECLINE",
];
const DONE: &[&str] = &[
    "DONE",
    "CLOSE",
    "ГОТОВО",
    "GOTOVO",
    "ЗАКРЫТЬ",
    "ЗАКРЫТО",
    "ЗАКРИТИ",
    "ЗАКРИТО",
    "БҮТТҮ",
    "БУТТУ",
    "BUTTU",
];
const ON: &[&str] = &["ON", "ВКЛ", "VKL"];
const OFF: &[&str] = &["OFF", "ВЫКЛ", "VYKL", "ВИМК"];
const STATUS: &[&str] = &["STATUS", "СТАТУС", "ДЕЛА", "СПРАВИ", "ИШТЕР"];
const HELP: &[&str] = &["HELP", "?", "ПОМОЩЬ", "ДОПОМОГА", "ЖАРДАМ", "КОМАНДЫ"];
const ASSIGN: &[&str] = &["ASSIGN", "НАЗНАЧИТЬ", "ПРИЗНАЧИТИ", "ДАЙЫНДОО", "БЕР"];
const COVER: &[&str] = &["COVER", "ЗАМЕНА", "ЗАМІНА", "АЛМАШТЫРУУ"];
const CASES: &[&str] = &["CASES", "ОТКРЫТЫЕ", "ВІДКРИТІ", "АЧЫК"];
const WHO: &[&str] = &["WHO", "КТО", "ХТО", "КИМ"];

/// Latin for the Cyrillic capitals that look the same (`О`, `К`, `А`, …),
/// so that a word typed across two keyboard layouts (`Оk`: a Cyrillic О
/// and a Latin k; `ДA`) is still the word it looks like.
fn fold_look_alikes(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            'А' => 'A',
            'В' => 'B',
            'Е' => 'E',
            'К' => 'K',
            'М' => 'M',
            'Н' => 'H',
            'О' => 'O',
            'Р' => 'P',
            'С' => 'C',
            'Т' => 'T',
            'У' => 'Y',
            'Х' => 'X',
            'І' => 'I',
            c => c,
        })
        .collect()
}

/// Whether the (uppercased) `word` is one of `list`, letters that look
/// alike in Latin and Cyrillic counting as the same.
fn is_one_of(list: &[&str], word: &str) -> bool {
    list.contains(&word) || {
        let folded = fold_look_alikes(word);
        list.iter().any(|w| fold_look_alikes(w) == folded)
    }
}

/// Whether `s` is a case code: four to six ASCII digits.
fn is_code(s: &str) -> bool {
    (4..=6).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
}

/// The code of a typed code word: a code, or a code and its alias as
/// messages print them (`8516/2356`): then the first (both name the case).
/// `None` when it is neither.
fn code_of(word: &str) -> Option<&str> {
    let (first, alias) = match word.split_once('/') {
        Some((first, alias)) => (first, Some(alias)),
        None => (word, None),
    };
    (is_code(first) && alias.is_none_or(is_code)).then_some(first)
}

/// The coordinators' commands (`ASSIGN 4821 aida`, `COVER aida 18:00`,
/// `CASES`, `WHO`), or `None` for anything else.
fn coordinator_command(normalized: &str) -> Option<Command> {
    let words: Vec<&str> = normalized.split_whitespace().collect();
    let word = words.first()?.trim_matches(|c: char| !c.is_alphanumeric());
    if is_one_of(ASSIGN, word) {
        return Some(match words[1..] {
            [code, lawyer] if code_of(code).is_some() => Command::Assign {
                code: code_of(code).unwrap_or(code).to_owned(),
                lawyer: lawyer.to_lowercase(),
            },
            _ => Command::Unknown,
        });
    }
    if is_one_of(COVER, word) {
        return Some(match words[1..] {
            [lawyer, until] => Command::Cover {
                lawyer: lawyer.to_lowercase(),
                city: None,
                until: parse_until(until),
            },
            [lawyer, city, until] => Command::Cover {
                lawyer: lawyer.to_lowercase(),
                city: Some(city.to_lowercase()),
                until: parse_until(until),
            },
            _ => Command::Unknown,
        });
    }
    let alone = words.len() == 1;
    if alone && is_one_of(CASES, word) {
        return Some(Command::Cases);
    }
    if alone && is_one_of(WHO, word) {
        return Some(Command::Who);
    }
    None
}

/// Longest outcome word accepted by the parser (the configured ones are
/// shorter; this only bounds what an unknown word can cost).
pub const MAX_OUTCOME_WORD: usize = 24;

/// At most this many outcome words in one `DONE`.
pub const MAX_OUTCOMES: usize = 8;

/// `DONE [code] [outcome …]`, or `None` when the first word is not `DONE`.
fn done_command(normalized: &str) -> Option<Command> {
    let mut tokens = normalized
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .filter(|t| !t.is_empty());
    let first = tokens.next()?;
    let split = first
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(first.len());
    let (word, glued) = first.split_at(split);
    if !is_one_of(DONE, word.trim_matches(|c: char| !c.is_alphanumeric())) {
        return None;
    }
    let mut rest: Vec<&str> = tokens.collect();
    let code = if !glued.is_empty() {
        Some(glued)
    } else if rest
        .first()
        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()))
    {
        Some(rest.remove(0))
    } else {
        None
    };
    let code = match code.map(|c| code_of(c.trim_end_matches(|c: char| !c.is_alphanumeric()))) {
        Some(Some(c)) => Some(c.to_owned()),
        Some(None) => return Some(Command::Unknown),
        None => None,
    };
    let outcomes: Vec<String> = rest
        .iter()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let too_long = outcomes
        .iter()
        .any(|w| w.chars().count() > MAX_OUTCOME_WORD);
    if outcomes.len() > MAX_OUTCOMES || too_long {
        // Kept as one word nobody configures: she is told the valid codes.
        return Some(Command::Done {
            code,
            outcomes: vec!["?".to_owned()],
        });
    }
    Some(Command::Done { code, outcomes })
}

/// Parse a lawyer's SMS. The word is matched in any case; a four-digit code
/// may follow, with or without a space, in any script's digits.
pub fn parse(text: &str) -> Command {
    let normalized = crate::text::normalize_input(text).to_uppercase();
    if let Some(cmd) = coordinator_command(&normalized) {
        return cmd;
    }
    if let Some(cmd) = done_command(&normalized) {
        return cmd;
    }
    // Split "OK4821" into "OK" and "4821".
    let split_at = normalized
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(normalized.len());
    let (word_part, digits_part) = normalized.split_at(split_at);
    let word = word_part
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '?');
    let rest_words = word_part.split_whitespace().count();
    // The code, or the code and its alias as printed (`8516/2356`).
    let code = digits_part
        .split(|c: char| !c.is_ascii_digit() && c != '/')
        .next()
        .map(|d| d.trim_end_matches('/'))
        .and_then(code_of)
        .map(str::to_owned);
    let has_digits = !digits_part.trim().is_empty();
    if rest_words > 1 {
        return Command::Unknown;
    }
    let with_code = |f: fn(Option<String>) -> Command| {
        if has_digits && code.is_none() {
            Command::Unknown
        } else {
            f(code.clone())
        }
    };
    if is_one_of(ACCEPT, word) {
        with_code(Command::Accept)
    } else if is_one_of(DECLINE, word) {
        with_code(Command::Decline)
    } else if has_digits {
        Command::Unknown
    } else if is_one_of(ON, word) {
        Command::On
    } else if is_one_of(OFF, word) {
        Command::Off
    } else if is_one_of(STATUS, word) {
        Command::Status
    } else if is_one_of(HELP, word) || word.is_empty() && normalized.trim() == "?" {
        Command::Help
    } else {
        Command::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    fn done(code: Option<String>, outcomes: &[&str]) -> Command {
        Command::Done {
            code,
            outcomes: outcomes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn done_takes_outcome_words_after_the_code() {
        assert_eq!(parse("DONE 4821 ОСВ"), done(c("4821"), &["ОСВ"]));
        assert_eq!(
            parse("готово 4821 осв, жал"),
            done(c("4821"), &["ОСВ", "ЖАЛ"])
        );
        assert_eq!(
            parse("done4821 rel,compl;med."),
            done(c("4821"), &["REL", "COMPL", "MED"])
        );
        assert_eq!(parse("бүттү ４８２１ бош"), done(c("4821"), &["БОШ"]));
        assert_eq!(parse("DONE rel"), done(None, &["REL"]));
        assert_eq!(parse("DONE 48 rel"), Command::Unknown);
        assert_eq!(parse("DONE 4821012 rel"), Command::Unknown);
        let many = format!("DONE 4821{}", " rel".repeat(MAX_OUTCOMES + 1));
        assert_eq!(parse(&many), done(c("4821"), &["?"]));
        let long = format!("DONE 4821 {}", "x".repeat(MAX_OUTCOME_WORD + 1));
        assert_eq!(parse(&long), done(c("4821"), &["?"]));
    }

    #[test]
    fn accepts_in_every_language_and_in_latin_letters() {
        for text in [
            "OK 4821",
            "ok 4821",
            "OK4821",
            "ОК 4821",
            "Да 4821",
            "da 4821",
            "Ооба 4821",
            "так 4821",
            " yes 4821 ",
            "OK ４８２１",
        ] {
            assert_eq!(parse(text), Command::Accept(c("4821")), "{text}");
        }
        assert_eq!(parse("OK"), Command::Accept(None));
        assert_eq!(parse("ок."), Command::Accept(None));
    }

    #[test]
    fn a_word_typed_across_two_keyboard_layouts_is_the_word_it_looks_like() {
        // A Cyrillic О with a Latin k; a Cyrillic Д with a Latin A; Latin
        // H and E with a Cyrillic Т: what a phone switching layouts
        // mid-word sends (an audit got the help text for these).
        assert_eq!(parse("Оk 4336"), Command::Accept(c("4336")));
        assert_eq!(parse("ДA 4012"), Command::Accept(c("4012")));
        assert_eq!(parse("HEТ 4012"), Command::Decline(c("4012")));
        assert_eq!(parse("CTATУC"), Command::Status);
        assert_eq!(parse("DОNE 4012"), parse("DONE 4012"));
        // No two commands' words become one when folded.
        let lists: [(&str, &[&str]); 12] = [
            ("accept", ACCEPT),
            ("decline", DECLINE),
            ("done", DONE),
            ("on", ON),
            ("off", OFF),
            ("status", STATUS),
            ("help", HELP),
            ("assign", ASSIGN),
            ("cover", COVER),
            ("cases", CASES),
            ("who", WHO),
            ("unknown", &[]),
        ];
        let mut seen = std::collections::BTreeMap::new();
        for (name, list) in lists {
            for w in list {
                if let Some(other) = seen.insert(fold_look_alikes(w), name) {
                    assert_eq!(other, name, "{w} folds into a word of {other}");
                }
            }
        }
    }

    #[test]
    fn declines_closes_and_the_rest() {
        for text in ["NO 4821", "нет 4821", "Жок 4821", "ні 4821", "net 4821"] {
            assert_eq!(parse(text), Command::Decline(c("4821")), "{text}");
        }
        for text in [
            "DONE 4821",
            "готово 4821",
            "закрыто 4821",
            "бүттү 4821",
            "done4821.",
        ] {
            assert_eq!(parse(text), done(c("4821"), &[]), "{text}");
        }
        assert_eq!(parse("DONE"), done(None, &[]));
        assert_eq!(parse("on"), Command::On);
        assert_eq!(parse("OFF"), Command::Off);
        assert_eq!(parse("выкл"), Command::Off);
        assert_eq!(parse("status"), Command::Status);
        assert_eq!(parse("Статус"), Command::Status);
        assert_eq!(parse("help"), Command::Help);
        assert_eq!(parse("?"), Command::Help);
        assert_eq!(parse("ПОМОЩЬ"), Command::Help);
    }

    #[test]
    fn coordinator_commands_in_latin_and_cyrillic() {
        assert_eq!(
            parse("assign 4821 Aida"),
            Command::Assign {
                code: "4821".into(),
                lawyer: "aida".into()
            }
        );
        assert_eq!(
            parse("НАЗНАЧИТЬ 4821 Аида"),
            Command::Assign {
                code: "4821".into(),
                lawyer: "аида".into()
            }
        );
        assert_eq!(
            parse("COVER aida 18:00"),
            Command::Cover {
                lawyer: "aida".into(),
                city: None,
                until: Some(Until::At {
                    hour: 18,
                    minute: 0
                })
            }
        );
        assert_eq!(
            parse("COVER aida Ош 18:00"),
            Command::Cover {
                lawyer: "aida".into(),
                city: Some("ош".into()),
                until: Some(Until::At {
                    hour: 18,
                    minute: 0
                })
            }
        );
        assert_eq!(
            parse("замена Бакыт 2д"),
            Command::Cover {
                lawyer: "бакыт".into(),
                city: None,
                until: Some(Until::For(2 * 24 * 60))
            }
        );
        assert_eq!(parse("cases"), Command::Cases);
        assert_eq!(parse("Кто"), Command::Who);
        assert_eq!(parse("ASSIGN aida"), Command::Unknown);
        assert_eq!(parse("ASSIGN 48 aida"), Command::Unknown);
    }

    #[test]
    fn cover_ends_parse_and_are_bounded() {
        assert_eq!(parse_until("9"), Some(Until::At { hour: 9, minute: 0 }));
        assert_eq!(parse_until("90m"), Some(Until::For(90)));
        assert_eq!(parse_until("12h"), Some(Until::For(720)));
        for bad in ["24:00", "18:5", "0d", "15d", "x", "2w", ""] {
            assert_eq!(parse_until(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_code_with_its_alias_as_printed_names_the_case_by_the_first() {
        for text in [
            "OK 8516/2356",
            "ok8516/2356",
            "да 8516/2356.",
            "OK ８５１６／２３５６",
        ] {
            assert_eq!(parse(text), Command::Accept(c("8516")), "{text}");
        }
        assert_eq!(parse("OK 2356"), Command::Accept(c("2356")));
        assert_eq!(parse("NO 8516/2356"), Command::Decline(c("8516")));
        assert_eq!(parse("DONE 8516/2356 rel"), done(c("8516"), &["REL"]));
        assert_eq!(parse("done8516/123456"), done(c("8516"), &[]));
        assert_eq!(
            parse("ASSIGN 8516/2356 aida"),
            Command::Assign {
                code: "8516".into(),
                lawyer: "aida".into()
            }
        );
        for text in [
            "OK 8516/23",
            "OK 8516/2356/1234",
            "DONE 8516/23",
            "DONE 8516/2356/1234",
            "ASSIGN 8516/23 aida",
        ] {
            assert_eq!(parse(text), Command::Unknown, "{text}");
        }
    }

    #[test]
    fn five_digit_codes_work_too() {
        assert_eq!(parse("OK 48210"), Command::Accept(c("48210")));
    }

    #[test]
    fn anything_else_is_unknown() {
        for text in [
            "",
            "hello",
            "OK 48",
            "OK 4821012",
            "OFF 4821",
            "please accept 4821",
            "4821",
            "DONE 12a4",
        ] {
            assert_eq!(parse(text), Command::Unknown, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn done_words_are_bounded_and_never_hold_a_separator(text in "\\PC{0,200}") {
            if let Command::Done { code, outcomes } = parse(&format!("DONE {text}")) {
                proptest::prop_assert!(outcomes.len() <= MAX_OUTCOMES);
                for w in &outcomes {
                    proptest::prop_assert!(!w.is_empty() && w.chars().count() <= MAX_OUTCOME_WORD);
                    proptest::prop_assert!(!w.contains(|c: char| c.is_whitespace() || c == ','));
                }
                if let Some(code) = code {
                    proptest::prop_assert!((4..=6).contains(&code.len()));
                    proptest::prop_assert!(code.chars().all(|c| c.is_ascii_digit()));
                }
            }
        }
    }
}

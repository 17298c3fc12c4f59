//! Lawyers' SMS commands (codes have four digits; five or six in the rare
//! case that a city's shorter codes are all in use), in any of the pilots' languages and in Latin
//! letters: `OK 4821`, `ДА 4821`, `NO 4821`, `НЕТ 4821`, `DONE 4821`, `ON`,
//! `OFF`, `STATUS`, `HELP`. Pure parsing; nothing here touches a case.

/// What a lawyer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Accept a case (by code, or the only one pending).
    Accept(Option<String>),
    /// Decline a case.
    Decline(Option<String>),
    /// Close a case.
    Done(Option<String>),
    /// Go on call.
    On,
    /// Go off call.
    Off,
    /// List my cases.
    Status,
    /// The one-line help.
    Help,
    /// Anything else.
    Unknown,
}

impl Command {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Accept(_) => "accept",
            Command::Decline(_) => "decline",
            Command::Done(_) => "done",
            Command::On => "on",
            Command::Off => "off",
            Command::Status => "status",
            Command::Help => "help",
            Command::Unknown => "unknown",
        }
    }

    /// Every label, for zeroed metric series.
    pub const LABELS: [&'static str; 8] = [
        "accept", "decline", "done", "on", "off", "status", "help", "unknown",
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

/// Parse a lawyer's SMS. The word is matched in any case; a four-digit code
/// may follow, with or without a space, in any script's digits.
pub fn parse(text: &str) -> Command {
    let normalized = crate::text::normalize_input(text).to_uppercase();
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
    let code = digits_part
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .filter(|d| (4..=6).contains(&d.len()))
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
    if ACCEPT.contains(&word) {
        with_code(Command::Accept)
    } else if DECLINE.contains(&word) {
        with_code(Command::Decline)
    } else if DONE.contains(&word) {
        with_code(Command::Done)
    } else if has_digits {
        Command::Unknown
    } else if ON.contains(&word) {
        Command::On
    } else if OFF.contains(&word) {
        Command::Off
    } else if STATUS.contains(&word) {
        Command::Status
    } else if HELP.contains(&word) || word.is_empty() && normalized.trim() == "?" {
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
    fn declines_closes_and_the_rest() {
        for text in ["NO 4821", "нет 4821", "Жок 4821", "ні 4821", "net 4821"] {
            assert_eq!(parse(text), Command::Decline(c("4821")), "{text}");
        }
        for text in ["DONE 4821", "готово 4821", "закрыто 4821", "бүттү 4821"] {
            assert_eq!(parse(text), Command::Done(c("4821")), "{text}");
        }
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
}

//! What lawyers and coordinators read: `config/lawyer_texts.toml`, one table
//! per language. Loaded and checked like everything else: a missing text or
//! an unknown placeholder is a problem naming its key.
//!
//! Each language also lists the case outcomes a lawyer may give with
//! `DONE 4821 <codes>` (`[LANG.outcomes]`: a stable id → the short words
//! lawyers type and a label). Every language lists the same ids; a word
//! means one id whichever language it is in, and words from every language
//! (Latin-letter ones included) are accepted from every lawyer.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::dispatch::roster::Roster;
use crate::problem::{Problem, quoted};

/// The texts of one language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    /// A case offered.
    pub offer: String,
    /// To the lawyer who accepted.
    pub accepted: String,
    /// To other lawyers offered a case someone accepted.
    pub taken: String,
    /// To a lawyer who declined.
    pub declined: String,
    /// To the lawyer who closed a case (or corrected its outcome): `{list}`
    /// the outcome labels, or `no_outcome`.
    pub closed: String,
    /// (To a coordinator) `closed` for a case nobody had accepted: it
    /// counts as unanswered; `{list}` as in `closed`.
    pub closed_open: String,
    /// To a lawyer holding the offer of a case the coordinator `{name}`
    /// closed before anyone accepted it.
    pub closed_notice: String,
    /// `{list}` of `closed` when no outcome was given.
    pub no_outcome: String,
    /// `DONE` with an outcome word not configured: nothing changed;
    /// `{list}` the valid codes.
    pub outcome_bad: String,
    /// Accepting a case someone else has.
    pub already_taken: String,
    /// Accepting one's own case again.
    pub already_yours: String,
    /// A code that finds no case.
    pub not_found: String,
    /// A command about a case not offered to this lawyer.
    pub not_offered: String,
    /// A command about a closed case.
    pub is_closed: String,
    /// A bare `OK` with several cases pending.
    pub which: String,
    /// A bare `OK` with none pending.
    pub none_pending: String,
    /// After `ON`.
    pub on: String,
    /// After `OFF`.
    pub off: String,
    /// `STATUS` with cases.
    pub status: String,
    /// `STATUS` without.
    pub status_none: String,
    /// `HELP` and unknown commands: one line; `{list}` the outcome codes.
    pub help: String,
    /// To the coordinator when a case went through every level unaccepted.
    pub unanswered: String,
    /// For a location not given.
    pub unknown: String,
    /// (To a coordinator) `ASSIGN`: the case was offered to `{name}`.
    pub assigned: String,
    /// `ASSIGN` or `COVER` from someone who is not a coordinator.
    pub not_coordinator: String,
    /// (To a coordinator) `ASSIGN` to `{name}`, whose own number opened
    /// case `{code}` (she asked for help herself): refused.
    pub own_case: String,
    /// `ASSIGN` or `COVER` naming nobody in the roster.
    pub no_lawyer: String,
    /// `ASSIGN` or `COVER` of `{name}`, who does not work in `{city}` (the
    /// case's city; for `COVER`, the city named or the coordinator's
    /// cities): refused, nothing changed.
    pub not_in_city: String,
    /// `COVER` of a lawyer who works in several of the coordinator's
    /// cities (`{list}`, their names) without naming one: an example with
    /// `{name}` her roster id and `{city}` the first city's id.
    pub cover_city: String,
    /// `COVER` done: `{name}` is on call in `{city}` until `{until}`.
    pub covered: String,
    /// `COVER` with an end not understood: an example.
    pub cover_bad: String,
    /// `CASES`: open cases in `{city}`.
    pub cases: String,
    /// `CASES` with none open.
    pub cases_none: String,
    /// `WHO`: on call now (`{name}`) and next (`{list}`) in `{city}`.
    pub who: String,
    /// In `WHO`, for nobody on call.
    pub nobody: String,
    /// `hotline test-sms`: the welcome, with the commands; asks for `OK`.
    pub welcome: String,
    /// A bare `OK` answering the welcome: her number is confirmed.
    pub verified: String,
    /// Situation names by flow value (`detained_self`, …).
    pub situations: BTreeMap<String, String>,
    /// Abuse names by flow value (`beating`, …), each with its own spacing.
    pub abuse: BTreeMap<String, String>,
    /// The name of the language she chose, by code (`ky` → `кырг.`), for
    /// an offer's `{language}`.
    pub languages: BTreeMap<String, String>,
    /// An offer's `{callback_note}` when the number to call is the phone
    /// she called from (which may be in other hands).
    pub own_phone: String,
    /// An offer's `{callback_note}` when she typed another number.
    pub other_phone: String,
    /// Case outcomes by stable id (`released`, `complaint`, …).
    pub outcomes: BTreeMap<String, OutcomeText>,
}

/// One case outcome in one language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeText {
    /// The short words lawyers type (the first is shown in `HELP`).
    pub words: Vec<String>,
    /// What the lawyer is told was recorded.
    pub label: String,
}

/// Longest outcome word (lawyers type them on basic phones).
pub const MAX_WORD_CHARS: usize = 10;

impl Texts {
    /// The outcome codes for `HELP` and `outcome_bad`: the first word of
    /// each outcome, space-separated.
    pub fn outcome_codes(&self) -> String {
        self.outcomes
            .values()
            .filter_map(|o| o.words.first())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The labels of outcome ids (`no_outcome` for none).
    pub fn outcome_labels(&self, ids: &[String]) -> String {
        if ids.is_empty() {
            return self.no_outcome.clone();
        }
        ids.iter()
            .map(|id| {
                self.outcomes
                    .get(id)
                    .map_or(id.as_str(), |o| o.label.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `HELP`, with the outcome codes.
    pub fn help_text(&self) -> String {
        crate::template::render(&self.help, &[("list", &self.outcome_codes())])
    }

    /// `outcome_bad`, with the outcome codes.
    pub fn outcome_bad_text(&self) -> String {
        crate::template::render(&self.outcome_bad, &[("list", &self.outcome_codes())])
    }
}

/// Every language's texts.
#[derive(Debug, Clone, Default)]
pub struct LawyerTexts {
    by_lang: BTreeMap<String, Texts>,
    /// Every outcome word (uppercase), in any language → its id.
    words: BTreeMap<String, String>,
}

const PLACEHOLDERS: &[&str] = &[
    "code",
    "city",
    "situation",
    "abuse",
    "location",
    "callback",
    "callback_note",
    "language",
    "minutes",
    "name",
    "list",
    "count",
    "until",
];

impl LawyerTexts {
    /// Parse the file's text (`file` names it in problems).
    ///
    /// # Errors
    /// The problems found.
    pub fn parse(text: &str, file: &str) -> Result<LawyerTexts, Vec<Problem>> {
        let by_lang: BTreeMap<String, Texts> = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        "line {}",
                        text[..s.start.min(text.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            vec![Problem::error(file, line, e.message().to_owned())]
        })?;
        let mut problems = Vec::new();
        if !by_lang.contains_key("en") {
            problems.push(Problem::error(
                file,
                "en",
                "English texts are needed as the fallback",
            ));
        }
        for (lang, t) in &by_lang {
            let fields = [
                ("offer", &t.offer),
                ("accepted", &t.accepted),
                ("taken", &t.taken),
                ("declined", &t.declined),
                ("closed", &t.closed),
                ("closed_open", &t.closed_open),
                ("closed_notice", &t.closed_notice),
                ("no_outcome", &t.no_outcome),
                ("outcome_bad", &t.outcome_bad),
                ("already_taken", &t.already_taken),
                ("already_yours", &t.already_yours),
                ("not_found", &t.not_found),
                ("not_offered", &t.not_offered),
                ("is_closed", &t.is_closed),
                ("which", &t.which),
                ("none_pending", &t.none_pending),
                ("on", &t.on),
                ("off", &t.off),
                ("status", &t.status),
                ("status_none", &t.status_none),
                ("help", &t.help),
                ("unanswered", &t.unanswered),
                ("unknown", &t.unknown),
                ("own_phone", &t.own_phone),
                ("other_phone", &t.other_phone),
                ("assigned", &t.assigned),
                ("not_coordinator", &t.not_coordinator),
                ("own_case", &t.own_case),
                ("no_lawyer", &t.no_lawyer),
                ("not_in_city", &t.not_in_city),
                ("cover_city", &t.cover_city),
                ("covered", &t.covered),
                ("cover_bad", &t.cover_bad),
                ("cases", &t.cases),
                ("cases_none", &t.cases_none),
                ("who", &t.who),
                ("nobody", &t.nobody),
                ("welcome", &t.welcome),
                ("verified", &t.verified),
            ];
            for (key, value) in fields {
                if value.trim().is_empty() {
                    problems.push(Problem::error(
                        file,
                        format!("{lang}.{key}"),
                        "must not be empty",
                    ));
                }
                let mut rest = value.as_str();
                while let Some(start) = rest.find('{') {
                    let Some(len) = rest[start..].find('}') else {
                        break;
                    };
                    let name = &rest[start + 1..start + len];
                    if !PLACEHOLDERS.contains(&name) {
                        problems.push(Problem::error(
                            file,
                            quoted(&format!("{lang}.{key}"), value),
                            format!("unknown placeholder {{{name}}}"),
                        ));
                    }
                    rest = &rest[start + len..];
                }
            }
        }
        let words = outcome_problems(&by_lang, file, &mut problems);
        if problems.is_empty() {
            Ok(LawyerTexts { by_lang, words })
        } else {
            Err(problems)
        }
    }

    /// Load from a file.
    ///
    /// # Errors
    /// The problems found, or that it cannot be read.
    pub fn load(path: &Path, display: &str) -> Result<LawyerTexts, Vec<Problem>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![Problem::error(display, "", format!("cannot read: {e}"))])?;
        Self::parse(&text, display)
    }

    /// The outcome id a word means (any language, any case), if any.
    pub fn outcome(&self, word: &str) -> Option<&str> {
        self.words.get(&word.to_uppercase()).map(String::as_str)
    }

    /// Every outcome id, in order.
    pub fn outcome_ids(&self) -> Vec<&str> {
        self.by_lang
            .get("en")
            .or_else(|| self.by_lang.values().next())
            .map(|t| t.outcomes.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every outcome word with its id, for documentation and tests.
    pub fn outcome_words(&self) -> impl Iterator<Item = (&str, &str)> {
        self.words.iter().map(|(w, id)| (w.as_str(), id.as_str()))
    }

    /// Warnings for `HELP` and `outcome_bad` texts that, with the outcome
    /// codes filled in, need more than two SMS parts.
    pub fn check_sizes(&self, file: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (lang, t) in &self.by_lang {
            for (key, text) in [
                ("help", t.help_text()),
                ("outcome_bad", t.outcome_bad_text()),
            ] {
                let m = crate::text::measure(&text);
                if m.sms_segments() > 2 {
                    problems.push(Problem::warning(
                        file,
                        format!("{lang}.{key}"),
                        format!(
                            "with the outcome codes it is {} characters in {} ({} SMS parts): shorten the text or the codes",
                            m.units,
                            m.encoding,
                            m.sms_segments()
                        ),
                    ));
                }
            }
        }
        problems
    }

    /// Every language with texts.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_lang.keys().map(String::as_str)
    }

    /// Warnings for every lawyer of `roster` whose `languages` name a
    /// language these texts (`file`) lack: her messages are written in the
    /// first of her languages that has texts, else in English
    /// ([`LawyerTexts::for_langs`]); each warning says which.
    pub fn missing_languages(&self, roster: &Roster, file: &str) -> Vec<Problem> {
        let fallback = if self.by_lang.contains_key("en") {
            "en"
        } else {
            self.by_lang.keys().next().map_or("en", String::as_str)
        };
        let mut problems = Vec::new();
        for lawyer in roster.lawyers() {
            let has = |l: &&String| self.by_lang.contains_key(*l);
            let used = lawyer.languages.iter().find(has);
            for lang in lawyer.languages.iter().filter(|l| !has(l)) {
                let instead = match used {
                    Some(u) => {
                        format!("her messages fall back to {u}, the first of her languages it has")
                    }
                    None => format!(
                        "none of her languages has texts: her messages fall back to {fallback}"
                    ),
                };
                problems.push(Problem::warning(
                    &roster.source,
                    quoted(&format!("lawyers.{}.languages", lawyer.id.as_str()), lang),
                    format!("{file} has no [{lang}] texts: {instead}"),
                ));
            }
        }
        problems
    }

    /// The texts for the first of `langs` that has them, else English.
    pub fn for_langs(&self, langs: &[String]) -> &Texts {
        langs
            .iter()
            .find_map(|l| self.by_lang.get(l))
            .or_else(|| self.by_lang.get("en"))
            .or_else(|| self.by_lang.values().next())
            .expect("validated: at least English")
    }
}

/// Check the outcome tables: the same ids in every language (as English),
/// ids `[a-z_]`, labels and words present, words short, letters only, and
/// no word meaning two ids. Returns every word (uppercase) → its id.
fn outcome_problems(
    by_lang: &BTreeMap<String, Texts>,
    file: &str,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut words: BTreeMap<String, String> = BTreeMap::new();
    let reference: Vec<&String> = by_lang
        .get("en")
        .map(|t| t.outcomes.keys().collect())
        .unwrap_or_default();
    if by_lang.contains_key("en") && reference.is_empty() {
        problems.push(Problem::error(
            file,
            "en.outcomes",
            "list at least one outcome",
        ));
    }
    for (lang, t) in by_lang {
        for id in &reference {
            if !t.outcomes.contains_key(*id) {
                problems.push(Problem::error(
                    file,
                    format!("{lang}.outcomes"),
                    format!("outcome {id} is missing (every language lists the same ids as en)"),
                ));
            }
        }
        for (id, o) in &t.outcomes {
            let key = format!("{lang}.outcomes.{id}");
            if !reference.contains(&id) {
                problems.push(Problem::error(
                    file,
                    &key,
                    "not an outcome in en (every language lists the same ids)",
                ));
            }
            outcome_entry_problems(file, &key, id, o, problems);
            for w in &o.words {
                let upper = w.to_uppercase();
                match words.get(&upper) {
                    Some(other) if other != id => problems.push(Problem::error(
                        file,
                        quoted(&format!("{key}.words"), w),
                        format!("this word already means outcome {other}: a word means one outcome in every language"),
                    )),
                    _ => {
                        words.insert(upper, id.clone());
                    }
                }
            }
        }
    }
    for id in &reference {
        let latin = words
            .iter()
            .any(|(w, i)| i == *id && w.chars().all(|c| c.is_ascii_alphabetic()));
        if !latin {
            problems.push(Problem::error(
                file,
                format!("en.outcomes.{id}.words"),
                "give at least one word in Latin letters (for phones without Cyrillic)",
            ));
        }
    }
    words
}

/// One outcome's own problems: its id, label and words.
fn outcome_entry_problems(
    file: &str,
    key: &str,
    id: &str,
    o: &OutcomeText,
    problems: &mut Vec<Problem>,
) {
    let id_ok = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && id != super::lifecycle::NOT_GIVEN;
    if !id_ok {
        problems.push(Problem::error(
            file,
            key,
            "an outcome id is lowercase Latin letters and `_`, and not `not_given`",
        ));
    }
    if o.label.trim().is_empty() || o.label.contains('{') {
        problems.push(Problem::error(
            file,
            format!("{key}.label"),
            "must be a short text without placeholders",
        ));
    }
    if o.words.is_empty() {
        problems.push(Problem::error(
            file,
            format!("{key}.words"),
            "list at least one word",
        ));
    }
    for w in &o.words {
        let ok =
            (1..=MAX_WORD_CHARS).contains(&w.chars().count()) && w.chars().all(char::is_alphabetic);
        if !ok {
            problems.push(Problem::error(
                file,
                quoted(&format!("{key}.words"), w),
                format!("an outcome word is 1 to {MAX_WORD_CHARS} letters, no digits, spaces or punctuation"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_texts_load_and_fall_back_to_english() {
        let t = LawyerTexts::parse(
            include_str!("../../config/lawyer_texts.toml"),
            "config/lawyer_texts.toml",
        )
        .unwrap();
        assert!(t.for_langs(&["ky".into()]).offer.contains("Кайда"));
        assert!(t.for_langs(&["ka".into()]).offer.contains("Where"));
        assert!(
            t.for_langs(&["ka".into(), "uk".into()])
                .offer
                .contains("Де")
        );
        for lang in ["ru", "ky", "uk", "en"] {
            let x = t.for_langs(&[lang.into()]);
            for s in ["detained_self", "detained_other", "report"] {
                assert!(x.situations.contains_key(s), "{lang} {s}");
            }
            for a in ["beating", "sex", "bribe", "planted", "other"] {
                assert!(x.abuse.contains_key(a), "{lang} {a}");
            }
        }
    }

    #[test]
    fn a_lawyer_language_without_texts_is_a_warning_naming_the_fallback() {
        let file = "config/lawyer_texts.toml";
        let t = LawyerTexts::parse(include_str!("../../config/lawyer_texts.toml"), file).unwrap();
        let demo = include_str!("../../config/demo-roster.toml");
        let roster = |text: &str| {
            let env: BTreeMap<&str, &str> = BTreeMap::new();
            crate::dispatch::roster::parse(
                text,
                "config/demo-roster.toml",
                Path::new("config"),
                &env,
            )
            .unwrap()
            .0
        };
        // The shipped demo roster: every language has texts.
        assert_eq!(t.missing_languages(&roster(demo), file), Vec::new());

        // Bermet reads Georgian first, then Kyrgyz; Aigul only Georgian.
        let edited = demo
            .replacen(
                "name = \"Bermet (demo)\"\nlanguages = [\"en\", \"ky\"]",
                "name = \"Bermet (demo)\"\nlanguages = [\"ka\", \"ky\"]",
                1,
            )
            .replacen(
                "name = \"Aigul (demo)\"\nlanguages = [\"en\", \"ru\"]",
                "name = \"Aigul (demo)\"\nlanguages = [\"ka\"]",
                1,
            );
        assert_ne!(edited, demo);
        let problems = t.missing_languages(&roster(&edited), file);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "config/demo-roster.toml: lawyers.demo-aigul.languages = \"ka\": config/lawyer_texts.toml has no [ka] texts: none of her languages has texts: her messages fall back to en",
                "config/demo-roster.toml: lawyers.demo-bermet.languages = \"ka\": config/lawyer_texts.toml has no [ka] texts: her messages fall back to ky, the first of her languages it has",
            ]
        );
        assert!(problems.iter().all(|p| !p.is_error()), "warnings only");
        // And what they say is what she gets.
        assert!(t.for_langs(&["ka".into()]).offer.contains("Where"));
        assert!(
            t.for_langs(&["ka".into(), "ky".into()])
                .offer
                .contains("Кайда")
        );
    }

    #[test]
    fn unknown_placeholders_and_missing_texts_are_problems() {
        let shipped = include_str!("../../config/lawyer_texts.toml");
        let bad = shipped.replacen("{minutes} мин назад", "{minuets} мин назад", 1);
        let e = LawyerTexts::parse(&bad, "t.toml").unwrap_err();
        assert!(
            e[0].to_string().contains("unknown placeholder {minuets}"),
            "{e:?}"
        );
        let missing = shipped.replacen(
            "taken = \"Дело {code} принял(а) {name}. Спасибо.\"\n",
            "",
            1,
        );
        assert!(LawyerTexts::parse(&missing, "t.toml").is_err());
    }

    #[test]
    fn outcomes_are_the_same_in_every_language_and_words_work_from_anyone() {
        let file = "config/lawyer_texts.toml";
        let t = LawyerTexts::parse(include_str!("../../config/lawyer_texts.toml"), file).unwrap();
        let ids = t.outcome_ids();
        for id in [
            "released",
            "admin_charge",
            "criminal_charge",
            "in_custody",
            "complaint",
            "injuries",
            "referred",
            "unreachable",
        ] {
            assert!(ids.contains(&id), "{id}");
        }
        for (word, id) in [
            ("осв", "released"),
            ("REL", "released"),
            ("бош", "released"),
            ("ЗВІЛ", "released"),
            ("zvil", "released"),
            ("Жал", "complaint"),
            ("med", "injuries"),
            ("ЖОН", "referred"),
        ] {
            assert_eq!(t.outcome(word), Some(id), "{word}");
        }
        assert_eq!(t.outcome("Ivanov"), None);
        for lang in t.languages() {
            let x = t.for_langs(&[lang.into()]);
            assert_eq!(
                x.outcomes.keys().map(String::as_str).collect::<Vec<_>>(),
                ids,
                "{lang}"
            );
            assert!(!x.help_text().contains('{'), "{lang}");
            for text in [x.help_text(), x.outcome_bad_text()] {
                assert!(
                    crate::text::measure(&text).sms_segments() <= 2,
                    "{lang}: {text}"
                );
            }
        }
        assert!(t.check_sizes(file).is_empty(), "{:?}", t.check_sizes(file));
    }

    #[test]
    fn outcome_tables_that_differ_or_clash_are_problems() {
        let shipped = include_str!("../../config/lawyer_texts.toml");
        let missing = shipped.replacen(
            "unreachable = { words = [\"НЕДОЗ\", \"NEDOZ\"], label = \"не дозвонились\" }\n",
            "",
            1,
        );
        assert_ne!(missing, shipped);
        let e = LawyerTexts::parse(&missing, "t.toml").unwrap_err();
        assert!(
            e.iter()
                .any(|p| p.to_string().contains("outcome unreachable is missing")),
            "{e:?}"
        );
        let clash = shipped.replacen("[\"ЖАЛ\", \"ZHAL\"]", "[\"ЖАЛ\", \"REL\"]", 1);
        assert_ne!(clash, shipped);
        let e = LawyerTexts::parse(&clash, "t.toml").unwrap_err();
        assert!(
            e.iter()
                .any(|p| p.to_string().contains("already means outcome")),
            "{e:?}"
        );
        let digits = shipped.replacen("[\"REL\"]", "[\"REL1\"]", 1);
        assert!(LawyerTexts::parse(&digits, "t.toml").is_err());
        let long = shipped.replacen(
            "help = \"OK 1234 accept,",
            &format!("help = \"{} OK 1234 accept,", "Please. ".repeat(40)),
            1,
        );
        let t = LawyerTexts::parse(&long, "t.toml").unwrap();
        let w = t.check_sizes("t.toml");
        assert!(
            w.len() == 1 && w[0].to_string().contains("en.help"),
            "{w:?}"
        );
    }
}

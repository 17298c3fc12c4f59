//! What lawyers and coordinators read: `config/lawyer_texts.toml`, one table
//! per language. Loaded and checked like everything else: a missing text or
//! an unknown placeholder is a problem naming its key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

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
    /// To the lawyer who closed a case.
    pub closed: String,
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
    /// `HELP` and unknown commands: one line.
    pub help: String,
    /// To the coordinator when a case went through every level unaccepted.
    pub unanswered: String,
    /// For a location not given.
    pub unknown: String,
    /// (To a coordinator) `ASSIGN`: the case was offered to `{name}`.
    pub assigned: String,
    /// `ASSIGN` or `COVER` from someone who is not a coordinator.
    pub not_coordinator: String,
    /// `ASSIGN` or `COVER` naming nobody in the roster.
    pub no_lawyer: String,
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
}

/// Every language's texts.
#[derive(Debug, Clone, Default)]
pub struct LawyerTexts {
    by_lang: BTreeMap<String, Texts>,
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
                ("no_lawyer", &t.no_lawyer),
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
        if problems.is_empty() {
            Ok(LawyerTexts { by_lang })
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

    /// Every language with texts.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.by_lang.keys().map(String::as_str)
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
}

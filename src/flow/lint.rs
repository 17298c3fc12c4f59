//! Lints for flows: screens measured against handset limits, and words that
//! would give a caller away.
//!
//! Nothing here changes how a flow runs. A screen over its USSD limit is an
//! error (`hotline serve` refuses to start: the network would cut the
//! screen); the rest are warnings, which `hotline check` prints and
//! `hotline serve` logs.

use super::model::Node;
use super::{Flow, Text, Visibility, screen};
use crate::phone::country_by_iso;
use crate::problem::Problem;
use crate::text::{Measure, measure};

/// Word stems that name police, detention, arrest or lawyers, in the
/// languages the pilots use. Matched case-insensitively inside words.
pub const SENSITIVE_STEMS: &[&str] = &[
    // English
    "police",
    "cop",
    "detain",
    "detention",
    "arrest",
    "custody",
    "lawyer",
    "attorney",
    "jail",
    // Russian
    "полиц",
    "милиц",
    "задерж",
    "арест",
    "адвокат",
    "юрист",
    "следоват",
    "изолятор",
    "сизо",
    // Ukrainian
    "поліц",
    "міліц",
    "затрим",
    "арешт",
    "слідч",
    // Kyrgyz
    "кармал",
    "камак",
    "тергөөч",
];

/// The sensitive stem a text contains, if any.
pub fn sensitive_word(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    SENSITIVE_STEMS.iter().copied().find(|stem| {
        // "cop" only as a word of its own: "copy" and "scope" are harmless.
        if *stem == "cop" {
            lower
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "cop" || w == "cops")
        } else {
            lower.contains(stem)
        }
    })
}

/// One screen a caller can see, measured.
#[derive(Debug, Clone)]
pub struct Screen {
    /// The key of the node or message it comes from.
    pub key: String,
    /// The language.
    pub lang: String,
    /// The callers' countries that see it ([`by_country`]: `*` every
    /// caller, else ISO codes and `other`, comma-separated).
    pub country: String,
    /// First showing or re-prompt after an invalid answer.
    pub reprompt: bool,
    /// The text as shown (`{code}` as `0000`).
    pub text: String,
    /// Its size on air.
    pub measure: Measure,
}

/// Every caller country that changes what a flow shows (its `[countries]`
/// and the countries its conditions name), then `None` for everyone else.
pub fn countries_in(flow: &Flow) -> Vec<Option<&'static crate::phone::Country>> {
    let mut isos: Vec<&str> = flow.spec.countries.keys().map(String::as_str).collect();
    isos.extend(flow.fallback.by_country.keys().map(String::as_str));
    for node in flow.spec.nodes.values() {
        let conds: Vec<_> = match node {
            Node::Menu(m) => m.options.iter().filter_map(|o| o.when.as_ref()).collect(),
            Node::Language(l) => l.options.iter().filter_map(|o| o.when.as_ref()).collect(),
            _ => Vec::new(),
        };
        for c in conds {
            for iso in c.country.iter().flatten() {
                if !isos.contains(&iso.as_str()) {
                    isos.push(iso);
                }
            }
        }
    }
    isos.sort_unstable();
    isos.dedup();
    let mut out: Vec<_> = isos
        .into_iter()
        .filter_map(country_by_iso)
        .map(Some)
        .collect();
    out.push(None);
    out
}

/// What callers of each country see in `lang`, grouped: one entry per
/// distinct text (first seen first), with the label of the countries whose
/// callers see it — `*` when every caller who can have `lang` sees it and
/// the flow offers `lang` to every country, else their ISO codes and
/// `other` (a country the flow does not name), comma-separated. A country
/// whose `[countries.X] languages` leaves `lang` out never sees it, and is
/// not listed. `text_for` gives the text for a caller's country (`None`:
/// nothing to show).
pub fn by_country(
    flow: &Flow,
    lang: &str,
    mut text_for: impl FnMut(Option<&'static crate::phone::Country>) -> Option<String>,
) -> Vec<(String, String)> {
    let countries = countries_in(flow);
    let mut groups: Vec<(Vec<Option<&'static crate::phone::Country>>, String)> = Vec::new();
    for &country in &countries {
        let offered = flow
            .country(country)
            .is_none_or(|c| c.languages.iter().any(|l| l == lang));
        if !offered {
            continue;
        }
        let Some(text) = text_for(country) else {
            continue;
        };
        match groups.iter_mut().find(|(_, t)| *t == text) {
            Some((seen_by, _)) => seen_by.push(country),
            None => groups.push((vec![country], text)),
        }
    }
    groups
        .into_iter()
        .map(|(seen_by, text)| {
            let label = if seen_by.len() == countries.len() {
                "*".to_owned()
            } else {
                seen_by
                    .iter()
                    .map(|c| c.map_or("other", |c| c.iso))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (label, text)
        })
        .collect()
}

/// Every distinct screen of a flow: each node in each language, for the
/// caller countries that see it ([`by_country`]), first showing and
/// re-prompt, plus the engine's own messages.
pub fn screens(flow: &Flow) -> Vec<Screen> {
    let mut out: Vec<Screen> = Vec::new();
    for lang in &flow.spec.languages {
        for (id, node) in &flow.spec.nodes {
            let reprompts: &[bool] = match node {
                Node::Menu(_) | Node::Language(_) | Node::Input(_) => &[false, true],
                _ => &[false],
            };
            for &reprompt in reprompts {
                let variants = by_country(flow, lang, |country| {
                    let vis = Visibility {
                        country,
                        vars: None,
                    };
                    screen(flow, node, lang, &vis, reprompt)
                        .map(|t| crate::template::render(&t, &[("code", "0000")]))
                });
                for (country, text) in variants {
                    out.push(Screen {
                        key: format!("nodes.{id}"),
                        lang: lang.clone(),
                        country,
                        reprompt,
                        measure: measure(&text),
                        text,
                    });
                }
            }
        }
        let m = &flow.spec.messages;
        for (key, text) in [
            ("messages.too_many_invalid", Some(&m.too_many_invalid)),
            ("messages.unavailable", Some(&m.unavailable)),
            ("messages.received", m.received.as_ref()),
        ] {
            let Some(text) = text else { continue };
            for (country, text) in by_country(flow, lang, |c| Some(flow.text(text, lang, c))) {
                out.push(Screen {
                    key: key.to_owned(),
                    lang: lang.clone(),
                    country,
                    reprompt: false,
                    measure: measure(&text),
                    text,
                });
            }
        }
    }
    out
}

fn texts_of(node: &Node) -> Vec<(&'static str, &Text)> {
    match node {
        Node::Menu(m) => std::iter::once(("text", &m.text))
            .chain(m.options.iter().map(|o| ("options", &o.label)))
            .collect(),
        Node::Input(i) => std::iter::once(("text", &i.text))
            .chain(i.skip.iter().map(|s| ("skip.label", &s.label)))
            .collect(),
        Node::Language(l) => l
            .text
            .iter()
            .chain(l.options.iter().map(|o| &o.label))
            .map(|t| ("text", t))
            .collect(),
        Node::End(e) => vec![("text", &e.text)],
        Node::Route(_) => Vec::new(),
    }
}

fn discreet(node: &Node) -> bool {
    match node {
        Node::Menu(m) => m.discreet,
        Node::Input(i) => i.discreet,
        Node::End(e) => e.discreet,
        Node::Language(_) | Node::Route(_) => true,
    }
}

/// Errors for screens over the USSD limit; warnings for sensitive words on
/// discreet nodes and in the engine's messages.
pub fn lint(flow: &Flow) -> Vec<Problem> {
    let mut problems = Vec::new();
    for s in screens(flow) {
        if !s.measure.fits_ussd() {
            problems.push(Problem::error(
                &flow.source,
                format!("{}.{}", s.key, s.lang),
                format!(
                    "{}screen for country {} is {} characters in {}, over the USSD limit of {}",
                    if s.reprompt { "re-prompt " } else { "" },
                    s.country,
                    s.measure.units,
                    s.measure.encoding,
                    s.measure.ussd_limit()
                ),
            ));
        }
    }
    let mut check = |key: String, text: &Text| {
        for (lang, s) in text.entries() {
            if let Some(word) = sensitive_word(s) {
                let key = lang.map_or(key.clone(), |l| format!("{key}.{l}"));
                problems.push(Problem::warning(
                    &flow.source,
                    key,
                    format!("names {word:?} on a discreet screen (set discreet = false only where the caller chose such a path)"),
                ));
            }
        }
    };
    for (id, node) in &flow.spec.nodes {
        if discreet(node) {
            for (field, text) in texts_of(node) {
                check(format!("nodes.{id}.{field}"), text);
            }
        }
    }
    let m = &flow.spec.messages;
    check("messages.invalid".into(), &m.invalid);
    check("messages.too_many_invalid".into(), &m.too_many_invalid);
    check("messages.unavailable".into(), &m.unavailable);
    for (key, text) in [
        ("messages.received", &m.received),
        ("messages.sms_help", &m.sms_help),
        ("messages.confirm", &m.confirm),
        ("messages.unanswered", &m.unanswered),
    ] {
        if let Some(t) = text {
            check(key.into(), t);
        }
    }
    problems
}

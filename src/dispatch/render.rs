//! What lawyers and women read: offers, replies, alerts, measured.
//!
//! Texts come from `config/lawyer_texts.toml` (lawyers) and the flow's
//! `messages` (women) and are filled with [`crate::template`]. An offer is
//! filled in two stages: the case's city, situation, location and callback
//! when the offer is queued, its `{code}` and `{minutes}` when it is sent;
//! what the woman typed is never read as a placeholder.

use std::collections::{BTreeMap, BTreeSet};

use super::Dispatcher;
use super::lifecycle::{self, Reply};
use super::roster::Lawyer;
use super::texts::Texts;
use crate::case::CaseData;
use crate::problem::Problem;
use crate::template::{partial, render};

/// Offers must fit two SMS parts (UCS-2: 134 characters).
pub const OFFER_MAX_UNITS: usize = 134;

/// The longest code and minutes an offer is measured with.
const LONGEST: &[(&str, &str)] = &[("code", "000000"), ("minutes", "999")];

/// Cut a text to `max` characters with an ellipsis.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

impl Dispatcher {
    /// A lawyer's texts, and the case's city and situation in her language.
    pub(super) fn labels(&self, case: &CaseData, lawyer: &Lawyer) -> (&Texts, String, String) {
        let t = self.texts.for_langs(&lawyer.languages);
        let lang = lawyer.languages.first().map_or("en", String::as_str);
        let city = self
            .roster
            .city_name(&case.city, lang)
            .unwrap_or(&case.city)
            .to_owned();
        let situation = case
            .vars
            .get("situation")
            .and_then(|s| t.situations.get(s))
            .cloned()
            .unwrap_or_default();
        (t, city, situation)
    }

    /// The offer text for `lawyer`, with `{code}` and `{minutes}` left for
    /// the sender to fill in, cut to fit two SMS parts.
    pub fn offer_text(&self, case: &CaseData, lawyer: &Lawyer) -> String {
        let (t, city, situation) = self.labels(case, lawyer);
        let abuse = case
            .vars
            .get("abuse")
            .and_then(|a| t.abuse.get(a))
            .cloned()
            .unwrap_or_default();
        let callback = case.callback().unwrap_or("").to_owned();
        let location = case
            .vars
            .get("location")
            .cloned()
            .unwrap_or_else(|| t.unknown.clone());
        let fill = |loc: &str| {
            partial(
                &t.offer,
                &[
                    ("city", &city),
                    ("situation", &situation),
                    ("abuse", &abuse),
                    ("location", loc),
                    ("callback", &callback),
                ],
            )
        };
        // Measure with the longest code (six digits) and three-digit minutes.
        let measure = |text: &str| crate::text::measure(&render(text, LONGEST)).units;
        let full = fill(&location);
        let over = measure(&full).saturating_sub(OFFER_MAX_UNITS);
        if over == 0 {
            return full;
        }
        let keep = location.chars().count().saturating_sub(over + 1).max(1);
        fill(&cut(&location, keep))
    }

    /// The answer to a lawyer's command about a case.
    pub(super) fn reply_text(&self, lawyer: &Lawyer, reply: &Reply, case: &CaseData) -> String {
        let t = self.texts.for_langs(&lawyer.languages);
        let name_of = |id: &str| {
            self.roster
                .lawyer(id)
                .map_or_else(|| id.to_owned(), |l| l.name.clone())
        };
        let callback = case.callback().unwrap_or("").to_owned();
        let location = case
            .vars
            .get("location")
            .cloned()
            .unwrap_or_else(|| t.unknown.clone());
        match reply {
            Reply::Accepted => partial(
                &t.accepted,
                &[("callback", &callback), ("location", &location)],
            ),
            Reply::Declined => t.declined.clone(),
            Reply::Closed => t.closed.clone(),
            Reply::AlreadyTaken(by) => partial(&t.already_taken, &[("name", &name_of(by))]),
            Reply::AlreadyYours => t.already_yours.clone(),
            Reply::NotOffered => t.not_offered.clone(),
            Reply::IsClosed => t.is_closed.clone(),
            Reply::Assigned(id) => partial(&t.assigned, &[("name", &name_of(id))]),
            Reply::NotCoordinator => t.not_coordinator.clone(),
        }
    }

    /// Warnings for offers that would not fit two SMS parts for some
    /// lawyer, even with the longest location cut: measured on a case with
    /// every field at its longest (`texts_file` names the texts in problems).
    pub fn check_offers(&self, texts_file: &str) -> Vec<Problem> {
        let mut vars = BTreeMap::new();
        vars.insert("situation".to_owned(), "detained_other".to_owned());
        vars.insert("abuse".to_owned(), "planted".to_owned());
        vars.insert("location".to_owned(), "Ж".repeat(80));
        vars.insert("callback".to_owned(), "+996555000000000".to_owned());
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for lawyer in self.roster.lawyers() {
            let lang = lawyer
                .languages
                .first()
                .cloned()
                .unwrap_or_else(|| "en".into());
            for city in self.roster.city_ids() {
                let case = CaseData {
                    id: "c_check".into(),
                    flow: String::new(),
                    lang: "ru".into(),
                    channel: String::new(),
                    caller: None,
                    city: city.to_owned(),
                    vars: vars.clone(),
                    opened_at_ms: 0,
                    dispatch: lifecycle::Dispatch::default(),
                };
                let text = render(&self.offer_text(&case, lawyer), LONGEST);
                let m = crate::text::measure(&text);
                if m.sms_segments() > 2 && seen.insert(lang.clone()) {
                    problems.push(Problem::warning(
                        texts_file,
                        format!("{lang}.offer"),
                        format!(
                            "an offer for {city} is {} characters in {} ({} SMS parts) even with the location cut: shorten the text",
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
}

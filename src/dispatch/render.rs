//! What lawyers and women read: offers, replies, alerts, measured.
//!
//! Texts come from `config/lawyer_texts.toml` (lawyers) and the flow's
//! `messages` (women) and are filled with [`crate::template`]. An offer is
//! filled in two stages: the case's city, situation, her language,
//! location and callback (and whether it is the phone she called from) when
//! the offer is queued, its `{code}` and `{minutes}` when it is sent; what
//! the woman typed is never read as a placeholder.
//!
//! The location is cut only by what the offer needs to fit two SMS parts,
//! measured with the code's real length and the minutes at queue time plus
//! [`SEND_MARGIN_MINUTES`] ([`OfferSize`]); `hotline check` measures the
//! longest offer each lawyer can really be sent ([`Dispatcher::longest_offers`]).

use std::collections::{BTreeMap, BTreeSet};

use super::Dispatcher;
use super::lifecycle::{self, Reply};
use super::roster::Lawyer;
use super::texts::Texts;
use crate::case::CaseData;
use crate::problem::Problem;
use crate::template::{partial, render};
use crate::text::{Encoding, measure};

/// Offers must fit two SMS parts (UCS-2: 134 characters).
pub const OFFER_MAX_UNITS: usize = 134;

/// Minutes an offer may wait in the outbox between being queued and being
/// sent that its cut leaves room for: `{minutes}` is measured as the
/// minutes at queue time plus this. An offer held up longer (an aggregator
/// outage of over half an hour) may grow by a digit, into a third part.
pub const SEND_MARGIN_MINUTES: u64 = 30;

/// The length of a case code before one is chosen: the store tries
/// four-digit candidates first ([`crate::store::code_candidates`]); a
/// longer code, chosen only when all of those are taken, is measured
/// exactly on every later offer.
pub const FIRST_CODE_LEN: usize = 4;

/// What an offer is measured with before the outbox fills in `{code}` and
/// `{minutes}`: the code's length and the minutes since the case opened,
/// both as known when the offer is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferSize {
    /// Characters of the case's code as messages name it (with its alias,
    /// when it has one: `8516/2356`, [`crate::store::named_code`]).
    pub code_len: usize,
    /// Minutes since the case opened, at queue time.
    pub minutes: u64,
}

impl OfferSize {
    /// The size of an offer for a case with `code` (unknown before the
    /// store chose it), queued `minutes` after it opened.
    pub fn new(code: Option<&str>, minutes: u64) -> Self {
        OfferSize {
            code_len: code.map_or(FIRST_CODE_LEN, |c| c.chars().count()),
            minutes,
        }
    }

    /// The values the text is measured with.
    fn values(self) -> (String, String) {
        (
            "0".repeat(self.code_len.max(1)),
            (self.minutes.saturating_add(SEND_MARGIN_MINUTES)).to_string(),
        )
    }
}

/// The most an offer may measure in `encoding` to fit two SMS parts, and
/// the mark that ends a cut location (an ellipsis would turn a GSM-7 text
/// into UCS-2).
fn two_parts(encoding: Encoding) -> (usize, &'static str) {
    match encoding {
        Encoding::Gsm7 => (2 * 153, "..."),
        Encoding::Ucs2 => (OFFER_MAX_UNITS, "…"),
    }
}

/// Cut a text to `max` characters, ending with `mark`.
fn cut(text: &str, max: usize, mark: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text
        .chars()
        .take(max.saturating_sub(mark.chars().count()))
        .collect();
    s.push_str(mark);
    s
}

impl Dispatcher {
    /// A lawyer's texts, and the case's city and situation in her language
    /// (the texts' `unknown` when the case has none they name).
    pub(super) fn labels(&self, case: &CaseData, lawyer: &Lawyer) -> (&Texts, String, String) {
        let t = self.texts.for_langs(&lawyer.languages);
        let lang = lawyer.languages.first().map_or("en", String::as_str);
        let city = self
            .roster
            .city_name(&case.city, lang)
            .unwrap_or(&case.city)
            .to_owned();
        // A flow that never asked (`hotline check` warns of it) or an id
        // the texts lack: `unknown`, never an empty gap in the offer.
        let situation = case
            .vars
            .get("situation")
            .and_then(|s| t.situations.get(s))
            .cloned()
            .unwrap_or_else(|| t.unknown.clone());
        (t, city, situation)
    }

    /// The offer text for `lawyer`, with `{code}` and `{minutes}` left for
    /// the sender to fill in, its location cut by exactly what the offer
    /// needs to fit two SMS parts at `size`.
    pub fn offer_text(&self, case: &CaseData, lawyer: &Lawyer, size: OfferSize) -> String {
        let (t, city, situation) = self.labels(case, lawyer);
        let get = |map: &BTreeMap<String, String>, key: Option<&String>| {
            key.and_then(|k| map.get(k)).cloned().unwrap_or_default()
        };
        let abuse = get(&t.abuse, case.vars.get("abuse"));
        let language = get(&t.languages, Some(&case.lang));
        let note = if case.callback_is_own_phone() {
            &t.own_phone
        } else {
            &t.other_phone
        };
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
                    ("language", &language),
                    ("location", loc),
                    ("callback", &callback),
                    ("callback_note", note),
                ],
            )
        };
        let (code, minutes) = size.values();
        let full = fill(&location);
        let m = measure(&render(&full, &[("code", &code), ("minutes", &minutes)]));
        let (limit, mark) = two_parts(m.encoding);
        let over = m.units.saturating_sub(limit);
        if over == 0 {
            return full;
        }
        // Each character cut saves at least one unit, and the mark keeps
        // the encoding: one pass cuts exactly enough.
        let keep = location.chars().count().saturating_sub(over).max(1);
        fill(&cut(&location, keep, mark))
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
            Reply::Closed(ids) => partial(&t.closed, &[("list", &t.outcome_labels(ids))]),
            Reply::ClosedUnaccepted(ids) => {
                partial(&t.closed_open, &[("list", &t.outcome_labels(ids))])
            }
            Reply::AlreadyTaken(by) => partial(&t.already_taken, &[("name", &name_of(by))]),
            Reply::AlreadyYours => t.already_yours.clone(),
            Reply::NotOffered => t.not_offered.clone(),
            Reply::IsClosed => t.is_closed.clone(),
            Reply::Assigned(id) => partial(&t.assigned, &[("name", &name_of(id))]),
            Reply::NotCoordinator => t.not_coordinator.clone(),
            Reply::OwnCase(id) => partial(&t.own_case, &[("name", &name_of(id))]),
            Reply::NotInCity(id) => {
                let lang = lawyer.languages.first().map_or("en", String::as_str);
                let city = self.dispatch_city(case);
                let name = self.roster.city_name(&city, lang).unwrap_or(&city);
                partial(&t.not_in_city, &[("name", &name_of(id)), ("city", name)])
            }
        }
    }

    /// The minutes after opening at which `city` queues its last offer:
    /// every level of every pass but the last one waited out.
    fn last_offer_minutes(&self, city: &str) -> u64 {
        self.roster.chain(city).map_or(0, |chain| {
            let pass: u64 = chain.levels.iter().map(|l| l.wait.as_secs() / 60).sum();
            let last = chain.levels.last().map_or(0, |l| l.wait.as_secs() / 60);
            (pass * u64::from(chain.repeats + 1)).saturating_sub(last)
        })
    }

    /// The longest offer each lawyer can really be sent, per city: the
    /// longest situation and abuse, her texts' every language name and
    /// callback note, a callback as long as a Kyrgyz or Ukrainian number
    /// (13 characters), an 80-character location, a
    /// four-digit code, and the minutes of the city's last escalation
    /// offer. Returns (lawyer language, city, the offer as sent, characters
    /// of the location kept).
    pub fn longest_offers(&self) -> Vec<(String, String, String, usize)> {
        const LOCATION: usize = 80;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for lawyer in self.roster.lawyers() {
            let t = self.texts.for_langs(&lawyer.languages);
            let lang = lawyer.languages.first().cloned().unwrap_or_default();
            if !seen.insert(lang.clone()) {
                continue;
            }
            for city in self.roster.city_ids() {
                let minutes = self.last_offer_minutes(city);
                let size = OfferSize::new(None, minutes);
                let mut worst: Option<(String, usize)> = None;
                for (situation, abuse, language, typed) in worst_cases(t) {
                    let mut vars = BTreeMap::new();
                    vars.insert("situation".to_owned(), situation);
                    if let Some(a) = abuse {
                        vars.insert("abuse".to_owned(), a);
                    }
                    vars.insert("location".to_owned(), "Ѫ".repeat(LOCATION));
                    if typed {
                        vars.insert("callback".to_owned(), "+996555000000".to_owned());
                    }
                    let case = CaseData {
                        id: "c_check".into(),
                        flow: String::new(),
                        lang: language,
                        channel: String::new(),
                        caller: crate::phone::PhoneNumber::parse_international("+380500000000")
                            .ok(),
                        country: None,
                        city: city.to_owned(),
                        vars,
                        opened_at_ms: 0,
                        dispatch: lifecycle::Dispatch::default(),
                    };
                    let (code, mins) = size.values();
                    let text = render(
                        &self.offer_text(&case, lawyer, size),
                        &[("code", &code), ("minutes", &mins)],
                    );
                    let kept = text.matches('Ѫ').count();
                    let units = measure(&text).units;
                    // The worst is the one keeping least of the location.
                    if worst.as_ref().is_none_or(|(w, k)| {
                        (kept, usize::MAX - units) < (*k, usize::MAX - measure(w).units)
                    }) {
                        worst = Some((text, kept));
                    }
                }
                if let Some((text, kept)) = worst {
                    out.push((lang.clone(), city.to_owned(), text, kept));
                }
            }
        }
        out
    }

    /// Warnings for offers that would not fit two SMS parts for some
    /// lawyer even with the location cut, measured on the longest real
    /// offers ([`Dispatcher::longest_offers`]); `texts_file` names the
    /// texts in problems.
    pub fn check_offers(&self, texts_file: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (lang, city, text, _) in self.longest_offers() {
            let m = measure(&text);
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
        problems
    }
}

/// Every combination of what a case can hold that changes an offer's
/// length: situation, abuse (or none), her language, and whether she typed
/// a callback number.
fn worst_cases(t: &Texts) -> Vec<(String, Option<String>, String, bool)> {
    let abuses: Vec<Option<String>> = std::iter::once(None)
        .chain(t.abuse.keys().cloned().map(Some))
        .collect();
    let mut out = Vec::new();
    for situation in t.situations.keys() {
        // Only the report path asks what happened (flows/legal_help.toml).
        let abuses = if situation == "report" {
            &abuses[..]
        } else {
            &abuses[..1]
        };
        for abuse in abuses {
            for language in t.languages.keys() {
                for typed in [false, true] {
                    out.push((situation.clone(), abuse.clone(), language.clone(), typed));
                }
            }
        }
    }
    out
}

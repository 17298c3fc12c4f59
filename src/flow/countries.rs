//! Per-country settings: what a caller is told depends on her country.
//!
//! A flow *serves* a country when it has a `[countries.XX]` table or a
//! condition names it (`when = { country = ["UA"] }`). Every country it
//! serves needs, in three places, one per kind of setting:
//!
//! - the flow file's `[countries.XX] languages`: her language menu, in
//!   order, the first being her language until she chooses one (re-prompts,
//!   "too many tries", `unavailable`, the SMS help). Languages are the flow
//!   author's business, next to the texts they choose between;
//! - the config's `[flows] fallback_phones.XX`: the number she is told to
//!   ring (last screen, `unavailable`, "too many tries", the `unanswered`
//!   SMS). Numbers are the deployment's business, set per installation;
//! - with dispatch, the roster's `route_by_country.XX` on every city that
//!   routes to another (`[cities.other]`): whose lawyers answer when she
//!   picks "other city". Who answers is the roster's business.
//!
//! `validate_flow` checks what the flow file's `[countries]` say (the
//! loader runs it); [`check`] checks that every country served has all
//! three (`hotline check` runs it, so a deployment cannot miss one).

use std::collections::BTreeSet;

use super::model::{Condition, Node};
use super::{Flow, FlowSet};
use crate::dispatch::roster::Roster;
use crate::phone::{COUNTRIES, country_by_iso};
use crate::problem::{Problem, quoted};

/// The countries a flow serves: its `[countries]` and every country its
/// conditions name.
pub fn served(flow: &Flow) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = flow.spec.countries.keys().cloned().collect();
    let named = |c: Option<&Condition>| -> Vec<String> {
        c.and_then(|c| c.country.clone()).unwrap_or_default()
    };
    for node in flow.spec.nodes.values() {
        match node {
            Node::Menu(m) => m
                .options
                .iter()
                .for_each(|o| out.extend(named(o.when.as_ref()))),
            Node::Language(l) => l
                .options
                .iter()
                .for_each(|o| out.extend(named(o.when.as_ref()))),
            Node::Route(r) => r
                .routes
                .iter()
                .for_each(|x| out.extend(named(Some(&x.when)))),
            Node::Input(_) | Node::End(_) => {}
        }
    }
    out
}

/// Problems in a flow's `[countries]` tables: unknown codes, languages the
/// flow lacks or its language menu does not offer, repeats, empty lists.
pub(super) fn validate_flow(flow: &Flow) -> Vec<Problem> {
    let spec = &flow.spec;
    let mut problems = Vec::new();
    let offered: BTreeSet<&str> = spec
        .nodes
        .values()
        .filter_map(|n| match n {
            Node::Language(l) => Some(l.options.iter().map(|o| o.language.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    for (iso, settings) in &spec.countries {
        let key = format!("countries.{iso}");
        if country_by_iso(iso).is_none_or(|c| c.iso != iso) {
            let known: Vec<&str> = COUNTRIES.iter().map(|c| c.iso).collect();
            problems.push(Problem::error(
                &flow.source,
                &key,
                format!("unknown country (known: {}, in capitals)", known.join(", ")),
            ));
        }
        if settings.languages.is_empty() {
            problems.push(Problem::error(
                &flow.source,
                format!("{key}.languages"),
                "name her languages, the one she sees first first",
            ));
        }
        let mut seen = BTreeSet::new();
        for lang in &settings.languages {
            let k = quoted(&format!("{key}.languages"), lang);
            let msg = if !spec.languages.contains(lang) {
                "language is not in this flow's `languages`"
            } else if !offered.is_empty() && !offered.contains(lang.as_str()) {
                "the language menu has no option for this language"
            } else if !seen.insert(lang) {
                "listed twice"
            } else {
                continue;
            };
            problems.push(Problem::error(&flow.source, k, msg));
        }
    }
    problems
}

/// The calling code a number is written with, if it is one we know.
fn calling_country(number: &str) -> Option<&'static str> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    number.trim_start().starts_with('+').then_some(())?;
    COUNTRIES
        .iter()
        .find(|c| digits.starts_with(c.calling_code))
        .map(|c| c.iso)
}

/// Problems across files: every country a flow serves has its own fallback
/// number in `config_file` (one in that country, not another's), and — with
/// a roster — every routed city ("other city") routes her country's callers
/// explicitly.
pub fn check(flows: &FlowSet, config_file: &str, roster: Option<&Roster>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut fallback_checked = BTreeSet::new();
    for flow in flows.flows.values() {
        let cities = cities_set(flow);
        for iso in served(flow) {
            if !flow.spec.countries.contains_key(&iso) {
                problems.push(Problem::error(
                    &flow.source,
                    format!("countries.{iso}"),
                    "a condition names this country but it has no [countries] table: add its `languages` (her menu order; the first is her language until she chooses)",
                ));
            }
            let key = format!("flows.fallback_phones.{iso}");
            match flow.fallback.by_country.get(&iso) {
                None if fallback_checked.insert(iso.clone()) => problems.push(Problem::error(
                    config_file,
                    &key,
                    format!(
                        "{} serves callers from {iso}: give them a number in their own country to ring",
                        flow.source
                    ),
                )),
                Some(n) if fallback_checked.insert(iso.clone()) => {
                    if let Some(other) = calling_country(n).filter(|c| *c != iso) {
                        problems.push(Problem::error(
                            config_file,
                            &key,
                            format!("the number is in {other}, not in {iso}"),
                        ));
                    }
                }
                _ => {}
            }
            let Some(roster) = roster else { continue };
            for city in &cities {
                if roster.is_route(city) && !roster.routes_country(city, &iso) {
                    problems.push(Problem::error(
                        &roster.source,
                        format!("cities.{city}.route_by_country.{iso}"),
                        format!(
                            "{} offers {city:?} to callers from {iso}: say which city's lawyers answer them",
                            flow.source
                        ),
                    ));
                }
            }
        }
    }
    problems
}

/// Every city id a flow can set.
fn cities_set(flow: &Flow) -> BTreeSet<String> {
    flow.spec
        .nodes
        .values()
        .filter_map(|n| match n {
            Node::Menu(m) => Some(m.options.iter().filter_map(|o| o.set.get("city").cloned())),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_placed_by_its_calling_code() {
        assert_eq!(calling_country("+996 000 000 000"), Some("KG"));
        assert_eq!(calling_country("+380 50 000 0000"), Some("UA"));
        assert_eq!(calling_country("112"), None);
    }
}

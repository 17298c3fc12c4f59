//! Flows: the TOML menus callers walk through, and the engine that runs them.
//!
//! - [`model`] is the file format (what `docs/flows.md` documents).
//! - `load` loads a folder of flow files, and `check` validates each: every
//!   reference resolves, every node is reachable and can reach an end, keys are
//!   unique, menus are not empty, translations exist. A [`Flow`] that exists has
//!   passed those checks, so the engine can rely on them.
//! - `visible` decides what a caller sees: the options shown to her and the
//!   text of each screen, which each [`Flow`] keeps once rendered when it
//!   does not depend on the caller's variables ([`ScreenCache`]).
//! - This module holds the validated [`Flow`] and the [`FlowSet`] of a folder,
//!   and re-exports the functions of the modules above.
//! - [`engine`] is the pure state machine: `step(flow, state, caller, input,
//!   now)` (`advance` when the state can be given away). It never does I/O
//!   and never reads the clock.
//! - [`countries`] checks that every country a flow serves has its own
//!   settings: languages, fallback number, and where "other city" goes.
//! - [`lint`] measures screens against handset limits and looks for words that
//!   would give a caller away; `hotline check` prints its findings.

mod check;
pub mod countries;
pub mod engine;
pub mod lint;
mod load;
pub mod model;
mod visible;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use check::validate;
pub use load::{load_dir, parse};
pub use model::{Condition, CountrySettings, FlowFile, Node, Text};

use crate::phone::Country;
pub use visible::{
    ScreenCache, Visibility, route_holds, screen, screen_of, visible_languages, visible_options,
};

/// A validated flow, ready for the engine.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Where it was loaded from, for messages (`flows/legal_help.toml`).
    pub source: String,
    /// The flow as written.
    pub spec: FlowFile,
    /// The numbers substituted for `{fallback}`, by the caller's country.
    pub fallback: Fallbacks,
    /// A short digest of the file's text: a session records the version it
    /// began on and finishes on it after a reload changed the file
    /// ([`crate::reload`]).
    pub version: String,
    /// Screens rendered so far ([`screen_of`]); empty in a clone.
    pub screens: ScreenCache,
}

/// The hotline numbers a caller is told to ring (`[flows] fallback_phone`
/// and `fallback_phones` in the config): her own country's, so that a
/// caller in Ukraine is never sent to a number in Kyrgyzstan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallbacks {
    /// For callers from a country without its own number.
    pub default: String,
    /// By ISO country code (`UA`).
    pub by_country: BTreeMap<String, String>,
}

/// One number for everyone (tests, single-country deployments).
impl From<&str> for Fallbacks {
    fn from(number: &str) -> Self {
        Fallbacks {
            default: number.to_owned(),
            by_country: BTreeMap::new(),
        }
    }
}

impl From<&Fallbacks> for Fallbacks {
    fn from(f: &Fallbacks) -> Self {
        f.clone()
    }
}

impl Fallbacks {
    /// The number for a caller from `country`.
    pub fn for_country(&self, country: Option<&Country>) -> &str {
        country
            .and_then(|c| self.by_country.get(c.iso))
            .unwrap_or(&self.default)
    }
}

impl Flow {
    /// The flow's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.spec.nodes.get(id)
    }

    /// Resolve a text for a language, substituting `{fallback}` with the
    /// number for a caller from `country` (other placeholders, such as
    /// `{code}`, stay for a later [`crate::template::render`]).
    pub fn text(&self, text: &Text, lang: &str, country: Option<&Country>) -> String {
        crate::template::partial(
            text.get(lang, &self.spec.default_language),
            &[("fallback", self.fallback.for_country(country))],
        )
    }

    /// The settings for callers from `country`, when the flow has some.
    pub fn country(&self, country: Option<&Country>) -> Option<&CountrySettings> {
        country.and_then(|c| self.spec.countries.get(c.iso))
    }

    /// A caller's language until she chooses one: the first of her
    /// country's `languages`, else the flow's `default_language`.
    pub fn default_language(&self, country: Option<&Country>) -> &str {
        self.country(country)
            .and_then(|c| c.languages.first())
            .unwrap_or(&self.spec.default_language)
    }

    /// Whether an SMS keyword starts this flow.
    pub fn has_keyword(&self, word: &str) -> bool {
        let word = word.trim().to_uppercase();
        self.spec.keywords.iter().any(|k| k.to_uppercase() == word)
    }
}

/// Every flow loaded from a folder, by id.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    /// Flows by id.
    pub flows: BTreeMap<String, Arc<Flow>>,
}

impl FlowSet {
    /// A flow by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Flow>> {
        self.flows.get(id)
    }

    /// Every city id the flows can set (`set = { city = "…" }`): the fixed
    /// label set of the cases metric.
    pub fn cities(&self) -> BTreeSet<String> {
        self.flows
            .values()
            .flat_map(|f| f.spec.nodes.values())
            .filter_map(|n| match n {
                Node::Menu(m) => Some(m.options.iter().filter_map(|o| o.set.get("city").cloned())),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The flow an SMS keyword starts.
    pub fn by_keyword(&self, word: &str) -> Option<&Arc<Flow>> {
        self.flows.values().find(|f| f.has_keyword(word))
    }
}

#[cfg(test)]
mod tests;

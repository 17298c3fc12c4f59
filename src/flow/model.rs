//! The flow file format: the TOML a flow author writes, as Rust types.
//!
//! `docs/flows.md` is the user's guide to this format; keep the two in step.
//! Deserialisation rejects unknown keys so a typo (`optoins`) is an error
//! with its line, not a silently ignored table.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A text in one or several languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    /// The same string for every language (`label = "English"`).
    All(String),
    /// One string per language code.
    Per(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "a string, or a table of one string per language"
        )]
        enum Raw {
            All(String),
            Per(BTreeMap<String, String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::All(s) => Text::All(s),
            Raw::Per(m) => Text::Per(m),
        })
    }
}

impl Text {
    /// The string for `lang`, falling back to `default` and then to any.
    pub fn get<'a>(&'a self, lang: &str, default: &str) -> &'a str {
        match self {
            Text::All(s) => s,
            Text::Per(m) => m
                .get(lang)
                .or_else(|| m.get(default))
                .or_else(|| m.values().next())
                .map_or("", String::as_str),
        }
    }

    /// Every (language, string) pair written; `None` for an all-language text.
    pub fn entries(&self) -> Vec<(Option<&str>, &str)> {
        match self {
            Text::All(s) => vec![(None, s.as_str())],
            Text::Per(m) => m
                .iter()
                .map(|(k, v)| (Some(k.as_str()), v.as_str()))
                .collect(),
        }
    }

    /// Whether a string exists for `lang` without falling back.
    pub fn has(&self, lang: &str) -> bool {
        match self {
            Text::All(_) => true,
            Text::Per(m) => m.contains_key(lang),
        }
    }
}

/// A whole flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// Unique id, used in metrics labels and logs.
    pub id: String,
    /// Languages the flow is written in.
    pub languages: Vec<String>,
    /// Language used before one is chosen, and when a text lacks one.
    pub default_language: String,
    /// SMS words that start this flow (any case, any script).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Idle time after which a USSD session is forgotten.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_secs: u64,
    /// Idle time after which an SMS conversation is forgotten.
    #[serde(default = "default_sms_session_timeout")]
    pub sms_session_timeout_secs: u64,
    /// The first node.
    pub start: String,
    /// Texts the engine itself shows.
    pub messages: Messages,
    /// What changes with the caller's country (`[countries.KG]`); a caller
    /// from a country not listed gets `default_language` and the language
    /// options as written.
    #[serde(default)]
    pub countries: BTreeMap<String, CountrySettings>,
    /// Every node by id.
    pub nodes: BTreeMap<String, Node>,
}

fn default_session_timeout() -> u64 {
    180
}

fn default_sms_session_timeout() -> u64 {
    1800
}

/// What a flow does for callers from one country (`[countries.UA]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountrySettings {
    /// Her language menu, in this order (languages not listed are not
    /// offered to her). The first is her language until she chooses one:
    /// re-prompts on the language menu, "too many tries", `unavailable`,
    /// and the SMS help text.
    pub languages: Vec<String>,
}

/// Texts the engine shows on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messages {
    /// Shown before the options again after an answer that is not one.
    pub invalid: Text,
    /// The last screen after three invalid answers in a row.
    pub too_many_invalid: Text,
    /// The calm last screen when the gateway cannot continue (store down,
    /// too many requests); should give `{fallback}`.
    pub unavailable: Text,
    /// The last screen when her request was kept while the store is down
    /// (it will reach a lawyer once the store is back) but no code could
    /// be shown: says it was received, without a code, and should give
    /// `{fallback}`. Without it she is shown `unavailable`, which tells her
    /// the request was not taken although it was.
    #[serde(default)]
    pub received: Option<Text>,
    /// The SMS answer to a text that starts nothing; `{keywords}` lists the
    /// keywords of every flow.
    #[serde(default)]
    pub sms_help: Option<Text>,
    /// The SMS sent to the caller when a lawyer accepts her case (`{code}`).
    /// Discreet: it stays in her inbox.
    #[serde(default)]
    pub confirm: Option<Text>,
    /// The SMS sent to the caller when nobody has accepted her case in time
    /// (`{code}`, `{fallback}`).
    #[serde(default)]
    pub unanswered: Option<Text>,
}

/// A node: one screen (or an invisible routing step).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Node {
    /// Numbered choices.
    Menu(Menu),
    /// Free text saved to a variable.
    Input(Input),
    /// Choose the session's language.
    Language(LanguageNode),
    /// No screen: pick the next node by a condition.
    Route(Route),
    /// The final screen.
    End(End),
}

/// Numbered choices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    /// The question above the options.
    pub text: Text,
    /// The choices, in the order shown.
    pub options: Vec<MenuOption>,
    /// False allows texts that name police, detention or lawyers.
    #[serde(default = "yes")]
    pub discreet: bool,
}

fn yes() -> bool {
    true
}

/// One choice in a menu.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuOption {
    /// An explicit key (`0`); otherwise the option's number among those shown.
    pub key: Option<String>,
    /// What the caller reads.
    pub label: Text,
    /// Variables to set when chosen.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Only shown when this holds.
    pub when: Option<Condition>,
    /// Where the choice leads.
    pub next: String,
}

/// A condition on the caller or on a variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The caller's country is one of these ISO codes.
    pub country: Option<Vec<String>>,
    /// The variable tested by `in` / `not_in`.
    pub var: Option<String>,
    /// The variable has one of these values.
    #[serde(rename = "in")]
    pub is_in: Option<Vec<String>>,
    /// The variable is unset or has none of these values.
    pub not_in: Option<Vec<String>>,
}

/// What an input node accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Any non-empty text.
    #[default]
    Any,
    /// A phone number; saved as E.164.
    Phone,
    /// Digits only.
    Digits,
}

/// Free text saved to a variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The prompt.
    pub text: Text,
    /// The variable the answer is saved to.
    pub var: String,
    /// Longer answers are cut to this many characters.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// What is accepted.
    #[serde(default)]
    pub pattern: Pattern,
    /// An optional way to skip the question.
    pub skip: Option<Skip>,
    /// The next node.
    pub next: String,
    /// False allows texts that name police, detention or lawyers.
    #[serde(default = "yes")]
    pub discreet: bool,
}

fn default_max_len() -> usize {
    60
}

/// The skip choice of an input node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skip {
    /// What the caller types to skip.
    pub key: String,
    /// What the skip line says.
    pub label: Text,
}

/// Choose the session's language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageNode {
    /// An optional heading.
    pub text: Option<Text>,
    /// One option per language.
    pub options: Vec<LanguageOption>,
    /// The next node.
    pub next: String,
}

/// One language choice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageOption {
    /// The language code it selects.
    pub language: String,
    /// Its name, usually in that language.
    pub label: Text,
    /// Only shown when this holds.
    pub when: Option<Condition>,
}

/// An invisible step choosing the next node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Tried in order; the first whose condition holds wins.
    pub routes: Vec<RouteRule>,
    /// Where to go when none holds.
    pub default: String,
}

/// One rule of a route node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The condition.
    pub when: Condition,
    /// Where it leads.
    pub next: String,
}

/// The final screen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// What the caller reads last.
    pub text: Text,
    /// Record a case with every variable set so far.
    #[serde(default)]
    pub open_case: bool,
    /// False allows texts that name police, detention or lawyers.
    #[serde(default = "yes")]
    pub discreet: bool,
}

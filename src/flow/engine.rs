//! The flow engine: a pure state machine.
//!
//! `start` shows the first screen; `step` takes the session's state and what
//! the caller typed and returns the next state, the reply, whether the
//! session ends, and effects for the caller of the engine to carry out
//! (opening a case). No I/O, no clock: time comes in as an argument, so the
//! engine's tests need no runtime and every step is reproducible.
//!
//! The engine relies on the validation in [`crate::flow`]: nodes it is sent
//! to exist. It still never panics on a state that names a missing node
//! (a flow edited while a session was open): that session starts over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Node, Pattern};
use super::{Flow, Visibility, screen_of, visible_languages, visible_options};
use crate::phone::{Country, PhoneNumber};
use crate::text::{normalize_input, truncate_chars};

/// Invalid answers in a row that end a session.
pub const MAX_INVALID: u8 = 3;

/// Where a session is. Small on purpose: it is stored after every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The node whose screen the caller is looking at.
    #[serde(rename = "n")]
    pub node: String,
    /// The chosen language; `None` until chosen (the default applies).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Variables set so far.
    #[serde(rename = "v", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Invalid answers in a row on this screen.
    #[serde(rename = "i", default, skip_serializing_if = "is_zero")]
    pub invalid: u8,
    /// Screens answered so far.
    #[serde(rename = "s", default)]
    pub steps: u32,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// Who is calling, as far as the flow cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller {
    /// The country of the caller's number, if known.
    pub country: Option<&'static Country>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Reached an end node.
    Completed,
    /// Three invalid answers in a row.
    TooManyInvalid,
}

impl Outcome {
    /// Every outcome, for zeroed metric series.
    pub const ALL: [Outcome; 2] = [Outcome::Completed, Outcome::TooManyInvalid];

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::TooManyInvalid => "invalid",
        }
    }
}

/// A case the flow asks to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseDraft {
    /// The flow that opened it.
    pub flow: String,
    /// The language of the session.
    pub lang: String,
    /// The caller's country (ISO code), when her number has a known prefix:
    /// dispatch routes "other city" by it.
    pub country: Option<String>,
    /// Every variable set (city, situation, location, callback, …).
    pub vars: BTreeMap<String, String>,
    /// When (ms since the Unix epoch), as given to `step`.
    pub opened_at_ms: u64,
}

/// Something the engine asks its caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record a case; the reply contains `{code}` for its code.
    OpenCase(CaseDraft),
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The state to save (meaningless once `end` is true).
    pub state: State,
    /// The screen to show.
    pub reply: String,
    /// Whether the session is over.
    pub end: bool,
    /// How it ended, when it did.
    pub outcome: Option<Outcome>,
    /// What to do besides replying.
    pub effects: Vec<Effect>,
}

impl State {
    /// The session's language, or — until she chooses one — her
    /// country's default ([`Flow::default_language`]).
    pub fn language<'a>(&'a self, flow: &'a Flow, caller: &Caller) -> &'a str {
        self.lang
            .as_deref()
            .unwrap_or_else(|| flow.default_language(caller.country))
    }
}

fn vis<'a>(caller: &Caller, vars: &'a BTreeMap<String, String>) -> Visibility<'a> {
    Visibility {
        country: caller.country,
        vars: Some(vars),
    }
}

/// Start a session: the first screen. `lang` preselects a language (from an
/// SMS keyword, say); it is ignored when the flow does not have it.
pub fn start(flow: &Flow, caller: &Caller, lang: Option<&str>, now_ms: u64) -> Step {
    let state = State {
        node: flow.spec.start.clone(),
        lang: lang
            .filter(|l| flow.spec.languages.iter().any(|x| x == l))
            .map(str::to_owned),
        vars: BTreeMap::new(),
        invalid: 0,
        steps: 0,
    };
    enter(flow, state, caller, now_ms)
}

/// Advance a session by one answer.
pub fn step(flow: &Flow, state: &State, caller: &Caller, input: &str, now_ms: u64) -> Step {
    advance(flow, state.clone(), caller, input, now_ms)
}

/// [`step`], consuming the state: what the gateway calls on every hop,
/// which has the session's state to give away and no use for a copy.
pub fn advance(flow: &Flow, mut state: State, caller: &Caller, input: &str, now_ms: u64) -> Step {
    let Some(node) = flow.node(&state.node) else {
        return start(flow, caller, state.lang.as_deref(), now_ms);
    };
    let answer = normalize_input(input);
    let next = match node {
        Node::Menu(m) => {
            let options = visible_options(m, &vis(caller, &state.vars));
            match options.into_iter().find(|(k, _)| *k == answer) {
                Some((_, o)) => {
                    for (k, v) in &o.set {
                        state.vars.insert(k.clone(), v.clone());
                    }
                    Some(o.next.as_str())
                }
                None => None,
            }
        }
        Node::Language(l) => {
            let options = visible_languages(flow, l, &vis(caller, &state.vars));
            match options.into_iter().find(|(k, _)| *k == answer) {
                Some((_, o)) => {
                    state.lang = Some(o.language.clone());
                    Some(l.next.as_str())
                }
                None => None,
            }
        }
        Node::Input(i) => {
            if i.skip.as_ref().is_some_and(|s| s.key == answer) {
                state.vars.remove(&i.var);
                Some(i.next.as_str())
            } else {
                match accept(i.pattern, &answer, caller) {
                    Some(value) => {
                        state
                            .vars
                            .insert(i.var.clone(), truncate_chars(&value, i.max_len).to_owned());
                        Some(i.next.as_str())
                    }
                    None => None,
                }
            }
        }
        // A session never rests on these; start over if one somehow does.
        Node::Route(_) | Node::End(_) => {
            return start(flow, caller, state.lang.as_deref(), now_ms);
        }
    };
    match next {
        Some(target) => {
            target.clone_into(&mut state.node);
            state.invalid = 0;
            state.steps += 1;
            enter(flow, state, caller, now_ms)
        }
        None => invalid(flow, state, node, caller),
    }
}

/// Show the current screen again without advancing (a repeated request
/// whose earlier answer is no longer remembered).
pub fn redisplay(flow: &Flow, state: &State, caller: &Caller) -> Step {
    match flow.node(&state.node) {
        Some(node @ (Node::Menu(_) | Node::Input(_) | Node::Language(_))) => Step {
            reply: shown(flow, state, node, caller, false),
            state: state.clone(),
            end: false,
            outcome: None,
            effects: Vec::new(),
        },
        _ => start(flow, caller, state.lang.as_deref(), 0),
    }
}

/// The screen of `node`, the node `state` rests on (the re-prompt with
/// `invalid`), in her language: from the flow's cache when it can be.
fn shown(flow: &Flow, state: &State, node: &Node, caller: &Caller, invalid: bool) -> String {
    let lang = state.language(flow, caller);
    screen_of(
        flow,
        &state.node,
        node,
        lang,
        caller.country,
        &state.vars,
        invalid,
    )
    .unwrap_or_default()
}

/// Check an answer against an input's pattern; the value to save.
fn accept(pattern: Pattern, answer: &str, caller: &Caller) -> Option<String> {
    if answer.is_empty() {
        return None;
    }
    match pattern {
        Pattern::Any => Some(answer.to_owned()),
        Pattern::Digits => answer
            .chars()
            .all(|c| c.is_ascii_digit())
            .then(|| answer.to_owned()),
        Pattern::Phone => PhoneNumber::parse_typed(answer, caller.country)
            .ok()
            .map(|p| p.as_str().to_owned()),
    }
}

fn invalid(flow: &Flow, mut state: State, node: &Node, caller: &Caller) -> Step {
    state.invalid = state.invalid.saturating_add(1);
    let lang = state.language(flow, caller).to_owned();
    if state.invalid >= MAX_INVALID {
        return Step {
            reply: flow.text(&flow.spec.messages.too_many_invalid, &lang, caller.country),
            state,
            end: true,
            outcome: Some(Outcome::TooManyInvalid),
            effects: Vec::new(),
        };
    }
    let reply = shown(flow, &state, node, caller, true);
    Step {
        state,
        reply,
        end: false,
        outcome: None,
        effects: Vec::new(),
    }
}

/// Arrive at `state.node`: follow routes, then show its screen.
fn enter(flow: &Flow, mut state: State, caller: &Caller, now_ms: u64) -> Step {
    // Validation rules out route cycles; the bound keeps a bad flow from
    // hanging the process even so.
    for _ in 0..=flow.spec.nodes.len() {
        let Some(node) = flow.node(&state.node) else {
            break;
        };
        match node {
            Node::Route(r) => {
                state.node = r
                    .routes
                    .iter()
                    .find(|rule| super::route_holds(&rule.when, caller.country, &state.vars))
                    .map_or_else(|| r.default.clone(), |rule| rule.next.clone());
            }
            Node::End(e) => {
                let lang = state.language(flow, caller).to_owned();
                let effects = if e.open_case {
                    vec![Effect::OpenCase(CaseDraft {
                        flow: flow.id().to_owned(),
                        lang: lang.clone(),
                        country: caller.country.map(|c| c.iso.to_owned()),
                        vars: state.vars.clone(),
                        opened_at_ms: now_ms,
                    })]
                } else {
                    Vec::new()
                };
                return Step {
                    reply: flow.text(&e.text, &lang, caller.country),
                    state,
                    end: true,
                    outcome: Some(Outcome::Completed),
                    effects,
                };
            }
            _ => {
                let reply = shown(flow, &state, node, caller, false);
                return Step {
                    state,
                    reply,
                    end: false,
                    outcome: None,
                    effects: Vec::new(),
                };
            }
        }
    }
    // Unreachable for a validated flow: end calmly rather than loop or panic.
    let lang = state.language(flow, caller).to_owned();
    Step {
        reply: flow.text(&flow.spec.messages.unavailable, &lang, caller.country),
        state,
        end: true,
        outcome: Some(Outcome::TooManyInvalid),
        effects: Vec::new(),
    }
}

#[cfg(test)]
mod tests;

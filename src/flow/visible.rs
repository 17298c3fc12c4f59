//! What a caller sees: which menu and language options are shown to her
//! (by country and by the variables set so far), the keys they get, and the
//! text of each node's screen. Route conditions are evaluated here too.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;

use super::Flow;
use super::model::{self, Condition, Node};
use crate::phone::Country;

/// What decides whether an option is shown.
#[derive(Debug, Clone, Copy)]
pub struct Visibility<'a> {
    /// The caller's country, from the number's prefix.
    pub country: Option<&'a Country>,
    /// Variables set so far; `None` means "assume every variable condition
    /// holds" (used to measure the largest possible screen).
    pub vars: Option<&'a BTreeMap<String, String>>,
}

fn holds(cond: &Condition, vis: &Visibility<'_>, menu_countries: &BTreeSet<&str>) -> bool {
    if let Some(countries) = &cond.country {
        return match vis.country {
            Some(c) if menu_countries.contains(c.iso) => countries.iter().any(|x| x == c.iso),
            _ => true, // a caller from a country this menu does not name sees everything
        };
    }
    let Some(vars) = vis.vars else { return true };
    let Some(var) = &cond.var else { return true };
    let value = vars.get(var);
    if let Some(list) = &cond.is_in {
        return value.is_some_and(|v| list.contains(v));
    }
    if let Some(list) = &cond.not_in {
        return value.is_none_or(|v| !list.contains(v));
    }
    true
}

/// Evaluate a route's condition (country conditions compare directly).
pub fn route_holds(
    cond: &Condition,
    country: Option<&Country>,
    vars: &BTreeMap<String, String>,
) -> bool {
    if let Some(countries) = &cond.country {
        return country.is_some_and(|c| countries.iter().any(|x| x == c.iso));
    }
    let names: BTreeSet<&str> = BTreeSet::new();
    holds(
        cond,
        &Visibility {
            country: None,
            vars: Some(vars),
        },
        &names,
    )
}

fn countries_named<'a>(conds: impl Iterator<Item = Option<&'a Condition>>) -> BTreeSet<&'a str> {
    conds
        .flatten()
        .filter_map(|c| c.country.as_ref())
        .flatten()
        .map(String::as_str)
        .collect()
}

/// The options of a menu shown to this caller, each with its key.
pub fn visible_options<'a>(
    menu: &'a model::Menu,
    vis: &Visibility<'_>,
) -> Vec<(String, &'a model::MenuOption)> {
    let named = countries_named(menu.options.iter().map(|o| o.when.as_ref()));
    let shown: Vec<&model::MenuOption> = menu
        .options
        .iter()
        .filter(|o| o.when.as_ref().is_none_or(|c| holds(c, vis, &named)))
        .collect();
    number(shown.into_iter().map(|o| (o.key.as_deref(), o)))
}

/// The language options shown to this caller, each with its key: in her
/// country's order when the flow has `[countries.XX] languages`, else as
/// written (each option's `when` deciding).
pub fn visible_languages<'a>(
    flow: &'a Flow,
    node: &'a model::LanguageNode,
    vis: &Visibility<'_>,
) -> Vec<(String, &'a model::LanguageOption)> {
    if let Some(settings) = flow.country(vis.country) {
        let shown = settings
            .languages
            .iter()
            .filter_map(|lang| node.options.iter().find(|o| &o.language == lang));
        return number(shown.map(|o| (None, o)));
    }
    let named = countries_named(node.options.iter().map(|o| o.when.as_ref()));
    let shown = node
        .options
        .iter()
        .filter(|o| o.when.as_ref().is_none_or(|c| holds(c, vis, &named)));
    number(shown.map(|o| (None, o)))
}

/// Give each item its explicit key, or the next free number.
fn number<'a, T>(items: impl Iterator<Item = (Option<&'a str>, T)>) -> Vec<(String, T)> {
    let items: Vec<(Option<&str>, T)> = items.collect();
    let explicit: BTreeSet<&str> = items.iter().filter_map(|(k, _)| *k).collect();
    let mut n = 0u32;
    items
        .into_iter()
        .map(|(key, item)| match key {
            Some(k) => (k.to_owned(), item),
            None => loop {
                n += 1;
                let k = n.to_string();
                if !explicit.contains(k.as_str()) {
                    break (k, item);
                }
            },
        })
        .collect()
}

/// Join a heading and option lines into one screen.
fn join_screen(head: Option<&str>, lines: &[String]) -> String {
    let mut out = String::new();
    if let Some(h) = head.filter(|h| !h.is_empty()) {
        out.push_str(h);
    }
    for line in lines {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// The screen a node shows, or `None` for nodes without one (routes).
/// With `invalid`, the re-prompt: the invalid hint above the same screen
/// (question and options, or the prompt), or — when the hint would push it
/// past one USSD screen — the same screen alone, which is sign enough.
pub fn screen(
    flow: &Flow,
    node: &Node,
    lang: &str,
    vis: &Visibility<'_>,
    invalid: bool,
) -> Option<String> {
    let plain = plain_screen(flow, node, lang, vis)?;
    if !invalid {
        return Some(plain);
    }
    let hint = flow.text(&flow.spec.messages.invalid, lang, vis.country);
    let with_hint = join_screen(Some(&hint), std::slice::from_ref(&plain));
    Some(if crate::text::measure(&with_hint).fits_ussd() {
        with_hint
    } else {
        plain
    })
}

fn plain_screen(flow: &Flow, node: &Node, lang: &str, vis: &Visibility<'_>) -> Option<String> {
    let text = |t: &model::Text| flow.text(t, lang, vis.country);
    Some(match node {
        Node::Menu(m) => {
            let lines: Vec<String> = visible_options(m, vis)
                .into_iter()
                .map(|(k, o)| format!("{k} {}", text(&o.label)))
                .collect();
            join_screen(Some(&text(&m.text)), &lines)
        }
        Node::Language(l) => {
            let lines: Vec<String> = visible_languages(flow, l, vis)
                .into_iter()
                .map(|(k, o)| format!("{k} {}", text(&o.label)))
                .collect();
            join_screen(l.text.as_ref().map(text).as_deref(), &lines)
        }
        Node::Input(i) => {
            let mut lines = vec![text(&i.text)];
            if let Some(skip) = &i.skip {
                lines.push(format!("{} {}", skip.key, text(&skip.label)));
            }
            join_screen(None, &lines)
        }
        Node::End(e) => text(&e.text),
        Node::Route(_) => return None,
    })
}

/// Screens a flow has rendered, so that a hop shows one by copying it.
///
/// A screen depends on the flow (this cache lives in its [`Flow`], which
/// never changes once loaded; a clone starts empty), the node, the
/// language, the caller's country (option conditions, `{fallback}`) and
/// whether it is a re-prompt. A node whose options read the variables set
/// so far is never cached: its screen differs between callers. Entries
/// are bounded by nodes × the flow's languages × countries × 2.
#[derive(Default)]
pub struct ScreenCache {
    map: parking_lot::RwLock<hashbrown::HashTable<CachedScreen>>,
    hasher: std::hash::RandomState,
}

struct CachedScreen {
    hash: u64,
    node: Box<str>,
    lang: Box<str>,
    country: Option<&'static str>,
    invalid: bool,
    text: Option<Box<str>>,
}

impl Clone for ScreenCache {
    /// Empty: a cloned flow may be changed before it is used.
    fn clone(&self) -> Self {
        ScreenCache::default()
    }
}

impl std::fmt::Debug for ScreenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenCache")
            .field("screens", &self.map.read().len())
            .finish()
    }
}

impl ScreenCache {
    /// How many screens are kept.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether what a node shows can depend on the variables set so far.
fn reads_vars(node: &Node) -> bool {
    let by_var = |w: Option<&Condition>| w.is_some_and(|c| c.country.is_none());
    match node {
        Node::Menu(m) => m.options.iter().any(|o| by_var(o.when.as_ref())),
        Node::Language(l) => l.options.iter().any(|o| by_var(o.when.as_ref())),
        Node::Input(_) | Node::End(_) | Node::Route(_) => false,
    }
}

/// [`screen`] for the node `id` of `flow` (`node` is `flow.node(id)`),
/// from the flow's cache when the screen does not depend on the caller's
/// variables.
pub fn screen_of(
    flow: &Flow,
    id: &str,
    node: &Node,
    lang: &str,
    country: Option<&'static crate::phone::Country>,
    vars: &BTreeMap<String, String>,
    invalid: bool,
) -> Option<String> {
    debug_assert!(
        flow.node(id).is_some_and(|n| std::ptr::eq(n, node)),
        "screen_of: {id} is not the node given"
    );
    let vis = Visibility {
        country,
        vars: Some(vars),
    };
    // Only the flow's own languages: the entries stay bounded whatever a
    // stored state says.
    if reads_vars(node) || !flow.spec.languages.iter().any(|l| l == lang) {
        return screen(flow, node, lang, &vis, invalid);
    }
    let iso = country.map(|c| c.iso);
    let cache = &flow.screens;
    let hash = cache.hasher.hash_one((id, lang, iso, invalid));
    let matches = |e: &CachedScreen| {
        e.hash == hash
            && &*e.node == id
            && &*e.lang == lang
            && e.country == iso
            && e.invalid == invalid
    };
    if let Some(e) = cache.map.read().find(hash, matches) {
        return e.text.as_deref().map(str::to_owned);
    }
    let text = screen(flow, node, lang, &vis, invalid);
    let mut map = cache.map.write();
    if map.find(hash, matches).is_none() {
        map.insert_unique(
            hash,
            CachedScreen {
                hash,
                node: id.into(),
                lang: lang.into(),
                country: iso,
                invalid,
                text: text.as_deref().map(Into::into),
            },
            |e| e.hash,
        );
    }
    text
}

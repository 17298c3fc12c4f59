//! Flows: the TOML menus callers walk through, and the engine that runs them.
//!
//! - [`model`] is the file format (what `docs/flows.md` documents).
//! - This module loads a folder of flow files and validates them: every
//!   reference resolves, every node is reachable and can reach an end, keys are
//!   unique, menus are not empty, translations exist. A [`Flow`] that exists has
//!   passed those checks, so the engine can rely on them.
//! - [`engine`] is the pure state machine: `step(flow, state, caller, input,
//!   now)`. It never does I/O and never reads the clock.
//! - [`lint`] measures screens against handset limits and looks for words that
//!   would give a caller away; `hotline check` prints its findings.

pub mod engine;
pub mod lint;
pub mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

pub use model::{Condition, FlowFile, Node, Text};

use crate::phone::Country;
use crate::problem::{Problem, quoted};

/// A validated flow, ready for the engine.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Where it was loaded from, for messages (`flows/legal_help.toml`).
    pub source: String,
    /// The flow as written.
    pub spec: FlowFile,
    /// The fallback phone number substituted for `{fallback}`.
    pub fallback: String,
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

    /// Resolve a text for a language, substituting `{fallback}`.
    pub fn text(&self, text: &Text, lang: &str) -> String {
        text.get(lang, &self.spec.default_language)
            .replace("{fallback}", &self.fallback)
    }

    /// Whether an SMS keyword starts this flow.
    pub fn has_keyword(&self, word: &str) -> bool {
        let word = word.trim().to_uppercase();
        self.spec.keywords.iter().any(|k| k.to_uppercase() == word)
    }
}

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

/// The language options shown to this caller, each with its key.
pub fn visible_languages<'a>(
    node: &'a model::LanguageNode,
    vis: &Visibility<'_>,
) -> Vec<(String, &'a model::LanguageOption)> {
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
/// With `invalid`, the re-prompt: the invalid hint, then the options (menus)
/// or the prompt (inputs).
pub fn screen(
    flow: &Flow,
    node: &Node,
    lang: &str,
    vis: &Visibility<'_>,
    invalid: bool,
) -> Option<String> {
    let hint = invalid.then(|| flow.text(&flow.spec.messages.invalid, lang));
    Some(match node {
        Node::Menu(m) => {
            let lines: Vec<String> = visible_options(m, vis)
                .into_iter()
                .map(|(k, o)| format!("{k} {}", flow.text(&o.label, lang)))
                .collect();
            let head = hint.unwrap_or_else(|| flow.text(&m.text, lang));
            join_screen(Some(&head), &lines)
        }
        Node::Language(l) => {
            let lines: Vec<String> = visible_languages(l, vis)
                .into_iter()
                .map(|(k, o)| format!("{k} {}", flow.text(&o.label, lang)))
                .collect();
            let head = hint.or_else(|| l.text.as_ref().map(|t| flow.text(t, lang)));
            join_screen(head.as_deref(), &lines)
        }
        Node::Input(i) => {
            let mut lines = vec![flow.text(&i.text, lang)];
            if let Some(skip) = &i.skip {
                lines.push(format!("{} {}", skip.key, flow.text(&skip.label, lang)));
            }
            join_screen(hint.as_deref(), &lines)
        }
        Node::End(e) => flow.text(&e.text, lang),
        Node::Route(_) => return None,
    })
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

/// Load every `*.toml` in `dir`. Returns the flows that loaded (possibly
/// none) and every problem found; errors mean the set must not be served.
pub fn load_dir(dir: &Path, display_dir: &str, fallback: &str) -> (FlowSet, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut set = FlowSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::error(
                display_dir,
                "",
                format!("cannot read folder: {e}"),
            ));
            return (set, problems);
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        problems.push(Problem::error(
            display_dir,
            "",
            "no flow files (*.toml) found",
        ));
    }
    let mut keywords: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let display = format!("{}/{name}", display_dir.trim_end_matches('/'));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::error(&display, "", format!("cannot read: {e}")));
                continue;
            }
        };
        match parse(&text, &display, fallback) {
            Ok((flow, mut found)) => {
                problems.append(&mut found);
                for k in &flow.spec.keywords {
                    let upper = k.to_uppercase();
                    if let Some(other) = keywords.insert(upper, flow.id().to_owned()) {
                        problems.push(Problem::error(
                            &display,
                            quoted("keywords", k),
                            format!("keyword already starts flow {other:?}"),
                        ));
                    }
                }
                if set.flows.contains_key(flow.id()) {
                    problems.push(Problem::error(
                        &display,
                        quoted("id", flow.id()),
                        "another flow file has the same id",
                    ));
                } else if !problems.iter().any(|p| p.is_error() && p.file == display) {
                    set.flows.insert(flow.id().to_owned(), Arc::new(flow));
                }
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    (set, problems)
}

/// Parse and validate one flow file. `Err` holds at least one error.
///
/// # Errors
/// The problems when the file is not valid TOML or not a valid flow.
pub fn parse(
    text: &str,
    display: &str,
    fallback: &str,
) -> Result<(Flow, Vec<Problem>), Vec<Problem>> {
    let spec: FlowFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        let key = match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}")
            }
            None => String::new(),
        };
        vec![Problem::error(display, key, msg)]
    })?;
    let flow = Flow {
        source: display.to_owned(),
        spec,
        fallback: fallback.to_owned(),
    };
    let problems = validate(&flow);
    if problems.iter().any(Problem::is_error) {
        Err(problems)
    } else {
        Ok((flow, problems))
    }
}

/// The nodes a node can lead to, with the key naming each edge.
fn edges(id: &str, node: &Node) -> Vec<(String, String)> {
    match node {
        Node::Menu(m) => m
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("nodes.{id}.options[{i}].next"), o.next.clone()))
            .collect(),
        Node::Input(i) => vec![(format!("nodes.{id}.next"), i.next.clone())],
        Node::Language(l) => vec![(format!("nodes.{id}.next"), l.next.clone())],
        Node::Route(r) => r
            .routes
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("nodes.{id}.routes[{i}].next"), x.next.clone()))
            .chain(std::iter::once((
                format!("nodes.{id}.default"),
                r.default.clone(),
            )))
            .collect(),
        Node::End(_) => Vec::new(),
    }
}

struct Checker<'a> {
    flow: &'a Flow,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn error(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems
            .push(Problem::error(&self.flow.source, key, msg));
    }

    fn warning(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems
            .push(Problem::warning(&self.flow.source, key, msg));
    }

    fn text(&mut self, key: &str, text: &Text) {
        let spec = &self.flow.spec;
        if let Text::Per(map) = text {
            for lang in map.keys() {
                if !spec.languages.contains(lang) {
                    self.error(
                        format!("{key}.{lang}"),
                        "language is not in this flow's `languages`",
                    );
                }
            }
            if !map.contains_key(&spec.default_language) {
                self.error(
                    key,
                    format!("missing the default language {:?}", spec.default_language),
                );
            }
            for lang in &spec.languages {
                if lang != &spec.default_language && !map.contains_key(lang) {
                    self.warning(
                        key,
                        format!(
                            "missing translation {lang:?} (falls back to {:?})",
                            spec.default_language
                        ),
                    );
                }
            }
        }
        for (lang, s) in text.entries() {
            if s.trim().is_empty() {
                let k = lang.map_or(key.to_owned(), |l| format!("{key}.{l}"));
                self.error(k, "text is empty");
            }
        }
    }

    fn condition(&mut self, key: &str, c: &Condition) {
        match (&c.country, &c.var) {
            (Some(list), None) => {
                if c.is_in.is_some() || c.not_in.is_some() {
                    self.error(key, "`in`/`not_in` go with `var`, not with `country`");
                }
                for iso in list {
                    if crate::phone::country_by_iso(iso).is_none() {
                        let known: Vec<&str> =
                            crate::phone::COUNTRIES.iter().map(|c| c.iso).collect();
                        self.error(
                            quoted(&format!("{key}.country"), iso),
                            format!("unknown country (known: {})", known.join(", ")),
                        );
                    }
                }
            }
            (None, Some(_)) => {
                if c.is_in.is_some() == c.not_in.is_some() {
                    self.error(
                        key,
                        "a `var` condition needs exactly one of `in` or `not_in`",
                    );
                }
            }
            _ => self.error(key, "a condition needs exactly one of `country` or `var`"),
        }
    }

    fn node(&mut self, id: &str, node: &Node) {
        let nodes = &self.flow.spec.nodes;
        for (key, target) in edges(id, node) {
            if !nodes.contains_key(&target) {
                self.error(quoted(&key, &target), "no such node");
            }
        }
        match node {
            Node::Menu(m) => {
                self.text(&format!("nodes.{id}.text"), &m.text);
                if m.options.is_empty() {
                    self.error(
                        format!("nodes.{id}.options"),
                        "a menu needs at least one option",
                    );
                }
                let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
                for (i, o) in m.options.iter().enumerate() {
                    let base = format!("nodes.{id}.options[{i}]");
                    self.text(&format!("{base}.label"), &o.label);
                    if let Some(c) = &o.when {
                        self.condition(&format!("{base}.when"), c);
                    }
                    if let Some(k) = &o.key {
                        if k.is_empty() || k.chars().any(char::is_whitespace) {
                            self.error(
                                quoted(&format!("{base}.key"), k),
                                "a key must be non-empty with no spaces",
                            );
                        }
                        if let Some(j) = seen.insert(k, i) {
                            self.error(
                                quoted(&format!("{base}.key"), k),
                                format!("duplicate key (also nodes.{id}.options[{j}])"),
                            );
                        }
                    }
                    for var in o.set.keys() {
                        if var.is_empty() {
                            self.error(format!("{base}.set"), "variable name is empty");
                        }
                    }
                }
            }
            Node::Input(i) => {
                self.text(&format!("nodes.{id}.text"), &i.text);
                if i.var.trim().is_empty() {
                    self.error(format!("nodes.{id}.var"), "an input needs a variable name");
                }
                if i.max_len == 0 || i.max_len > 160 {
                    self.error(
                        format!("nodes.{id}.max_len = {}", i.max_len),
                        "must be between 1 and 160",
                    );
                }
                if let Some(skip) = &i.skip {
                    self.text(&format!("nodes.{id}.skip.label"), &skip.label);
                    if skip.key.is_empty() || skip.key.chars().any(char::is_whitespace) {
                        self.error(
                            quoted(&format!("nodes.{id}.skip.key"), &skip.key),
                            "a key must be non-empty with no spaces",
                        );
                    }
                }
            }
            Node::Language(l) => {
                if let Some(t) = &l.text {
                    self.text(&format!("nodes.{id}.text"), t);
                }
                if l.options.is_empty() {
                    self.error(
                        format!("nodes.{id}.options"),
                        "a language menu needs at least one option",
                    );
                }
                let mut seen = BTreeSet::new();
                for (i, o) in l.options.iter().enumerate() {
                    let key = format!("nodes.{id}.options[{i}].language");
                    if !self.flow.spec.languages.contains(&o.language) {
                        self.error(
                            quoted(&key, &o.language),
                            "language is not in this flow's `languages`",
                        );
                    }
                    if !seen.insert(&o.language) {
                        self.error(quoted(&key, &o.language), "duplicate language option");
                    }
                    if let Some(c) = &o.when {
                        self.condition(&format!("nodes.{id}.options[{i}].when"), c);
                    }
                }
            }
            Node::Route(r) => {
                for (i, rule) in r.routes.iter().enumerate() {
                    self.condition(&format!("nodes.{id}.routes[{i}].when"), &rule.when);
                }
            }
            Node::End(e) => {
                self.text(&format!("nodes.{id}.text"), &e.text);
                let uses_code = e.text.entries().iter().any(|(_, s)| s.contains("{code}"));
                if uses_code && !e.open_case {
                    self.error(
                        format!("nodes.{id}.text"),
                        "`{code}` is only known on a node with open_case = true",
                    );
                }
            }
        }
    }

    fn graph(&mut self) {
        let spec = &self.flow.spec;
        let nodes = &spec.nodes;
        let outs: BTreeMap<&str, Vec<String>> = nodes
            .iter()
            .map(|(id, n)| {
                (
                    id.as_str(),
                    edges(id, n)
                        .into_iter()
                        .map(|(_, t)| t)
                        .filter(|t| nodes.contains_key(t))
                        .collect(),
                )
            })
            .collect();
        // Reachable from the start.
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut todo = vec![spec.start.as_str()];
        while let Some(n) = todo.pop() {
            if nodes.contains_key(n) && reached.insert(n) {
                todo.extend(outs[n].iter().map(String::as_str));
            }
        }
        for id in nodes.keys() {
            if !reached.contains(id.as_str()) {
                self.error(
                    format!("nodes.{id}"),
                    format!("unreachable from start = {:?}", spec.start),
                );
            }
        }
        // Able to reach an end.
        let mut ends: BTreeSet<&str> = nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::End(_)))
            .map(|(id, _)| id.as_str())
            .collect();
        loop {
            let before = ends.len();
            for (id, targets) in &outs {
                if targets.iter().any(|t| ends.contains(t.as_str())) {
                    ends.insert(id);
                }
            }
            if ends.len() == before {
                break;
            }
        }
        for id in nodes.keys() {
            if reached.contains(id.as_str()) && !ends.contains(id.as_str()) {
                self.error(
                    format!("nodes.{id}"),
                    "no path from this node ever reaches an end node",
                );
            }
        }
        // Route nodes that lead only to route nodes in a cycle would spin.
        for (id, n) in nodes {
            if matches!(n, Node::Route(_)) && self.route_cycle(id) {
                self.error(
                    format!("nodes.{id}"),
                    "route nodes lead to each other in a circle",
                );
            }
        }
        self.must_set_city();
    }

    fn route_cycle(&self, start: &str) -> bool {
        let nodes = &self.flow.spec.nodes;
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_owned()];
        while let Some(id) = todo.pop() {
            if let Some(Node::Route(r)) = nodes.get(&id) {
                for t in r
                    .routes
                    .iter()
                    .map(|x| &x.next)
                    .chain(std::iter::once(&r.default))
                {
                    if t == start {
                        return true;
                    }
                    if seen.insert(t.clone()) {
                        todo.push(t.clone());
                    }
                }
            }
        }
        false
    }

    /// Every path to an `open_case` end must have set `city`.
    fn must_set_city(&mut self) {
        let spec = &self.flow.spec;
        // Must-analysis: `has[n]` = city is certainly set on arrival at n.
        let mut has: BTreeMap<&str, bool> = spec.nodes.keys().map(|k| (k.as_str(), true)).collect();
        if let Some(v) = has.get_mut(spec.start.as_str()) {
            *v = false;
        }
        loop {
            let mut changed = false;
            for (id, node) in &spec.nodes {
                let here = has[id.as_str()];
                let outs: Vec<(&String, bool)> = match node {
                    Node::Menu(m) => m
                        .options
                        .iter()
                        .map(|o| (&o.next, here || o.set.contains_key("city")))
                        .collect(),
                    Node::Input(i) => vec![(&i.next, here || i.var == "city")],
                    Node::Language(l) => vec![(&l.next, here)],
                    Node::Route(r) => r
                        .routes
                        .iter()
                        .map(|x| &x.next)
                        .chain(std::iter::once(&r.default))
                        .map(|t| (t, here))
                        .collect(),
                    Node::End(_) => Vec::new(),
                };
                for (t, v) in outs {
                    if let Some(slot) = has.get_mut(t.as_str())
                        && *slot
                        && !v
                    {
                        *slot = false;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for (id, node) in &spec.nodes {
            if let Node::End(e) = node
                && e.open_case
                && !has[id.as_str()]
            {
                self.error(
                    format!("nodes.{id}.open_case"),
                    "a path reaches this node without setting the variable `city`",
                );
            }
        }
    }
}

/// Check a parsed flow; returns every problem (errors and warnings).
pub fn validate(flow: &Flow) -> Vec<Problem> {
    let mut c = Checker {
        flow,
        problems: Vec::new(),
    };
    let spec = &flow.spec;
    if spec.id.trim().is_empty()
        || !spec
            .id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        c.error(quoted("id", &spec.id), "use letters, digits, `_` or `-`");
    }
    if spec.languages.is_empty() {
        c.error("languages", "name at least one language");
    }
    if !spec.languages.contains(&spec.default_language) {
        c.error(
            quoted("default_language", &spec.default_language),
            "not in `languages`",
        );
    }
    if !spec.nodes.contains_key(&spec.start) {
        c.error(quoted("start", &spec.start), "no such node");
    }
    if spec.session_timeout_secs == 0 || spec.sms_session_timeout_secs == 0 {
        c.error("session_timeout_secs", "must be more than zero");
    }
    for k in &spec.keywords {
        if k.trim().is_empty() || k.split_whitespace().count() != 1 {
            c.error(quoted("keywords", k), "a keyword is one word");
        }
    }
    c.text("messages.invalid", &spec.messages.invalid);
    c.text("messages.too_many_invalid", &spec.messages.too_many_invalid);
    c.text("messages.unavailable", &spec.messages.unavailable);
    if let Some(t) = &spec.messages.sms_help {
        c.text("messages.sms_help", t);
    }
    for (key, text) in [
        ("messages.confirm", &spec.messages.confirm),
        ("messages.unanswered", &spec.messages.unanswered),
    ] {
        if let Some(t) = text {
            c.text(key, t);
        }
    }
    let opens_cases = spec
        .nodes
        .values()
        .any(|n| matches!(n, Node::End(e) if e.open_case));
    if opens_cases && (spec.messages.confirm.is_none() || spec.messages.unanswered.is_none()) {
        c.warning(
            "messages",
            "this flow opens cases but lacks `confirm` or `unanswered`: the caller will not be told when a lawyer accepts, or that nobody did",
        );
    }
    for (id, node) in &spec.nodes {
        c.node(id, node);
    }
    if !c.problems.iter().any(Problem::is_error) {
        c.graph();
    }
    c.problems
}

#[cfg(test)]
mod tests;

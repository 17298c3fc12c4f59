//! Validation of a parsed flow: every reference resolves, every node is
//! reachable and can reach an end, keys are unique, menus are not empty,
//! translations exist, and every path to a case sets `city`. A [`Flow`] that
//! loaded has passed these checks, so the engine can rely on them.

use std::collections::{BTreeMap, BTreeSet};

use super::Flow;
use super::model::{Condition, End, Input, LanguageNode, Menu, Node, Text};
use crate::problem::{Problem, quoted};

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
            Node::Menu(m) => self.menu(id, m),
            Node::Input(i) => self.input(id, i),
            Node::Language(l) => self.language(id, l),
            Node::Route(r) => {
                for (i, rule) in r.routes.iter().enumerate() {
                    self.condition(&format!("nodes.{id}.routes[{i}].when"), &rule.when);
                }
            }
            Node::End(e) => self.end(id, e),
        }
    }

    fn menu(&mut self, id: &str, m: &Menu) {
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

    fn input(&mut self, id: &str, i: &Input) {
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

    fn language(&mut self, id: &str, l: &LanguageNode) {
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

    fn end(&mut self, id: &str, e: &End) {
        self.text(&format!("nodes.{id}.text"), &e.text);
        let uses_code = e.text.entries().iter().any(|(_, s)| s.contains("{code}"));
        if uses_code && !e.open_case {
            self.error(
                format!("nodes.{id}.text"),
                "`{code}` is only known on a node with open_case = true",
            );
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
        self.should_set_situation();
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

    /// Every path to an `open_case` end must have set `city`, and only a
    /// menu option may set it: a city she types ("Karakol") is no roster
    /// city, so her case would reach no lawyer — and `hotline check`
    /// compares the roster with the cities the menus set.
    fn must_set_city(&mut self) {
        let typed: Vec<String> = self
            .flow
            .spec
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Input(i) if i.var == "city"))
            .map(|(id, _)| id.clone())
            .collect();
        for id in typed {
            self.error(
                format!("nodes.{id}.var"),
                "`city` cannot be typed in: a typed city names no roster city and its case would reach no lawyer; set it with a menu option's `set = { city = \"…\" }` (an \"other city\" option can be a roster route), and keep what she types in another variable",
            );
        }
        let spec = &self.flow.spec;
        // A typed city is refused above: it sets nothing a roster can route.
        let has = certainly_set(spec, "city", false);
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

    /// Every path to an `open_case` end should set `situation`: the
    /// lawyers' texts show it (`{situation}` in an offer, and in the
    /// coordinator's `unanswered`), and without it they say `unknown`
    /// where the lawyer looks first to know how urgent it is.
    fn should_set_situation(&mut self) {
        let spec = &self.flow.spec;
        let has = certainly_set(spec, "situation", true);
        let missing: Vec<String> = spec
            .nodes
            .iter()
            .filter(|(id, n)| matches!(n, Node::End(e) if e.open_case) && !has[id.as_str()])
            .map(|(id, _)| id.clone())
            .collect();
        for id in missing {
            self.warning(
                format!("nodes.{id}.open_case"),
                "a path reaches this node without setting the variable `situation`: the lawyers' offer shows it ({situation}), and would say `unknown` instead of what is happening. Set it with a menu option's `set = { situation = \"…\" }` (an id of the lawyer texts' [LANG.situations])",
            );
        }
    }
}

/// For each node, whether `var` is certainly set on arrival there (set on
/// every path from the start): by a menu option's `set`, or, when
/// `by_input`, by an `input` node for it.
fn certainly_set<'a>(
    spec: &'a super::model::FlowFile,
    var: &str,
    by_input: bool,
) -> BTreeMap<&'a str, bool> {
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
                    .map(|o| (&o.next, here || o.set.contains_key(var)))
                    .collect(),
                Node::Input(i) => vec![(&i.next, here || (by_input && i.var == var))],
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
    has
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
    if let Some(t) = &spec.messages.received {
        c.text("messages.received", t);
    }
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
    c.problems.extend(super::countries::validate_flow(flow));
    if !c.problems.iter().any(Problem::is_error) {
        c.graph();
    }
    c.problems
}

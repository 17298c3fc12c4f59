//! Live reload: flows, roster (with its phones file) and lawyers' texts
//! re-read while the gateway runs (`SIGHUP`, or `POST /reload` on the
//! admin listener).
//!
//! The new set is loaded and checked by [`crate::app::load_set`], the
//! function `hotline check` uses, and the config file is read again and
//! checked as `check` would (so a reload also refuses the per-country
//! routing errors that `serve` does not refuse at start). With any error the reload is rejected: the
//! problems are logged (and answered to `POST /reload`) and the running set
//! stays. Otherwise the set is swapped in one step ([`Live::set`]): the
//! dispatcher first, then the flows, and every request reads each once, so
//! no request sees half of a set. Cases already open keep their state in
//! the store; their next timer or command is handled with the new roster.
//!
//! Not reloaded, because they are wired into listeners, connections and
//! keys: everything in the config file itself (listener addresses, the
//! store, channels and their credentials, the privacy key, limits, the
//! paths of the files above). A reload that finds the config file changed
//! logs a warning naming the keys that need a restart ([`LOG_RESTART_KEYS`])
//! and answers them to `POST /reload` ([`REPLY_RESTART_KEYS`]); it still
//! applies the files when they pass the check, and its warning says
//! whether it did ([`LOG_RELOADED`] or [`LOG_NOT_RELOADED`]).
//!
//! Live sessions finish on the flow version they began on: a session
//! records its flow's [`Flow::version`] (a digest of the file's text), and
//! [`FlowVersions`] keeps the flows replaced by the last
//! [`KEEP_GENERATIONS`] reloads. A session whose version is gone starts
//! again at the first screen of the current flow.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::flow::{Flow, FlowSet};
use crate::problem::Problem;

/// The warning a reload logs (with `keys=` naming them) when the config
/// file changed: its keys take effect only after a restart. It ends with
/// [`LOG_RELOADED`] or [`LOG_NOT_RELOADED`]. README.md and ops/RUNBOOK.md
/// quote these lines (tests/docs.rs).
pub const LOG_RESTART_KEYS: &str =
    "reload: the config file changed; these keys take effect only after a restart";
/// How [`LOG_RESTART_KEYS`] ends when the files were swapped in.
pub const LOG_RELOADED: &str = "(flows, roster, phones and lawyer texts were reloaded)";
/// How [`LOG_RESTART_KEYS`] ends when the reload was rejected.
pub const LOG_NOT_RELOADED: &str = "(the reload was rejected: nothing was reloaded)";
/// The line a reload logs when the new set is in force.
pub const LOG_APPLIED: &str = "reload: new flows, roster and texts in force";
/// The line a reload logs when it was rejected.
pub const LOG_REJECTED: &str = "reload rejected: the running flows, roster and texts stay";
/// How the answer to `POST /reload` names the keys that need a restart.
pub const REPLY_RESTART_KEYS: &str = "restart needed for: ";

/// A value swapped whole while readers hold the one they read: a read
/// clones an `Arc` under a lock held for no longer than that.
pub struct Live<T: ?Sized>(Arc<RwLock<Arc<T>>>);

impl<T: ?Sized> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl<T: ?Sized> From<Arc<T>> for Live<T> {
    fn from(value: Arc<T>) -> Self {
        Live(Arc::new(RwLock::new(value)))
    }
}

impl<T: ?Sized> Live<T> {
    /// The value now (keep it for the whole request).
    pub fn get(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replace the value; readers holding the old one keep it.
    pub fn set(&self, value: Arc<T>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }
}

/// How many reloads a replaced flow version outlives (sessions last
/// minutes; a few quick reloads in a row still leave them their flow).
pub const KEEP_GENERATIONS: u64 = 3;

/// The flows in force, and the versions the last reloads replaced.
#[derive(Debug, Clone, Default)]
pub struct FlowVersions {
    /// The configuration generation: 1 for the set the process started
    /// with, one more for each accepted reload.
    pub generation: u64,
    /// The flows new sessions start.
    pub current: Arc<FlowSet>,
    /// Replaced flows, with the last generation each was current in.
    retired: Vec<(u64, Arc<Flow>)>,
}

impl std::ops::Deref for FlowVersions {
    type Target = FlowSet;
    fn deref(&self) -> &FlowSet {
        &self.current
    }
}

impl FlowVersions {
    /// Generation 1: the flows the process started with.
    pub fn new(current: Arc<FlowSet>) -> Self {
        FlowVersions {
            generation: 1,
            current,
            retired: Vec::new(),
        }
    }

    /// The next generation, serving `current`, keeping the versions it
    /// replaces for [`KEEP_GENERATIONS`] reloads.
    #[must_use]
    pub fn next(&self, current: Arc<FlowSet>) -> Self {
        let generation = self.generation + 1;
        let live = |f: &Flow| current.get(f.id()).is_some_and(|c| c.version == f.version);
        let mut retired: Vec<(u64, Arc<Flow>)> = self
            .current
            .flows
            .values()
            .filter(|f| !live(f))
            .map(|f| (self.generation, f.clone()))
            .collect();
        for (g, f) in &self.retired {
            let kept = generation - g <= KEEP_GENERATIONS;
            let dup = retired
                .iter()
                .any(|(_, r)| r.id() == f.id() && r.version == f.version);
            if kept && !dup && !live(f) {
                retired.push((*g, f.clone()));
            }
        }
        FlowVersions {
            generation,
            current,
            retired,
        }
    }

    /// The flow a session on flow `id`, version `version`, continues on:
    /// the current one when the versions match (or the session predates
    /// versions: `version` empty), else a retired one; `None` when that
    /// version is gone.
    pub fn session_flow(&self, id: &str, version: &str) -> Option<&Arc<Flow>> {
        if let Some(f) = self.current.get(id)
            && (version.is_empty() || f.version == version)
        {
            return Some(f);
        }
        self.retired
            .iter()
            .map(|(_, f)| f)
            .find(|f| f.id() == id && f.version == version)
    }

    /// Every version kept, by flow id (for tests and the log).
    pub fn versions(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in self
            .current
            .flows
            .values()
            .chain(self.retired.iter().map(|(_, f)| f))
        {
            out.entry(f.id().to_owned())
                .or_default()
                .push(f.version.clone());
        }
        out
    }
}

/// What a reload did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Whether the new set was swapped in.
    pub applied: bool,
    /// The generation in force afterwards.
    pub generation: u64,
    /// Every problem found (errors when rejected; warnings otherwise).
    pub problems: Vec<Problem>,
    /// Keys of the config file that changed and need a restart.
    pub restart_keys: Vec<String>,
}

impl Report {
    /// The text `POST /reload` answers: the result, the generation, the
    /// keys that need a restart, and one line per problem.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} generation={}\n",
            if self.applied { "reloaded" } else { "rejected" },
            self.generation
        );
        if !self.restart_keys.is_empty() {
            out.push_str(&format!(
                "{REPLY_RESTART_KEYS}{}\n",
                self.restart_keys.join(", ")
            ));
        }
        for p in &self.problems {
            out.push_str(&format!("{p}\n"));
        }
        out
    }
}

/// The dotted keys whose values differ between two config files (a table
/// present in one only counts as its own key). Values are never shown:
/// the file may hold secrets.
pub fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    diff("", old, new, &mut out);
    out
}

fn diff(prefix: &str, old: &toml::Table, new: &toml::Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (old.get(k), new.get(k)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => diff(&path, a, b, out),
            (a, b) if a != b => out.push(path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped flow, its text varied by `edit` (a new version).
    fn set(edit: &str) -> Arc<FlowSet> {
        let text = format!("{}\n# {edit}\n", include_str!("../flows/legal_help.toml"));
        let (f, _) = crate::flow::parse(&text, "legal_help.toml", "112").expect("shipped flow");
        let mut s = FlowSet::default();
        s.flows.insert(f.id().to_owned(), Arc::new(f));
        Arc::new(s)
    }

    #[test]
    fn replaced_versions_outlive_a_few_reloads_then_go() {
        let a = "legal_help";
        let g1 = FlowVersions::new(set("one"));
        let v1 = g1.get(a).unwrap().version.clone();
        let g2 = g1.next(set("two"));
        let v2 = g2.get(a).unwrap().version.clone();
        assert_ne!(v1, v2);
        assert_eq!(g2.generation, 2);
        assert_eq!(g2.session_flow(a, &v1).unwrap().version, v1);
        assert_eq!(g2.session_flow(a, &v2).unwrap().version, v2);
        assert_eq!(g2.session_flow(a, "").unwrap().version, v2);
        // Unchanged reloads keep it until it is KEEP_GENERATIONS behind.
        let mut g = g2;
        for _ in 0..KEEP_GENERATIONS - 1 {
            g = g.next(set("two"));
            assert!(g.session_flow(a, &v1).is_some(), "gen {}", g.generation);
        }
        g = g.next(set("two"));
        assert!(g.session_flow(a, &v1).is_none());
        assert_eq!(g.versions()[a], vec![v2]);
    }

    #[test]
    fn changed_keys_names_keys_not_values() {
        let old: toml::Table =
            toml::from_str("[server]\nlisten = \"0.0.0.0:8080\"\n[store]\nkind = \"memory\"\n")
                .unwrap();
        let new: toml::Table = toml::from_str(
            "[server]\nlisten = \"0.0.0.0:9090\"\n[store]\nkind = \"memory\"\n[outbox]\ntps = 3\n",
        )
        .unwrap();
        assert_eq!(changed_keys(&old, &new), vec!["outbox", "server.listen"]);
        assert!(changed_keys(&old, &old).is_empty());
    }
}

//! The problem collector every section's validator writes to, and the small
//! checks they share.
//!
//! Validators never stop at the first problem: each one records what is
//! wrong, substitutes a harmless value and carries on, so one run of
//! `hotline check` names every problem in the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::env::Env;
use crate::problem::{Problem, quoted};

/// Problems found so far in one file.
pub(super) struct Ctx<'a> {
    /// The file as the operator named it, for every problem.
    pub file: &'a str,
    /// Everything found, in the order found.
    pub problems: Vec<Problem>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str) -> Self {
        Ctx {
            file,
            problems: Vec::new(),
        }
    }

    /// A problem with a key of the file.
    pub fn error(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::error(self.file, key, msg));
    }

    /// A warning about a key of the file: `check` exits 3, `serve` runs.
    pub fn warning(&mut self, key: impl Into<String>, msg: impl Into<String>) {
        self.problems.push(Problem::warning(self.file, key, msg));
    }

    /// A problem with an environment variable (`NAME="value": is not valid: …`).
    pub fn env_error(&mut self, name: &str, value: &str, msg: &str) {
        self.problems.push(Problem::error(
            "environment",
            format!("{name}={value:?}"),
            format!("is not valid: {msg}"),
        ));
    }

    /// A listen address: the environment variable `env_name` if set, else
    /// the file's `key`. A bad one is reported and replaced by a harmless one.
    pub fn addr(
        &mut self,
        key: &str,
        file_value: &str,
        env_name: &str,
        env: &dyn Env,
    ) -> SocketAddr {
        const MSG: &str = "not an address like 127.0.0.1:8080";
        if let Some(v) = env.var(env_name) {
            return v.parse().unwrap_or_else(|_| {
                self.env_error(env_name, &v, MSG);
                SocketAddr::from(([127, 0, 0, 1], 0))
            });
        }
        file_value.parse().unwrap_or_else(|_| {
            self.error(quoted(key, file_value), MSG);
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    /// `key = 0` is a problem.
    pub fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.error(format!("{key} = 0"), "must be more than zero");
        }
    }
}

/// A path written without `.` and `x/..` parts, for messages
/// (`config/../flows` reads as `flows`).
pub(super) fn lexical(path: &Path) -> String {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let p: PathBuf = out.iter().collect();
    if p.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        p.display().to_string()
    }
}

//! Problems found while loading configuration and flows.
//!
//! Every problem names its file and the key it is about, so that an operator
//! can go straight to the line: `flows/x.toml: nodes.city.options[2].next =
//! "sity": no such node`.

use std::fmt;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The gateway runs, but someone should look (`hotline check` fails).
    Warning,
    /// The gateway refuses to start.
    Error,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// How serious it is.
    pub severity: Severity,
    /// The file, as the operator named it.
    pub file: String,
    /// The key, with its value where that helps (`nodes.city.start = "x"`).
    pub key: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Problem {
    /// An error: the gateway will not start with it.
    pub fn error(file: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            file: file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A warning: reported by `hotline check`, logged by `hotline serve`.
    pub fn warning(file: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(file, key, message)
        }
    }

    /// Whether this problem stops the gateway from starting.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// Quote a value for a problem's key, as TOML would write it.
pub fn quoted(key: &str, value: &str) -> String {
    format!("{key} = {value:?}")
}

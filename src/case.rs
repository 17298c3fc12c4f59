//! Cases: what a completed flow records for a lawyer.
//!
//! A case's personal data (the caller's number, the callback number, the
//! location text) lives only inside [`CaseData`], which is sealed before it
//! reaches a store. The anonymous fields (city, situation, abuse type,
//! times) are what statistics may use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::flow::engine::CaseDraft;
use crate::phone::PhoneNumber;

/// Everything recorded about a case. Sealed at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseData {
    /// Unique id (not the short code; safe for logs).
    pub id: String,
    /// The flow that opened it.
    pub flow: String,
    /// The caller's language.
    pub lang: String,
    /// The channel it came in on.
    pub channel: String,
    /// The caller's number.
    pub caller: PhoneNumber,
    /// The city id from the flow (`bishkek`, `osh`, `poltava`, `other`).
    pub city: String,
    /// Every flow variable (situation, location, callback, abuse, …).
    pub vars: BTreeMap<String, String>,
    /// When the flow completed (ms since the Unix epoch).
    pub opened_at_ms: u64,
}

impl CaseData {
    /// A case from the engine's draft.
    pub fn from_draft(id: String, channel: &str, caller: PhoneNumber, draft: CaseDraft) -> Self {
        CaseData {
            id,
            flow: draft.flow,
            lang: draft.lang,
            channel: channel.to_owned(),
            caller,
            city: draft
                .vars
                .get("city")
                .cloned()
                .unwrap_or_else(|| "other".to_owned()),
            vars: draft.vars,
            opened_at_ms: draft.opened_at_ms,
        }
    }

    /// The number to call back: the one she typed, or the one she called from.
    pub fn callback(&self) -> &str {
        self.vars
            .get("callback")
            .map_or(self.caller.as_str(), String::as_str)
    }
}

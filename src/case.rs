//! Cases: what a completed flow records for a lawyer.
//!
//! A case's personal data (the caller's number, the callback number, the
//! location text) lives only inside [`CaseData`], which is sealed before it
//! reaches a store, and is erased a while after the case closes
//! ([`CaseData::erase`]). The anonymous fields (city, situation, abuse type,
//! language, times) stay for statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dispatch::lifecycle::Dispatch;
use crate::flow::engine::CaseDraft;
use crate::phone::PhoneNumber;

/// Flow variables that identify a person or a place; erased by retention.
pub const PERSONAL_VARS: &[&str] = &["location", "callback"];

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
    /// The caller's number (`None` once erased).
    pub caller: Option<PhoneNumber>,
    /// The caller's country (ISO code) when her number's prefix is known:
    /// "other city" is routed by it, and her messages carry her country's
    /// fallback number. Kept after erasure: a country identifies no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The city id from the flow (`bishkek`, `osh`, `poltava`, `other`).
    pub city: String,
    /// Every flow variable (situation, location, callback, abuse, …).
    pub vars: BTreeMap<String, String>,
    /// When the flow completed (ms since the Unix epoch).
    pub opened_at_ms: u64,
    /// Where the case is with the lawyers.
    #[serde(default)]
    pub dispatch: Dispatch,
}

impl CaseData {
    /// A case from the engine's draft.
    pub fn from_draft(id: String, channel: &str, caller: PhoneNumber, draft: CaseDraft) -> Self {
        CaseData {
            id,
            flow: draft.flow,
            lang: draft.lang,
            channel: channel.to_owned(),
            caller: Some(caller),
            country: draft.country,
            city: draft
                .vars
                .get("city")
                .cloned()
                .unwrap_or_else(|| "other".to_owned()),
            vars: draft.vars,
            opened_at_ms: draft.opened_at_ms,
            dispatch: Dispatch::default(),
        }
    }

    /// The number to call back: the one she typed, or the one she called
    /// from (`None` once erased).
    pub fn callback(&self) -> Option<&str> {
        self.vars
            .get("callback")
            .map(String::as_str)
            .or_else(|| self.caller.as_ref().map(PhoneNumber::as_str))
    }

    /// The caller's country, as a [`Country`](crate::phone::Country).
    pub fn country(&self) -> Option<&'static crate::phone::Country> {
        self.country
            .as_deref()
            .and_then(crate::phone::country_by_iso)
    }

    /// Whether the number to call back is the phone she called from (which
    /// may be in other hands), rather than another number she typed.
    pub fn callback_is_own_phone(&self) -> bool {
        match (self.vars.get("callback"), &self.caller) {
            (None, _) => true,
            (Some(typed), Some(caller)) => typed == caller.as_str(),
            (Some(_), None) => false,
        }
    }

    /// Erase the personal data: numbers and location. What remains (city,
    /// situation, abuse, language, times, dispatch history) identifies no one.
    pub fn erase(&mut self) {
        self.caller = None;
        for v in PERSONAL_VARS {
            self.vars.remove(*v);
        }
        self.dispatch.erased = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasing_keeps_only_anonymous_fields() {
        let mut vars = BTreeMap::new();
        for (k, v) in [
            ("city", "osh"),
            ("situation", "report"),
            ("abuse", "bribe"),
            ("location", "ул. Ленина 5"),
            ("callback", "+996700111222"),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        let mut c = CaseData {
            id: "c_1".into(),
            flow: "legal_help".into(),
            lang: "ky".into(),
            channel: "africastalking".into(),
            caller: PhoneNumber::parse_international("+996555123456").ok(),
            country: Some("KG".into()),
            city: "osh".into(),
            vars,
            opened_at_ms: 5,
            dispatch: Dispatch::default(),
        };
        assert_eq!(c.callback(), Some("+996700111222"));
        c.erase();
        let json = serde_json::to_string(&c).unwrap();
        for secret in ["555123456", "700111222", "Ленина"] {
            assert!(!json.contains(secret), "{json}");
        }
        assert_eq!(c.vars["situation"], "report");
        assert_eq!(c.vars["abuse"], "bribe");
        assert_eq!(c.city, "osh");
        assert_eq!(c.callback(), None);
        assert!(c.dispatch.erased);
    }
}

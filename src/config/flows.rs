//! `[flows]`: where the menus live, which one a dial starts, and whether
//! cases they open may be handled outside this gateway.

use std::path::Path;

use serde::Deserialize;

use super::check::{Ctx, lexical};
use super::schema::FlowsConfig;

/// `[flows]` as written: every key but `cases_handled_elsewhere` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlows {
    dir: String,
    default: String,
    fallback_phone: String,
    #[serde(default)]
    cases_handled_elsewhere: bool,
}

/// Check `[flows]` (required); `dir` resolves against `base`.
pub(super) fn validate(f: Option<&RawFlows>, base: &Path, c: &mut Ctx<'_>) -> FlowsConfig {
    let Some(f) = f else {
        c.error(
            "flows",
            "missing: add a [flows] table with dir, default and fallback_phone",
        );
        return FlowsConfig {
            dir: base.join("flows"),
            display_dir: "flows".into(),
            default: String::new(),
            fallback_phone: String::new(),
            cases_handled_elsewhere: false,
        };
    };
    if f.fallback_phone.trim().is_empty() {
        c.error(
            "flows.fallback_phone",
            "set the number callers can ring when the menu cannot help",
        );
    }
    FlowsConfig {
        dir: base.join(&f.dir),
        display_dir: lexical(&base.join(&f.dir)),
        default: f.default.clone(),
        fallback_phone: f.fallback_phone.clone(),
        cases_handled_elsewhere: f.cases_handled_elsewhere,
    }
}

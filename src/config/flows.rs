//! `[flows]`: where the menus live and which one a dial starts.

use std::path::Path;

use serde::Deserialize;

use super::check::{Ctx, lexical};
use super::schema::FlowsConfig;

/// `[flows]` as written: every key is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlows {
    dir: String,
    default: String,
    fallback_phone: String,
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
    }
}

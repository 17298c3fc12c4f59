//! `[flows]`: where the menus live, which one a dial starts, and the hotline
//! numbers callers are told to ring — one per country, so that nobody is
//! sent to a number in another country.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::check::{Ctx, lexical};
use super::schema::FlowsConfig;
use crate::flow::Fallbacks;

/// `[flows]` as written: every key but `fallback_phones` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlows {
    dir: String,
    default: String,
    fallback_phone: String,
    #[serde(default)]
    fallback_phones: BTreeMap<String, String>,
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
            fallbacks: Fallbacks::default(),
        };
    };
    if f.fallback_phone.trim().is_empty() {
        c.error(
            "flows.fallback_phone",
            "set the number callers can ring when the menu cannot help",
        );
    }
    for (iso, number) in &f.fallback_phones {
        let key = format!("flows.fallback_phones.{iso}");
        if crate::phone::country_by_iso(iso).is_none_or(|x| x.iso != iso) {
            c.error(
                &key,
                "not a country code the gateway knows (KG, UA, GE), in capitals",
            );
        } else if number.trim().is_empty() {
            c.error(&key, "set the number callers from this country can ring");
        }
    }
    FlowsConfig {
        dir: base.join(&f.dir),
        display_dir: lexical(&base.join(&f.dir)),
        default: f.default.clone(),
        fallbacks: Fallbacks {
            default: f.fallback_phone.clone(),
            by_country: f.fallback_phones.clone(),
        },
    }
}

//! `[privacy]`: the key for pseudonyms and sealing, and retention.

use std::time::Duration;

use serde::Deserialize;

use super::check::Ctx;
use super::env::{self, Env};
use super::schema::PrivacyConfig;
use crate::privacy::{DEV_KEY, MIN_KEY_LEN};
use crate::problem::quoted;

/// `[privacy]` as written; absent keys take the defaults below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPrivacy {
    pii_key_env: String,
    require_pii_key: bool,
    case_retention_hours: u64,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        RawPrivacy {
            pii_key_env: "HOTLINE_PII_KEY".into(),
            require_pii_key: false,
            case_retention_hours: 72,
        }
    }
}

/// Check `[privacy]` and read the key from the variable `pii_key_env` names.
/// Without one (and unless `require_pii_key`), the public development key.
pub(super) fn validate(p: &RawPrivacy, env: &dyn Env, c: &mut Ctx<'_>) -> PrivacyConfig {
    if !env::name_ok(&p.pii_key_env) {
        c.error(
            quoted("privacy.pii_key_env", &p.pii_key_env),
            "not an environment variable name",
        );
    }
    let (pii_key, is_dev_key) = match env.var(&p.pii_key_env) {
        Some(k) if k.len() >= MIN_KEY_LEN => (k.into_bytes(), false),
        Some(_) => {
            c.env_error(
                &p.pii_key_env,
                "<hidden>",
                &format!("must be at least {MIN_KEY_LEN} bytes"),
            );
            (Vec::new(), false)
        }
        None if p.require_pii_key => {
            c.error(
                "privacy.require_pii_key = true",
                format!("{} is not set", p.pii_key_env),
            );
            (Vec::new(), false)
        }
        None => (DEV_KEY.as_bytes().to_vec(), true),
    };
    // The key before a rotation: opens what it sealed (src/privacy.rs).
    let previous_env = format!("{}_PREVIOUS", p.pii_key_env);
    let previous_pii_key = match env.var(&previous_env) {
        Some(k) if k.len() < MIN_KEY_LEN => {
            c.env_error(
                &previous_env,
                "<hidden>",
                &format!("must be at least {MIN_KEY_LEN} bytes"),
            );
            None
        }
        Some(k) if k.as_bytes() == pii_key.as_slice() => {
            c.env_error(
                &previous_env,
                "<hidden>",
                &format!(
                    "is the same key as {}: a rotation needs a new one",
                    p.pii_key_env
                ),
            );
            None
        }
        Some(k) => Some(k.into_bytes()),
        None => None,
    };
    c.positive("privacy.case_retention_hours", p.case_retention_hours);
    PrivacyConfig {
        pii_key,
        previous_pii_key,
        is_dev_key,
        require_pii_key: p.require_pii_key,
        case_retention: Duration::from_secs(p.case_retention_hours * 3600),
    }
}

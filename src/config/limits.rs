//! `[limits]`: how often one number may call.

use std::time::Duration;

use serde::Deserialize;

use super::check::Ctx;
use super::schema::Limits;
use crate::store::RateLimit;

/// `[limits]` as written; absent keys take the defaults below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    per_number_per_minute: u32,
    per_number_burst: u32,
    dedupe_ttl_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            per_number_per_minute: 30,
            per_number_burst: 15,
            dedupe_ttl_secs: 24 * 3600,
        }
    }
}

/// Check `[limits]`.
pub(super) fn validate(l: &RawLimits, c: &mut Ctx<'_>) -> Limits {
    c.positive(
        "limits.per_number_per_minute",
        u64::from(l.per_number_per_minute),
    );
    c.positive("limits.per_number_burst", u64::from(l.per_number_burst));
    c.positive("limits.dedupe_ttl_secs", l.dedupe_ttl_secs);
    Limits {
        rate: RateLimit {
            per_minute: l.per_number_per_minute.max(1),
            burst: l.per_number_burst.max(1),
        },
        dedupe_ttl: Duration::from_secs(l.dedupe_ttl_secs),
    }
}

//! `[dispatch]`: the roster, the lawyers' texts and the channel offers go
//! out on.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::check::{Ctx, lexical};
use super::schema::{ChannelConfig, DispatchConfig};
use crate::problem::quoted;

/// `[dispatch]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispatch {
    roster: String,
    #[serde(default = "default_texts")]
    texts: String,
    sms_channel: String,
    #[serde(default)]
    fallback_sms_channel: Option<String>,
    #[serde(default = "default_auto_close_days")]
    auto_close_days: u64,
}

fn default_texts() -> String {
    "lawyer_texts.toml".into()
}

fn default_auto_close_days() -> u64 {
    7
}

/// Check `[dispatch]` (optional); paths resolve against `base`. Whether
/// `sms_channel` exists is checked by [`check_sms_channel`] once the
/// channels are known.
pub(super) fn validate(
    d: Option<&RawDispatch>,
    base: &Path,
    c: &mut Ctx<'_>,
) -> Option<DispatchConfig> {
    let d = d?;
    c.positive("dispatch.auto_close_days", d.auto_close_days);
    Some(DispatchConfig {
        roster: base.join(&d.roster),
        texts: base.join(&d.texts),
        texts_display: lexical(&base.join(&d.texts)),
        sms_channel: d.sms_channel.clone(),
        fallback_sms_channel: d.fallback_sms_channel.clone(),
        auto_close: Duration::from_secs(d.auto_close_days.max(1) * 24 * 3600),
    })
}

/// Offers need an enabled channel named `dispatch.sms_channel`, and the
/// fallback, when given, must be another enabled channel.
pub(super) fn check_sms_channel(
    d: Option<&DispatchConfig>,
    channels: &[ChannelConfig],
    c: &mut Ctx<'_>,
) {
    let Some(d) = d else { return };
    let enabled = |name: &str| channels.iter().any(|ch| ch.name == name);
    if !enabled(&d.sms_channel) {
        c.error(
            quoted("dispatch.sms_channel", &d.sms_channel),
            "no enabled channel has this name",
        );
    }
    if let Some(f) = &d.fallback_sms_channel {
        if !enabled(f) {
            c.error(
                quoted("dispatch.fallback_sms_channel", f),
                "no enabled channel has this name",
            );
        } else if *f == d.sms_channel {
            c.error(
                quoted("dispatch.fallback_sms_channel", f),
                "must be another channel than dispatch.sms_channel",
            );
        }
    }
}

//! `[[acknowledged_gaps]]`: hours a city is known to have nobody on call,
//! with the reason, so that `hotline check` stops failing on them.
//!
//! A gap is acknowledged when one entry of its city covers it entirely;
//! a gap only partly covered is still reported.

use std::collections::BTreeMap;

use super::shifts::city_of;
use super::{Loader, RawRoster, show};
use crate::dispatch::roster::shift;
use crate::dispatch::roster::{AcknowledgedGap, City};
use crate::problem::quoted;

/// Check every `[[acknowledged_gaps]]` entry; the valid ones.
pub(super) fn acknowledged(
    l: &mut Loader<'_>,
    raw: &RawRoster,
    cities: &mut BTreeMap<String, City>,
) -> Vec<AcknowledgedGap> {
    let mut out = Vec::new();
    for (i, g) in raw.acknowledged_gaps.iter().enumerate() {
        let key = format!("acknowledged_gaps[{i}]");
        if g.reason.trim().is_empty() {
            l.error(
                format!("{key}.reason"),
                "say why nobody is on call (it is shown by hotline check)",
            );
        }
        let from = l.local_time(&format!("{key}.from"), &g.from);
        let to = l.local_time(&format!("{key}.to"), &g.to);
        let Some(city) = city_of(l, &format!("{key}.city"), &g.city, raw, cities) else {
            continue;
        };
        let (Some((f, _)), Some((t, _))) = (from, to) else {
            continue;
        };
        let (Some(start), Some(end)) = (
            shift::local_instant(&city.time_zone, f),
            shift::local_instant(&city.time_zone, t),
        ) else {
            l.error(key, "from or to is out of range");
            continue;
        };
        if end <= start {
            l.error(
                quoted(&format!("{key}.to"), &show(&g.to)),
                "must be after from",
            );
            continue;
        }
        out.push(AcknowledgedGap {
            city: g.city.clone(),
            start,
            end,
            reason: g.reason.clone(),
        });
    }
    out
}

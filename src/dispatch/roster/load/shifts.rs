//! Rotations and overrides: local date-times, daily windows, weekdays,
//! and overlap checks.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::{Loader, RawRoster, RawRotation, show};
use crate::dispatch::roster::City;
use crate::dispatch::roster::shift::{self, DAY, EVERY_DAY, HOUR, Override, Rotation};
use crate::problem::quoted;

/// Weekday names, Monday first (bit 0 of a rotation's `days`).
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// The same, in full.
const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
/// Longest shift, in hours (four weeks).
const MAX_SHIFT_HOURS: i64 = 28 * 24;

/// Digits of a fixed-size number field.
fn digits<T: std::str::FromStr>(s: &str, lens: std::ops::RangeInclusive<usize>) -> Option<T> {
    (lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `HH:MM` (or `H:MM`) as seconds after midnight.
fn time_of_day(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    let h: i64 = digits(h, 1..=2)?;
    let m: i64 = digits(m, 2..=2)?;
    (h < 24 && m < 60).then_some(h * HOUR + m * 60)
}

/// `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS]` or `THH:MM[:SS]`.
/// Returns the date-time and whether a time was written.
fn parse_local(s: &str) -> Option<(DateTime, bool)> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let mut d = date.split('-');
    let y: i16 = digits(d.next()?, 4..=4)?;
    let mo: i8 = digits(d.next()?, 2..=2)?;
    let day: i8 = digits(d.next()?, 2..=2)?;
    if d.next().is_some() {
        return None;
    }
    let (h, mi, sec) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let mut p = t.split(':');
            let h: i8 = digits(p.next()?, 1..=2)?;
            let mi: i8 = digits(p.next()?, 2..=2)?;
            let sec: i8 = match p.next() {
                Some(x) => digits(x, 2..=2)?,
                None => 0,
            };
            if p.next().is_some() {
                return None;
            }
            (h, mi, sec)
        }
    };
    DateTime::new(y, mo, day, h, mi, sec, 0)
        .ok()
        .map(|dt| (dt, time.is_some()))
}

/// A TOML value meant as a local date-time, written as a string
/// (`"2026-03-02 09:00"`) or a bare TOML local date/date-time.
pub(super) fn local_value(v: &toml::Value) -> Result<(DateTime, bool), &'static str> {
    const MSG: &str =
        "not a local date-time like \"2026-03-02 09:00\" (or a date like \"2026-03-02\")";
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) if d.offset.is_some() => {
            return Err("write local time in the city, without an offset or Z");
        }
        toml::Value::Datetime(d) => d.to_string(),
        _ => return Err(MSG),
    };
    parse_local(&text).ok_or(MSG)
}

/// The full city a rotation or override names, or a problem.
pub(super) fn city_of<'c>(
    l: &mut Loader<'_>,
    key: &str,
    id: &str,
    raw: &RawRoster,
    cities: &'c mut BTreeMap<String, City>,
) -> Option<&'c mut City> {
    match raw.cities.get(id) {
        None => {
            l.error(quoted(key, id), "no such city in [cities]");
            None
        }
        Some(c) if c.route_to.is_some() => {
            l.error(
                quoted(key, id),
                format!(
                    "this city routes to cities.{}: put it there",
                    c.route_to.as_deref().unwrap_or_default()
                ),
            );
            None
        }
        Some(_) => cities.get_mut(id), // None: the city had its own errors
    }
}

fn weekday_mask(l: &mut Loader<'_>, key: &str, days: Option<&Vec<String>>) -> u8 {
    let Some(days) = days else { return EVERY_DAY };
    if days.is_empty() {
        l.error(
            key,
            "list at least one day, or leave `days` out for every day",
        );
    }
    let mut mask = 0u8;
    for (i, d) in days.iter().enumerate() {
        let lower = d.trim().to_lowercase();
        match (0..7).find(|&b| WEEKDAYS[b] == lower || WEEKDAY_NAMES[b] == lower) {
            Some(bit) => mask |= 1 << bit,
            None => l.error(
                quoted(&format!("{key}[{i}]"), d),
                "not a weekday: use mon, tue, wed, thu, fri, sat, sun",
            ),
        }
    }
    mask
}

/// `20:00-08:00` as (start seconds after midnight, length seconds).
fn daily_window(s: &str) -> Option<(i64, i64)> {
    let (a, b) = s.split_once(['-', '–', '—'])?;
    let from = time_of_day(a)?;
    let to = time_of_day(b)?;
    let length = (to - from).rem_euclid(DAY);
    Some((from, if length == 0 { DAY } else { length }))
}

pub(super) fn rotations(l: &mut Loader<'_>, raw: &RawRoster, cities: &mut BTreeMap<String, City>) {
    for (i, r) in raw.rotations.iter().enumerate() {
        let key = format!("rotations[{i}]");
        let lawyers = l.lawyer_list(&format!("{key}.lawyers"), &r.lawyers, &raw.lawyers);
        if r.lawyers.is_empty() {
            l.error(
                format!("{key}.lawyers"),
                "list the lawyers who take turns, like [\"aida\", \"bakyt\"]",
            );
        }
        let days = weekday_mask(l, &format!("{key}.days"), r.days.as_ref());
        let start = match &r.start {
            None => {
                l.error(
                    format!("{key}.start"),
                    "missing: when the first shift starts, like \"2026-03-02 09:00\" (local time)",
                );
                None
            }
            Some(v) => l.local_time(&format!("{key}.start"), v),
        };
        let shape = rotation_shape(l, &key, r, start);
        let city = city_of(l, &format!("{key}.city"), &r.city, raw, cities);
        let (Some(city), Some((first, length, period))) = (city, shape) else {
            continue;
        };
        let Some(end) = rotation_end(l, &key, r, city, start) else {
            continue;
        };
        if lawyers.len() != r.lawyers.len() || lawyers.is_empty() {
            continue;
        }
        let rotation = Rotation {
            first,
            length,
            period,
            days,
            end,
            lawyers,
        };
        if days != 0 && !rotation.holds_any() {
            l.error(
                format!("{key}.days"),
                "no shift of this rotation ever starts on these days",
            );
            continue;
        }
        city.rotations.push(rotation);
    }
}

/// A rotation's shifts as (first start, length, period) in civil seconds,
/// from `shift_hours` or `daily` (`key` is `rotations[i]`); `None` if they
/// have an error or the start is unknown.
fn rotation_shape(
    l: &mut Loader<'_>,
    key: &str,
    r: &RawRotation,
    start: Option<(DateTime, bool)>,
) -> Option<(i64, i64, i64)> {
    match (&r.daily, r.shift_hours) {
        (Some(_), Some(_)) => {
            l.error(
                format!("{key}.shift_hours"),
                "use either shift_hours (back-to-back shifts) or daily (one window a day), not both",
            );
            None
        }
        (None, None) => {
            l.error(
                key,
                "missing shift_hours (back-to-back shifts) or daily (one window a day, like \"20:00-08:00\")",
            );
            None
        }
        (None, Some(h)) if !(1..=MAX_SHIFT_HOURS).contains(&h) => {
            l.error(
                format!("{key}.shift_hours = {h}"),
                format!("must be between 1 and {MAX_SHIFT_HOURS}"),
            );
            None
        }
        (None, Some(h)) => start
            .and_then(|(dt, _)| shift::civil_secs(dt))
            .map(|first| (first, h * HOUR, h * HOUR)),
        (Some(w), None) => daily_shape(l, key, r, w, start),
    }
}

/// The shape of a `daily` rotation with window `w`: `start` must be a date
/// only.
fn daily_shape(
    l: &mut Loader<'_>,
    key: &str,
    r: &RawRotation,
    w: &str,
    start: Option<(DateTime, bool)>,
) -> Option<(i64, i64, i64)> {
    let Some((from, length)) = daily_window(w) else {
        l.error(
            quoted(&format!("{key}.daily"), w),
            "not a window like \"20:00-08:00\" (local time; may run past midnight)",
        );
        return None;
    };
    match start {
        Some((_, true)) => {
            l.error(
                quoted(
                    &format!("{key}.start"),
                    &r.start.as_ref().map(show).unwrap_or_default(),
                ),
                "with `daily`, start is just the first date, like \"2026-03-02\"",
            );
            None
        }
        Some((dt, false)) => shift::civil_secs(dt).map(|d| (d + from, length, DAY)),
        None => None,
    }
}

/// A rotation's `end` as an instant in the city (`Some(None)`: no end);
/// `None` if it has an error: not a date-time, or not after the start.
fn rotation_end(
    l: &mut Loader<'_>,
    key: &str,
    r: &RawRotation,
    city: &City,
    start: Option<(DateTime, bool)>,
) -> Option<Option<Timestamp>> {
    let Some(v) = &r.end else {
        return Some(None);
    };
    let ek = format!("{key}.end");
    let (dt, _) = l.local_time(&ek, v)?;
    let end = shift::local_instant(&city.time_zone, dt);
    let begin = start.and_then(|(s, _)| shift::local_instant(&city.time_zone, s));
    if end.is_none() || end <= begin {
        l.error(quoted(&ek, &show(v)), "must be after start");
        return None;
    }
    Some(end)
}

// ---------------------------------------------------------------- overrides

pub(super) fn overrides(l: &mut Loader<'_>, raw: &RawRoster, cities: &mut BTreeMap<String, City>) {
    // (city, start, end, index) of every valid override, to find overlaps.
    let mut placed: Vec<(String, Timestamp, Timestamp, usize)> = Vec::new();
    for (i, o) in raw.overrides.iter().enumerate() {
        let key = format!("overrides[{i}]");
        let lawyers = l.lawyer_list(&format!("{key}.lawyers"), &o.lawyers, &raw.lawyers);
        if o.lawyers.is_empty() {
            l.error(
                format!("{key}.lawyers"),
                "list who is on call instead, like [\"bakyt\"]",
            );
        }
        let start = l.local_time(&format!("{key}.start"), &o.start);
        let end = l.local_time(&format!("{key}.end"), &o.end);
        let Some(city) = city_of(l, &format!("{key}.city"), &o.city, raw, cities) else {
            continue;
        };
        let (Some((s, _)), Some((e, _))) = (start, end) else {
            continue;
        };
        let (Some(s), Some(e)) = (
            shift::local_instant(&city.time_zone, s),
            shift::local_instant(&city.time_zone, e),
        ) else {
            l.error(key, "start or end is out of range");
            continue;
        };
        if e <= s {
            l.error(
                quoted(&format!("{key}.end"), &show(&o.end)),
                "must be after start",
            );
            continue;
        }
        if let Some((_, _, _, j)) = placed
            .iter()
            .find(|(c, ps, pe, _)| *c == o.city && s < *pe && *ps < e)
        {
            l.error(
                key,
                format!(
                    "overlaps overrides[{j}] in {}: only one override can hold at a time, merge them or move one",
                    o.city
                ),
            );
            continue;
        }
        placed.push((o.city.clone(), s, e, i));
        if lawyers.len() != o.lawyers.len() || lawyers.is_empty() {
            continue;
        }
        city.overrides.push(Override {
            start: s,
            end: e,
            lawyers,
        });
        city.overrides.sort_by_key(|o| o.start);
    }
}

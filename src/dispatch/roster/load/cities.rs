//! Cities: names, time zone, country, coordinator and team, and the
//! escalation chain; or a route to another city that takes none of these.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::tz::TimeZone;

use super::{Loader, MAX_MINUTES, RawCity, RawEscalation, RawLevel, RawRoster, id_ok, minutes};
use crate::dispatch::roster::{City, Escalation, LawyerId, Level, LevelKind, MAX_REPEATS, Route};
use crate::phone::Country;
use crate::problem::quoted;

pub(super) fn cities(
    l: &mut Loader<'_>,
    raw: &RawRoster,
) -> (BTreeMap<String, City>, BTreeMap<String, Route>) {
    let mut cities = BTreeMap::new();
    let mut routes = BTreeMap::new();
    if raw.cities.is_empty() {
        l.error("cities", "no cities: add a [cities.ID] table for each");
    }
    for (id, c) in &raw.cities {
        let key = format!("cities.{id}");
        if !id_ok(id) {
            l.error(
                key.clone(),
                "an id uses lowercase letters, digits, `_` or `-` (the flow's `city` value)",
            );
        }
        l.names(&format!("{key}.names"), &c.names);
        if let Some(to) = &c.route_to {
            routes.insert(id.clone(), route(l, raw, &key, to, c));
            continue;
        }
        if c.route_by_country.is_some() {
            l.error(
                format!("{key}.route_by_country"),
                "only a city with route_to routes by country: add route_to (for callers from other countries)",
            );
        }
        if let Some(city) = full_city(l, raw, id, c) {
            cities.insert(id.clone(), city);
        }
    }
    (cities, routes)
}

/// Check a route target (`route_to`, or one of `route_by_country`).
fn target(l: &mut Loader<'_>, raw: &RawRoster, key: &str, to: &str) {
    match raw.cities.get(to) {
        None => l.error(quoted(key, to), "no such city in [cities]"),
        Some(t) if t.route_to.is_some() => l.error(
            quoted(key, to),
            "routes to a city that itself routes on: route to a city with its own lawyers",
        ),
        Some(_) => {}
    }
}

/// A city answered by another city's lawyers (by the caller's country
/// where `route_by_country` says so).
fn route(l: &mut Loader<'_>, raw: &RawRoster, key: &str, to: &str, c: &RawCity) -> Route {
    target(l, raw, &format!("{key}.route_to"), to);
    let by_country = c.route_by_country.clone().unwrap_or_default();
    for (iso, t) in &by_country {
        let k = format!("{key}.route_by_country.{iso}");
        if crate::phone::country_by_iso(iso).is_none_or(|x| x.iso != iso) {
            l.error(
                k.clone(),
                "not a country code the gateway knows (KG, UA, GE)",
            );
        }
        target(l, raw, &k, t);
    }
    let extra = [
        ("time_zone", c.time_zone.is_some()),
        ("country", c.country.is_some()),
        ("coordinator", c.coordinator.is_some()),
        ("team", c.team.is_some()),
        ("escalation", c.escalation.is_some()),
    ];
    for (field, present) in extra {
        if present {
            l.error(
                format!("{key}.{field}"),
                format!("a city with route_to takes this from cities.{to}: remove it"),
            );
        }
    }
    Route {
        to: to.to_owned(),
        by_country,
        names: c.names.clone(),
    }
}

fn full_city(l: &mut Loader<'_>, raw: &RawRoster, id: &str, c: &RawCity) -> Option<City> {
    let key = format!("cities.{id}");
    if c.names.is_empty() {
        l.error(
            format!("{key}.names"),
            "missing: the city's name per language, like { ru = \"Ош\", en = \"Osh\" }",
        );
    }
    let zone = city_zone(l, &key, c.time_zone.as_deref());
    let country = city_country(l, &key, c.country.as_deref());
    let coordinator = match &c.coordinator {
        None => {
            l.error(
                format!("{key}.coordinator"),
                "missing: the lawyer id of the city's coordinator",
            );
            None
        }
        Some(x) => l.lawyer_ref(&format!("{key}.coordinator"), x, &raw.lawyers),
    };
    let team = city_team(l, &key, c.team.as_deref(), raw);
    let escalation = escalation(l, &key, c.escalation.as_ref(), &team);
    let (time_zone_name, time_zone) = zone?;
    Some(City {
        id: id.to_owned(),
        names: c.names.clone(),
        time_zone_name,
        time_zone,
        country: country?,
        coordinator: coordinator?,
        team,
        escalation: escalation?,
        rotations: Vec::new(),
        overrides: Vec::new(),
    })
}

/// A city's time zone, as written and resolved (`key` is `cities.ID`).
fn city_zone(l: &mut Loader<'_>, key: &str, zone: Option<&str>) -> Option<(String, TimeZone)> {
    let Some(z) = zone else {
        l.error(
            format!("{key}.time_zone"),
            "missing: an IANA time zone like \"Asia/Bishkek\" or \"Europe/Kyiv\"",
        );
        return None;
    };
    match TimeZone::get(z) {
        Ok(tz) => Some((z.to_owned(), tz)),
        Err(_) => {
            l.error(
                quoted(&format!("{key}.time_zone"), z),
                "unknown time zone: use an IANA name like \"Asia/Bishkek\" or \"Europe/Kyiv\"",
            );
            None
        }
    }
}

/// A city's country, by ISO code (`key` is `cities.ID`).
fn city_country(l: &mut Loader<'_>, key: &str, iso: Option<&str>) -> Option<&'static Country> {
    let Some(iso) = iso else {
        l.error(
            format!("{key}.country"),
            "missing: the ISO code, like \"KG\"",
        );
        return None;
    };
    let found = crate::phone::country_by_iso(iso);
    if found.is_none() {
        let known: Vec<&str> = crate::phone::COUNTRIES.iter().map(|c| c.iso).collect();
        l.error(
            quoted(&format!("{key}.country"), iso),
            format!("unknown country (known: {})", known.join(", ")),
        );
    }
    found
}

/// A city's team: the known lawyers, in order; one listed twice is a
/// warning (`key` is `cities.ID`).
fn city_team(
    l: &mut Loader<'_>,
    key: &str,
    ids: Option<&[String]>,
    raw: &RawRoster,
) -> Vec<LawyerId> {
    let Some(ids) = ids else {
        l.error(
            format!("{key}.team"),
            "missing: the lawyer ids of the city's team",
        );
        return Vec::new();
    };
    let team = l.lawyer_list(&format!("{key}.team"), ids, &raw.lawyers);
    let mut seen = BTreeSet::new();
    for (i, x) in ids.iter().enumerate() {
        if !seen.insert(x) {
            l.warning(quoted(&format!("{key}.team[{i}]"), x), "listed twice");
        }
    }
    team
}

fn escalation(
    l: &mut Loader<'_>,
    city_key: &str,
    raw: Option<&RawEscalation>,
    team: &[LawyerId],
) -> Option<Escalation> {
    let key = format!("{city_key}.escalation");
    let known: Vec<&str> = LevelKind::ALL.iter().map(|(n, _)| *n).collect();
    let Some(e) = raw else {
        l.error(
            key,
            format!(
                "missing: add levels ({}), repeats and unanswered_after_minutes",
                known.join(", ")
            ),
        );
        return None;
    };
    if e.levels.is_empty() {
        l.error(
            format!("{key}.levels"),
            "list at least one level, like { kind = \"on_call\", wait_minutes = 3 }",
        );
    }
    let levels: Vec<Level> = e
        .levels
        .iter()
        .enumerate()
        .filter_map(|(i, lv)| level(l, &format!("{key}.levels[{i}]"), lv, &known, team))
        .collect();
    let repeats = match u32::try_from(e.repeats) {
        Ok(r) if r <= MAX_REPEATS => Some(r),
        _ => {
            l.error(
                format!("{key}.repeats = {}", e.repeats),
                format!("must be between 0 and {MAX_REPEATS}"),
            );
            None
        }
    };
    let unanswered = match e.unanswered_after_minutes {
        None => {
            l.error(
                format!("{key}.unanswered_after_minutes"),
                "missing: minutes after which she is sent the fallback number",
            );
            None
        }
        Some(m) => minutes_in_range(l, &format!("{key}.unanswered_after_minutes"), m),
    };
    let out = Escalation {
        levels,
        repeats: repeats?,
        unanswered_after: unanswered?,
    };
    if out.levels.len() != e.levels.len() || out.levels.is_empty() {
        return None;
    }
    warn_if_unanswered_outlasts_chain(l, &key, &out);
    Some(out)
}

/// One level of a chain (`key` is `….escalation.levels[i]`; `known` the
/// level kinds); `None` if it has an error.
fn level(
    l: &mut Loader<'_>,
    key: &str,
    lv: &RawLevel,
    known: &[&str],
    team: &[LawyerId],
) -> Option<Level> {
    let kind = LevelKind::ALL
        .iter()
        .find(|(n, _)| *n == lv.kind)
        .map(|(_, k)| *k);
    if kind.is_none() {
        l.error(
            quoted(&format!("{key}.kind"), &lv.kind),
            format!("unknown kind (known: {})", known.join(", ")),
        );
    }
    if kind == Some(LevelKind::Team) && team.is_empty() {
        l.warning(
            quoted(&format!("{key}.kind"), &lv.kind),
            "the team is empty: this level reaches nobody",
        );
    }
    let wait = match lv.wait_minutes {
        None => {
            l.error(
                format!("{key}.wait_minutes"),
                "missing: minutes to wait for an answer before the next level",
            );
            None
        }
        Some(m) => minutes_in_range(l, &format!("{key}.wait_minutes"), m),
    };
    Some(Level {
        kind: kind?,
        wait: wait?,
    })
}

/// `m` minutes, if between 1 and [`MAX_MINUTES`]; else an error on `key = m`.
fn minutes_in_range(l: &mut Loader<'_>, key: &str, m: i64) -> Option<Duration> {
    if (1..=MAX_MINUTES).contains(&m) {
        Some(minutes(m))
    } else {
        l.error(
            format!("{key} = {m}"),
            format!("must be between 1 and {MAX_MINUTES}"),
        );
        None
    }
}

/// A fallback message due after the whole chain has run leaves her waiting
/// with nobody being asked: a warning (`key` is `….escalation`).
fn warn_if_unanswered_outlasts_chain(l: &mut Loader<'_>, key: &str, out: &Escalation) {
    if out.unanswered_after > out.total() {
        l.warning(
            format!(
                "{key}.unanswered_after_minutes = {}",
                out.unanswered_after.as_secs() / 60
            ),
            format!(
                "longer than the whole chain ({} minutes with repeats): she would wait with nobody being asked",
                out.total().as_secs() / 60
            ),
        );
    }
}

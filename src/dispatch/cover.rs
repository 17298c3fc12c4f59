//! Coordinators' temporary overrides (`COVER aida 18:00`) and the pure
//! decisions behind the coordinators' commands.
//!
//! A cover puts one lawyer on call in a city, in place of the roster, until
//! an instant: it wins over rotations and roster overrides for its whole
//! window, like a roster override does. It lives in the store as a small
//! record (`cover:{city}`, expiring with it); the [`super::Dispatcher`]
//! keeps the live ones in memory like the off-call set, refreshed by the
//! timer worker and at once on the instance that took the command, and
//! the lifecycle reads them through [`super::lifecycle::Ctx::covers`].
//!
//! Everything here is pure: the roster, the covers and an instant come in.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::commands::Until;
use super::roster::{Lawyer, LawyerId, Roster};

/// One city's cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cover {
    /// The city id (a full city, never a route).
    pub city: String,
    /// Who is on call instead of the roster.
    pub lawyer: String,
    /// Until when (ms).
    pub until_ms: u64,
    /// The coordinator who set it.
    pub by: String,
}

/// Live covers by city id.
pub type Covers = BTreeMap<String, Cover>;

/// No covers (for callers that have none).
pub static NONE: Covers = BTreeMap::new();

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

fn ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

/// The cover in force in `city` (following a route) at `at`.
pub fn active<'a>(
    roster: &Roster,
    covers: &'a Covers,
    city: &str,
    at: Timestamp,
) -> Option<&'a Cover> {
    let id = &roster.city(city)?.id;
    covers
        .get(id)
        .filter(|c| ms(at) < c.until_ms && roster.lawyer(&c.lawyer).is_some())
}

/// [`Roster::on_call`] with covers: the covering lawyer alone while a
/// cover is in force.
pub fn on_call(roster: &Roster, covers: &Covers, city: &str, at: Timestamp) -> Vec<LawyerId> {
    match active(roster, covers, city, at).and_then(|c| roster.lawyer(&c.lawyer)) {
        Some(l) => vec![l.id.clone()],
        None => roster.on_call(city, at),
    }
}

/// [`Roster::next_on_call`] with covers (never the covering lawyer: she is
/// on call).
pub fn next_on_call(roster: &Roster, covers: &Covers, city: &str, at: Timestamp) -> Vec<LawyerId> {
    let cover = active(roster, covers, city, at);
    roster
        .next_on_call(city, at)
        .into_iter()
        .filter(|l| cover.is_none_or(|c| l.as_str() != c.lawyer))
        .collect()
}

/// What `WHO` answers for a city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// On call now (empty in a gap).
    pub now: Vec<LawyerId>,
    /// When a cover in force ends.
    pub cover_until: Option<Timestamp>,
    /// Who comes on next.
    pub next: Vec<LawyerId>,
    /// When.
    pub next_from: Option<Timestamp>,
}

/// On call now and next in `city`, covers included.
pub fn who(roster: &Roster, covers: &Covers, city: &str, at: Timestamp) -> Who {
    if let Some(c) = active(roster, covers, city, at) {
        let end = ts(c.until_ms);
        return Who {
            now: on_call(roster, covers, city, at),
            cover_until: Some(end),
            next: roster.on_call(city, end),
            next_from: Some(end),
        };
    }
    let oc = roster.on_call_at(city, at);
    Who {
        now: oc.now,
        cover_until: None,
        next: oc.next,
        next_from: oc.next_from,
    }
}

/// The full cities `lawyer` coordinates (routes excluded).
pub fn coordinated<'a>(roster: &'a Roster, lawyer: &str) -> Vec<&'a str> {
    roster
        .city_ids()
        .into_iter()
        .filter(|c| roster.city(c).is_some_and(|x| x.id == *c))
        .filter(|c| roster.coordinator(c).is_some_and(|l| l.as_str() == lawyer))
        .collect()
}

/// Latin letters for Cyrillic ones (Russian, Kyrgyz, Ukrainian), so
/// `Аида`, `аида` and `Aida` name the same lawyer.
pub fn latin(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.to_lowercase().chars() {
        let l = match c {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' | 'ґ' => "g",
            'д' => "d",
            'е' | 'ё' | 'э' | 'є' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' | 'і' | 'ї' | 'й' => "i",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' | 'ң' => "n",
            'о' | 'ө' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' | 'ү' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ъ' | 'ь' => "",
            'ы' => "y",
            'ю' => "yu",
            'я' => "ya",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(l);
    }
    // `h` and `kh` are both written for `х`.
    out.replace("kh", "h")
}

/// The lawyer `typed` names: her roster id, her name or one word of it, in
/// Latin or Cyrillic letters.
pub fn find_lawyer<'a>(roster: &'a Roster, typed: &str) -> Option<&'a Lawyer> {
    let want = latin(typed.trim());
    if want.is_empty() {
        return None;
    }
    if let Some(l) = roster.lawyer(&typed.to_lowercase()) {
        return Some(l);
    }
    roster.lawyers().find(|l| {
        latin(l.id.as_str()) == want
            || latin(&l.name) == want
            || l.name.split_whitespace().any(|w| latin(w) == want)
    })
}

/// Why a `COVER` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverRefusal {
    /// The sender coordinates no city.
    NotCoordinator,
    /// Nobody in the roster has that name.
    NoLawyer,
    /// The end was not understood.
    BadUntil,
}

/// The end of a cover beginning at `now` in time zone `tz`, in ms.
pub fn until_ms(until: Until, now: Timestamp, tz: &jiff::tz::TimeZone) -> Option<u64> {
    match until {
        Until::For(minutes) => Some(ms(now) + u64::from(minutes) * 60_000),
        Until::At { hour, minute } => {
            let local = now.to_zoned(tz.clone());
            let today = local
                .date()
                .at(hour as i8, minute as i8, 0, 0)
                .to_zoned(tz.clone())
                .ok()?;
            let end = if today.timestamp() > now {
                today
            } else {
                today.checked_add(jiff::Span::new().days(1)).ok()?
            };
            Some(ms(end.timestamp()))
        }
    }
}

/// Decide a coordinator's `COVER`: the record to store, or why not. The
/// city is the first she coordinates where the lawyer works, else the
/// first she coordinates.
///
/// # Errors
/// The [`CoverRefusal`].
pub fn decide(
    roster: &Roster,
    coordinator: &str,
    typed: &str,
    until: Option<Until>,
    now: Timestamp,
) -> Result<Cover, CoverRefusal> {
    let cities = coordinated(roster, coordinator);
    let first = *cities.first().ok_or(CoverRefusal::NotCoordinator)?;
    let lawyer = find_lawyer(roster, typed).ok_or(CoverRefusal::NoLawyer)?;
    let city = cities
        .iter()
        .copied()
        .find(|c| lawyer.cities.iter().any(|x| x == c))
        .unwrap_or(first);
    let tz = &roster.city(city).ok_or(CoverRefusal::NoLawyer)?.time_zone;
    let until_ms = until
        .and_then(|u| until_ms(u, now, tz))
        .ok_or(CoverRefusal::BadUntil)?;
    Ok(Cover {
        city: city.to_owned(),
        lawyer: lawyer.id.as_str().to_owned(),
        until_ms,
        by: coordinator.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Roster {
        crate::dispatch::lifecycle::tests::roster()
    }

    /// 2026-12-01 10:00 in Bishkek (aida's shift; bakyt's from 09:00 next day).
    fn t0() -> Timestamp {
        ts(1_796_097_600_000)
    }

    #[test]
    fn names_in_either_script_find_the_lawyer() {
        let r = roster();
        for typed in ["aida", "Aida", "аида", "АИДА"] {
            assert_eq!(find_lawyer(&r, typed).map(|l| l.id.as_str()), Some("aida"));
        }
        assert_eq!(
            find_lawyer(&r, "нургүл").map(|l| l.id.as_str()),
            Some("nurgul")
        );
        assert!(find_lawyer(&r, "zarina").is_none());
    }

    #[test]
    fn a_cover_wins_over_the_roster_until_it_ends() {
        let r = roster();
        let cover = decide(
            &r,
            "nurgul",
            "Чолпон",
            Some(Until::At {
                hour: 18,
                minute: 0,
            }),
            t0(),
        )
        .unwrap();
        assert_eq!(cover.city, "bishkek");
        assert_eq!(cover.until_ms, ms(t0()) + 8 * 3_600_000);
        let covers: Covers = [("bishkek".to_owned(), cover)].into();
        assert_eq!(
            on_call(&r, &covers, "osh", t0()),
            vec![r.lawyer("cholpon").unwrap().id.clone()]
        );
        let w = who(&r, &covers, "bishkek", t0());
        assert_eq!(w.next[0].as_str(), "aida");
        let later = ts(ms(t0()) + 8 * 3_600_000);
        assert_eq!(on_call(&r, &covers, "bishkek", later)[0].as_str(), "aida");
    }

    #[test]
    fn only_a_coordinator_covers_and_a_bad_end_is_refused() {
        let r = roster();
        let until = Some(Until::For(60));
        assert_eq!(
            decide(&r, "aida", "bakyt", until, t0()),
            Err(CoverRefusal::NotCoordinator)
        );
        assert_eq!(
            decide(&r, "nurgul", "nobody", until, t0()),
            Err(CoverRefusal::NoLawyer)
        );
        assert_eq!(
            decide(&r, "nurgul", "bakyt", None, t0()),
            Err(CoverRefusal::BadUntil)
        );
        let early = decide(
            &r,
            "nurgul",
            "bakyt",
            Some(Until::At { hour: 9, minute: 0 }),
            t0(),
        );
        assert_eq!(early.unwrap().until_ms, ms(t0()) + 23 * 3_600_000);
    }
}

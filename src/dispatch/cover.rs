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

/// The cover in force in `city` (following a route) at `at`: never one
/// of a lawyer who does not work in the city (a cover stored before
/// `COVER` checked it, or a roster reloaded since), which the roster's
/// on-call lawyer replaces.
pub fn active<'a>(
    roster: &Roster,
    covers: &'a Covers,
    city: &str,
    at: Timestamp,
) -> Option<&'a Cover> {
    let id = &roster.city(city)?.id;
    covers
        .get(id)
        .filter(|c| ms(at) < c.until_ms && roster.works_in(&c.lawyer, id))
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
    roster
        .lawyers()
        .find(|l| names_lawyer(l.id.as_str(), &l.name, typed))
}

/// Whether `typed` names the lawyer with this roster id and name, as
/// [`find_lawyer`] matches: her id, her name or one word of it, in Latin
/// or Cyrillic letters.
pub fn names_lawyer(id: &str, name: &str, typed: &str) -> bool {
    let want = latin(typed.trim());
    !want.is_empty()
        && (id == typed.to_lowercase()
            || latin(id) == want
            || latin(name) == want
            || name.split_whitespace().any(|w| latin(w) == want))
}

/// Why a `COVER` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverRefusal {
    /// The sender coordinates no city (or not the city she named).
    NotCoordinator,
    /// Nobody in the roster has that name.
    NoLawyer,
    /// The end (or the city named) was not understood.
    BadUntil,
    /// The lawyer works in none of these cities (the one named, else every
    /// city the coordinator coordinates): nothing changes.
    NotInCity {
        /// The lawyer's roster id.
        lawyer: String,
        /// City ids.
        cities: Vec<String>,
    },
    /// The lawyer works in several of the coordinator's cities and none was
    /// named (`COVER aida osh 18:00`): nothing changes.
    WhichCity {
        /// The lawyer's roster id.
        lawyer: String,
        /// The coordinator's cities she works in (ids).
        cities: Vec<String>,
    },
}

/// The full city `typed` names: its id or its name in any language, in
/// Latin or Cyrillic letters (`osh`, `Ош`, `Бишкек`).
pub fn find_city<'a>(roster: &'a Roster, typed: &str) -> Option<&'a str> {
    let want = latin(typed.trim());
    if want.is_empty() {
        return None;
    }
    roster
        .city_ids()
        .into_iter()
        .filter_map(|c| roster.city(c).filter(|x| x.id == c))
        .find(|c| latin(&c.id) == want || c.names.values().any(|n| latin(n) == want))
        .map(|c| c.id.as_str())
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

/// Decide a coordinator's `COVER`: the record to store, or why not.
///
/// The cover is for the city of hers the lawyer works in. When the lawyer
/// works in several of them, the coordinator names one (`city`, typed:
/// `COVER aida osh 18:00`), else she is asked which and nothing changes.
/// A lawyer who works in none of them (or not in the city named) is
/// refused: she would be sent women's numbers in a city she does not
/// work in.
///
/// # Errors
/// The [`CoverRefusal`].
pub fn decide(
    roster: &Roster,
    coordinator: &str,
    typed: &str,
    city: Option<&str>,
    until: Option<Until>,
    now: Timestamp,
) -> Result<Cover, CoverRefusal> {
    let mine = coordinated(roster, coordinator);
    if mine.is_empty() {
        return Err(CoverRefusal::NotCoordinator);
    }
    let lawyer = find_lawyer(roster, typed).ok_or(CoverRefusal::NoLawyer)?;
    let id = lawyer.id.as_str();
    let candidates: Vec<&str> = match city {
        Some(typed_city) => {
            let named = find_city(roster, typed_city).ok_or(CoverRefusal::BadUntil)?;
            if !mine.contains(&named) {
                return Err(CoverRefusal::NotCoordinator);
            }
            vec![named]
        }
        None => mine,
    };
    let works: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| roster.works_in(id, c))
        .collect();
    let city = match works.as_slice() {
        [one] => *one,
        [] => {
            return Err(CoverRefusal::NotInCity {
                lawyer: id.to_owned(),
                cities: candidates.into_iter().map(str::to_owned).collect(),
            });
        }
        several => {
            return Err(CoverRefusal::WhichCity {
                lawyer: id.to_owned(),
                cities: several.iter().map(|c| (*c).to_owned()).collect(),
            });
        }
    };
    let tz = &roster.city(city).ok_or(CoverRefusal::NoLawyer)?.time_zone;
    let until_ms = until
        .and_then(|u| until_ms(u, now, tz))
        .ok_or(CoverRefusal::BadUntil)?;
    Ok(Cover {
        city: city.to_owned(),
        lawyer: id.to_owned(),
        until_ms,
        by: coordinator.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
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
            None,
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
            decide(&r, "aida", "bakyt", None, until, t0()),
            Err(CoverRefusal::NotCoordinator)
        );
        assert_eq!(
            decide(&r, "nurgul", "nobody", None, until, t0()),
            Err(CoverRefusal::NoLawyer)
        );
        assert_eq!(
            decide(&r, "nurgul", "bakyt", None, None, t0()),
            Err(CoverRefusal::BadUntil)
        );
        let early = decide(
            &r,
            "nurgul",
            "bakyt",
            None,
            Some(Until::At { hour: 9, minute: 0 }),
            t0(),
        );
        assert_eq!(early.unwrap().until_ms, ms(t0()) + 23 * 3_600_000);
    }

    /// Nurgul coordinates Bishkek and Osh; Bakyt works in both, Cholpon in
    /// Osh only; Larysa coordinates Poltava, where Halyna works.
    pub(crate) const THREE_CITIES: &str = r#"
[cities.bishkek]
names = { ru = "Бишкек", en = "Bishkek" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "nurgul"
team = ["aida", "bakyt"]
[cities.bishkek.escalation]
levels = [{ kind = "on_call", wait_minutes = 3 }, { kind = "team", wait_minutes = 5 }]
unanswered_after_minutes = 15
[cities.osh]
names = { ru = "Ош", en = "Osh" }
time_zone = "Asia/Bishkek"
country = "KG"
coordinator = "nurgul"
team = ["bakyt", "cholpon"]
[cities.osh.escalation]
levels = [{ kind = "on_call", wait_minutes = 3 }, { kind = "team", wait_minutes = 5 }]
unanswered_after_minutes = 15
[cities.poltava]
names = { uk = "Полтава", en = "Poltava" }
time_zone = "Europe/Kyiv"
country = "UA"
coordinator = "larysa"
team = ["halyna"]
[cities.poltava.escalation]
levels = [{ kind = "on_call", wait_minutes = 3 }, { kind = "team", wait_minutes = 5 }]
unanswered_after_minutes = 15
[lawyers.nurgul]
name = "Nurgul"
languages = ["ru"]
cities = ["bishkek", "osh"]
phone_env = "P_NURGUL"
[lawyers.aida]
name = "Aida"
languages = ["en"]
cities = ["bishkek"]
phone_env = "P_AIDA"
[lawyers.bakyt]
name = "Bakyt"
languages = ["en"]
cities = ["bishkek", "osh"]
phone_env = "P_BAKYT"
[lawyers.cholpon]
name = "Cholpon"
languages = ["en"]
cities = ["osh"]
phone_env = "P_CHOLPON"
[lawyers.larysa]
name = "Larysa"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_LARYSA"
[lawyers.halyna]
name = "Halyna"
languages = ["uk"]
cities = ["poltava"]
phone_env = "P_HALYNA"
[[rotations]]
city = "bishkek"
start = "2026-03-02 09:00"
shift_hours = 24
lawyers = ["aida", "bakyt"]
[[rotations]]
city = "osh"
start = "2026-03-02 09:00"
shift_hours = 24
lawyers = ["cholpon", "bakyt"]
[[rotations]]
city = "poltava"
start = "2026-03-02 08:00"
shift_hours = 24
lawyers = ["halyna"]
"#;

    fn three() -> Roster {
        crate::dispatch::lifecycle::tests::roster_from(THREE_CITIES)
    }

    /// A lawyer who works in none of the coordinator's cities is refused
    /// (Halyna, Poltava only, named by Bishkek's and Osh's coordinator):
    /// the cover used to land on the coordinator's first city.
    #[test]
    fn a_cover_of_a_lawyer_from_another_city_is_refused() {
        let r = three();
        let until = Some(Until::For(120));
        assert_eq!(
            decide(&r, "nurgul", "halyna", None, until, t0()),
            Err(CoverRefusal::NotInCity {
                lawyer: "halyna".into(),
                cities: vec!["bishkek".into(), "osh".into()],
            })
        );
        assert_eq!(
            decide(&r, "nurgul", "Halyna", Some("бишкек"), until, t0()),
            Err(CoverRefusal::NotInCity {
                lawyer: "halyna".into(),
                cities: vec!["bishkek".into()],
            })
        );
        assert_eq!(
            decide(&r, "nurgul", "cholpon", Some("bishkek"), until, t0()),
            Err(CoverRefusal::NotInCity {
                lawyer: "cholpon".into(),
                cities: vec!["bishkek".into()],
            })
        );
        // A city she does not coordinate; a city nobody knows.
        assert_eq!(
            decide(&r, "nurgul", "halyna", Some("poltava"), until, t0()),
            Err(CoverRefusal::NotCoordinator)
        );
        assert_eq!(
            decide(&r, "nurgul", "bakyt", Some("tokyo"), until, t0()),
            Err(CoverRefusal::BadUntil)
        );
        // Her own coordinator may.
        let c = decide(&r, "larysa", "halyna", None, until, t0()).unwrap();
        assert_eq!((c.city.as_str(), c.lawyer.as_str()), ("poltava", "halyna"));
    }

    /// The cover is for the coordinator's city the lawyer works in; one who
    /// works in several is covered in the one named (`COVER bakyt osh
    /// 18:00`, by id or name in either script), and without a name nothing
    /// changes and the coordinator is asked which (it always landed on
    /// Bishkek).
    #[test]
    fn the_city_of_a_cover_is_the_one_she_works_in_or_the_one_named() {
        let r = three();
        let until = Some(Until::For(120));
        let c = decide(&r, "nurgul", "cholpon", None, until, t0()).unwrap();
        assert_eq!(c.city, "osh");
        assert_eq!(
            decide(&r, "nurgul", "bakyt", None, until, t0()),
            Err(CoverRefusal::WhichCity {
                lawyer: "bakyt".into(),
                cities: vec!["bishkek".into(), "osh".into()],
            })
        );
        for typed in ["osh", "Ош", "OSH"] {
            let c = decide(&r, "nurgul", "bakyt", Some(typed), until, t0()).unwrap();
            assert_eq!(c.city, "osh", "{typed}");
        }
        let c = decide(&r, "nurgul", "bakyt", Some("Бишкек"), until, t0()).unwrap();
        assert_eq!(c.city, "bishkek");
        let covers: Covers = [("bishkek".to_owned(), c)].into();
        assert_eq!(on_call(&r, &covers, "bishkek", t0())[0].as_str(), "bakyt");
        assert_eq!(on_call(&r, &covers, "osh", t0())[0].as_str(), "cholpon");
    }

    /// A cover stored for a lawyer who does not work in the city (before
    /// `COVER` checked it, or a roster reloaded since) is not in force: the
    /// roster's lawyer is on call.
    #[test]
    fn a_stored_cover_of_a_lawyer_from_another_city_is_ignored() {
        let r = three();
        let stale = Cover {
            city: "bishkek".into(),
            lawyer: "halyna".into(),
            until_ms: ms(t0()) + 3_600_000,
            by: "nurgul".into(),
        };
        let covers: Covers = [("bishkek".to_owned(), stale)].into();
        assert!(active(&r, &covers, "bishkek", t0()).is_none());
        assert_eq!(on_call(&r, &covers, "bishkek", t0())[0].as_str(), "aida");
    }
}

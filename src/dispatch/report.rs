//! Statistics the working groups can publish without endangering anyone.
//!
//! Counts of cases by city, week, situation and abuse type, and the median
//! and 90th-percentile time to accept (against the one-hour standard), as
//! CSV or Markdown. Built only from anonymous fields. Any count from 1 to
//! `threshold - 1` is suppressed (shown as `<threshold`), and so are time
//! figures computed from fewer than `threshold` cases; when a table would
//! have exactly one suppressed cell, the next smallest is suppressed too, so
//! that it cannot be recovered by subtraction from a total.

use std::collections::BTreeMap;

use crate::case::CaseData;

/// The anonymous facts of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseStat {
    /// City id.
    pub city: String,
    /// ISO week of opening (`2026-W48`, UTC).
    pub week: String,
    /// Situation (`detained_self`, …; `unknown` if unset).
    pub situation: String,
    /// Abuse type, on the report path.
    pub abuse: Option<String>,
    /// Time to accept, if accepted.
    pub accepted_after_ms: Option<u64>,
}

impl CaseStat {
    /// The facts of a case.
    pub fn of(case: &CaseData) -> CaseStat {
        let week = jiff::Timestamp::from_millisecond(i64::try_from(case.opened_at_ms).unwrap_or(0))
            .map(|t| {
                let d = t.to_zoned(jiff::tz::TimeZone::UTC).date().iso_week_date();
                format!("{}-W{:02}", d.year(), d.week())
            })
            .unwrap_or_else(|_| "unknown".into());
        CaseStat {
            city: case.city.clone(),
            week,
            situation: case
                .vars
                .get("situation")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            abuse: case.vars.get("abuse").cloned(),
            accepted_after_ms: match (case.dispatch.accepted_at_ms, case.opened_at_ms) {
                (Some(a), o) => Some(a.saturating_sub(o)),
                _ => None,
            },
        }
    }
}

/// Read every case in the store (all buckets) as anonymous facts.
///
/// # Errors
/// [`crate::store::StoreError`] when the store fails.
pub async fn collect(
    store: &dyn crate::store::Store,
    privacy: &crate::privacy::Privacy,
) -> Result<Vec<CaseStat>, crate::store::StoreError> {
    let mut out = Vec::new();
    for bucket in 0..crate::store::BUCKETS {
        for id in store.case_ids(bucket, false).await? {
            let Some(rec) = store.case(bucket, &id).await? else {
                continue;
            };
            let Some(case) = privacy
                .open(&rec.data)
                .ok()
                .and_then(|p| serde_json::from_slice::<CaseData>(&p).ok())
            else {
                continue;
            };
            out.push(CaseStat::of(&case));
        }
    }
    Ok(out)
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The value of the table's dimension (`bishkek`, `2026-W48`, …).
    pub key: String,
    /// Cases (`None`: suppressed).
    pub cases: Option<u64>,
    /// Cases accepted (`None`: suppressed).
    pub accepted: Option<u64>,
    /// Median minutes to accept (`None`: suppressed or no data).
    pub median_min: Option<f64>,
    /// 90th-percentile minutes to accept.
    pub p90_min: Option<f64>,
    /// Share accepted within one hour, in percent.
    pub within_hour_pct: Option<f64>,
}

/// One table: a dimension and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `city`, `week`, `situation` or `abuse`.
    pub dimension: &'static str,
    /// Rows, sorted by key.
    pub rows: Vec<Row>,
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest-rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 60_000.0)
}

fn table(
    dimension: &'static str,
    stats: &[CaseStat],
    key: impl Fn(&CaseStat) -> Option<String>,
    threshold: u64,
) -> Table {
    let mut groups: BTreeMap<String, Vec<&CaseStat>> = BTreeMap::new();
    for s in stats {
        if let Some(k) = key(s) {
            groups.entry(k).or_default().push(s);
        }
    }
    let small = |n: u64| n > 0 && n < threshold;
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(k, cases)| {
            let n = cases.len() as u64;
            let mut times: Vec<u64> = cases.iter().filter_map(|c| c.accepted_after_ms).collect();
            times.sort_unstable();
            let accepted = times.len() as u64;
            let enough = accepted >= threshold;
            Row {
                key: k,
                cases: (!small(n)).then_some(n),
                accepted: (!small(accepted)).then_some(accepted),
                median_min: if enough {
                    percentile(&times, 0.5)
                } else {
                    None
                },
                p90_min: if enough {
                    percentile(&times, 0.9)
                } else {
                    None
                },
                within_hour_pct: enough.then(|| {
                    times.iter().filter(|t| **t <= 3_600_000).count() as f64 * 100.0
                        / accepted as f64
                }),
            }
        })
        .collect();
    // Complementary suppression of the case counts.
    let suppressed = rows.iter().filter(|r| r.cases.is_none()).count();
    if suppressed == 1
        && let Some(r) = rows
            .iter_mut()
            .filter(|r| r.cases.is_some_and(|c| c > 0))
            .min_by_key(|r| r.cases)
    {
        r.cases = None;
        r.accepted = None;
    }
    let suppressed = rows
        .iter()
        .filter(|r| r.accepted.is_none() && r.cases.is_some())
        .count();
    if suppressed == 1
        && let Some(r) = rows
            .iter_mut()
            .filter(|r| r.accepted.is_some_and(|c| c > 0))
            .min_by_key(|r| r.accepted)
    {
        r.accepted = None;
    }
    Table { dimension, rows }
}

/// Build the four tables.
pub fn build(stats: &[CaseStat], threshold: u64) -> Vec<Table> {
    vec![
        table("city", stats, |s| Some(s.city.clone()), threshold),
        table("week", stats, |s| Some(s.week.clone()), threshold),
        table("situation", stats, |s| Some(s.situation.clone()), threshold),
        table("abuse", stats, |s| s.abuse.clone(), threshold),
    ]
}

fn cell_n(v: Option<u64>, threshold: u64) -> String {
    v.map_or_else(|| format!("<{threshold}"), |n| n.to_string())
}

fn cell_f(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.0}"))
}

/// CSV: `dimension,value,cases,accepted,median_min,p90_min,within_hour_pct`.
pub fn to_csv(tables: &[Table], threshold: u64) -> String {
    let mut out = String::from(
        "dimension,value,cases,accepted,median_min_to_accept,p90_min_to_accept,accepted_within_1h_pct\n",
    );
    for t in tables {
        for r in &t.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                t.dimension,
                r.key,
                cell_n(r.cases, threshold),
                cell_n(r.accepted, threshold),
                cell_f(r.median_min),
                cell_f(r.p90_min),
                cell_f(r.within_hour_pct)
            ));
        }
    }
    out
}

/// Markdown: one table per dimension.
pub fn to_markdown(tables: &[Table], threshold: u64) -> String {
    let mut out = format!(
        "# Hotline statistics\n\nCounts below {threshold} are shown as `<{threshold}`; times need at least {threshold} accepted cases. Times are minutes from the request to a lawyer accepting (standard: within 60).\n"
    );
    for t in tables {
        out.push_str(&format!(
            "\n## By {}\n\n| {} | cases | accepted | median min | p90 min | within 1 h % |\n|---|---|---|---|---|---|\n",
            t.dimension, t.dimension
        ));
        for r in &t.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.key,
                cell_n(r.cases, threshold),
                cell_n(r.accepted, threshold),
                cell_f(r.median_min),
                cell_f(r.p90_min),
                cell_f(r.within_hour_pct)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(city: &str, situation: &str, abuse: Option<&str>, minutes: Option<u64>) -> CaseStat {
        CaseStat {
            city: city.into(),
            week: "2026-W48".into(),
            situation: situation.into(),
            abuse: abuse.map(Into::into),
            accepted_after_ms: minutes.map(|m| m * 60_000),
        }
    }

    #[test]
    fn small_cells_are_suppressed_with_a_complement() {
        let mut stats = Vec::new();
        for m in [5, 10, 20, 30, 50, 70, 90] {
            stats.push(stat("bishkek", "detained_self", None, Some(m)));
        }
        for _ in 0..6 {
            stats.push(stat("poltava", "detained_other", None, None));
        }
        stats.push(stat("osh", "report", Some("bribe"), Some(12)));
        stats.push(stat("osh", "report", Some("bribe"), None));
        let tables = build(&stats, 5);
        let city = &tables[0];
        let row = |k: &str| city.rows.iter().find(|r| r.key == k).unwrap().clone();
        assert_eq!(row("osh").cases, None, "2 cases: suppressed");
        assert_eq!(
            row("poltava").cases,
            None,
            "the smallest other cell goes too, so Osh cannot be recovered"
        );
        assert_eq!(row("bishkek").cases, Some(7));
        assert_eq!(row("bishkek").accepted, Some(7));
        assert_eq!(row("bishkek").median_min, Some(30.0));
        assert_eq!(row("bishkek").p90_min, Some(90.0));
        let pct = row("bishkek").within_hour_pct.unwrap();
        assert!((pct - 500.0 / 7.0).abs() < 1e-9, "{pct}");
        assert_eq!(
            row("osh").median_min,
            None,
            "times from fewer than 5 cases are suppressed"
        );
        let abuse = &tables[3];
        assert_eq!(abuse.rows.len(), 1);
        assert_eq!(abuse.rows[0].cases, None);
        let md = to_markdown(&tables, 5);
        assert!(md.contains("| osh | <5 | <5 | – | – | – |"), "{md}");
        let csv = to_csv(&tables, 5);
        assert!(csv.contains("city,bishkek,7,7,30,90,71"), "{csv}");
        assert!(csv.contains("city,osh,<5,<5,–,–,–"), "{csv}");
    }

    #[test]
    fn nothing_small_is_ever_printed() {
        // Whatever the data, no count between 1 and threshold-1 appears.
        for n in 0..12u64 {
            let stats: Vec<CaseStat> = (0..n)
                .map(|i| {
                    stat(
                        if i % 2 == 0 { "osh" } else { "bishkek" },
                        "report",
                        Some("sex"),
                        Some(i),
                    )
                })
                .collect();
            for t in build(&stats, 5) {
                for r in t.rows {
                    for v in [r.cases, r.accepted].into_iter().flatten() {
                        assert!(v == 0 || v >= 5, "{n}: {v} printed");
                    }
                }
            }
        }
    }
}

//! Statistics the working groups can publish without endangering anyone.
//!
//! Counts of cases by city, week, situation and abuse type, and the median
//! and 90th-percentile time to accept (against the one-hour standard), as
//! CSV or Markdown. Built only from anonymous fields. Any count from 1 to
//! `threshold - 1` is suppressed (shown as `<threshold`), and so are time
//! figures computed from fewer than `threshold` cases; when a table would
//! have exactly one suppressed cell, the next smallest is suppressed too, so
//! that it cannot be recovered by subtraction from a total.
//!
//! Outcome tables ([`build_outcomes`]): for the closed cases of each quarter
//! (by opening, UTC), outcome × city, outcome × abuse type and time to
//! accept × outcome, with how many closed cases had no outcome given. A case
//! with several outcomes counts once in each of its rows. The same
//! suppression applies cell by cell, and the complementary one along every
//! row and every column until no line has exactly one suppressed cell.

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
    /// Quarter of opening (`2026-Q4`, UTC).
    pub quarter: String,
    /// Whether the case is closed.
    pub closed: bool,
    /// Outcome ids given when it was closed (empty: not given).
    pub outcomes: Vec<String>,
}

impl CaseStat {
    /// The facts of a case.
    pub fn of(case: &CaseData) -> CaseStat {
        let opened =
            jiff::Timestamp::from_millisecond(i64::try_from(case.opened_at_ms).unwrap_or(0))
                .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date());
        let week = opened
            .as_ref()
            .map(|d| {
                let d = d.iso_week_date();
                format!("{}-W{:02}", d.year(), d.week())
            })
            .unwrap_or_else(|_| "unknown".into());
        let quarter = opened
            .as_ref()
            .map(|d| format!("{}-Q{}", d.year(), (d.month() - 1) / 3 + 1))
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
            quarter,
            closed: case.dispatch.status == crate::dispatch::lifecycle::Status::Closed,
            outcomes: case.dispatch.outcomes.clone(),
        }
    }
}

/// Every case in the store as anonymous facts, and how many could not be
/// read (sealed under another `HOTLINE_PII_KEY`, or written by a version
/// this one cannot read): those are in no table.
#[derive(Debug, Default)]
pub struct Collected {
    /// One per readable case.
    pub stats: Vec<CaseStat>,
    /// Cases left out because they could not be opened or decoded.
    pub unreadable: usize,
}

/// Read every case in the store (all buckets) as anonymous facts.
///
/// # Errors
/// [`crate::store::StoreError`] when the store fails.
pub async fn collect(
    store: &dyn crate::store::Store,
    privacy: &crate::privacy::Privacy,
) -> Result<Collected, crate::store::StoreError> {
    let mut out = Vec::new();
    let mut unreadable = 0;
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
                unreadable += 1;
                continue;
            };
            out.push(CaseStat::of(&case));
        }
    }
    Ok(Collected {
        stats: out,
        unreadable,
    })
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

/// A two-way table of case counts for one quarter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossTable {
    /// `2026-Q4`.
    pub quarter: String,
    /// A stable name (`outcome_by_city`, …), for CSV.
    pub name: &'static str,
    /// What the rows are (`outcome`, `time to accept`).
    pub rows_dim: &'static str,
    /// What the columns are (`city`, `abuse`, `outcome`).
    pub cols_dim: &'static str,
    /// Row keys.
    pub rows: Vec<String>,
    /// Column keys.
    pub cols: Vec<String>,
    /// Counts by row then column (`None`: suppressed).
    pub cells: Vec<Vec<Option<u64>>>,
}

/// The outcome part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcomes {
    /// Closed cases (`None`: suppressed).
    pub closed: Option<u64>,
    /// Closed cases with no outcome given (`None`: suppressed).
    pub not_given: Option<u64>,
    /// Per quarter: closed cases and those with no outcome given.
    pub quarters: Vec<(String, Option<u64>, Option<u64>)>,
    /// Three tables per quarter.
    pub tables: Vec<CrossTable>,
}

/// The row key of a closed case with no outcome given.
pub const NOT_GIVEN: &str = crate::dispatch::lifecycle::NOT_GIVEN;

/// Time-to-accept bands (rows of `time_to_accept_by_outcome`).
pub const TIME_BANDS: [&str; 4] = [
    "within_15_min",
    "15_to_60_min",
    "over_60_min",
    "not_accepted",
];

fn time_band(s: &CaseStat) -> &'static str {
    match s.accepted_after_ms {
        Some(ms) if ms <= 15 * 60_000 => TIME_BANDS[0],
        Some(ms) if ms <= 60 * 60_000 => TIME_BANDS[1],
        Some(_) => TIME_BANDS[2],
        None => TIME_BANDS[3],
    }
}

fn outcome_keys(s: &CaseStat) -> Vec<String> {
    if s.outcomes.is_empty() {
        vec![NOT_GIVEN.to_owned()]
    } else {
        s.outcomes.clone()
    }
}

/// Suppress counts from 1 to `threshold - 1`, then, along every row and
/// every column with exactly one suppressed cell, the smallest other
/// non-zero one, until no line has exactly one.
pub fn suppress(counts: &[Vec<u64>], threshold: u64) -> Vec<Vec<Option<u64>>> {
    let mut cells: Vec<Vec<Option<u64>>> = counts
        .iter()
        .map(|r| {
            r.iter()
                .map(|&n| (n == 0 || n >= threshold).then_some(n))
                .collect()
        })
        .collect();
    let (rows, cols) = (cells.len(), cells.first().map_or(0, Vec::len));
    let lines: Vec<Vec<(usize, usize)>> = (0..rows)
        .map(|r| (0..cols).map(|c| (r, c)).collect())
        .chain((0..cols).map(|c| (0..rows).map(|r| (r, c)).collect()))
        .collect();
    loop {
        let mut changed = false;
        for line in &lines {
            let hidden = line.iter().filter(|(r, c)| cells[*r][*c].is_none()).count();
            if hidden != 1 {
                continue;
            }
            let next = line
                .iter()
                .filter(|(r, c)| cells[*r][*c].is_some_and(|n| n > 0))
                .min_by_key(|(r, c)| cells[*r][*c]);
            if let Some(&(r, c)) = next {
                cells[r][c] = None;
                changed = true;
            }
        }
        if !changed {
            return cells;
        }
    }
}

fn cross(
    quarter: &str,
    name: &'static str,
    (rows_dim, cols_dim): (&'static str, &'static str),
    stats: &[&CaseStat],
    pairs: impl Fn(&CaseStat) -> Vec<(String, String)>,
    fixed_rows: Option<&[&str]>,
    threshold: u64,
) -> CrossTable {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in stats {
        for k in pairs(s) {
            *counts.entry(k).or_default() += 1;
        }
    }
    let rows: Vec<String> = match fixed_rows {
        Some(f) => f.iter().map(|s| (*s).to_owned()).collect(),
        None => {
            let mut r: Vec<String> = counts.keys().map(|(r, _)| r.clone()).collect();
            r.sort();
            r.dedup();
            // `not_given` last.
            r.sort_by_key(|k| k == NOT_GIVEN);
            r
        }
    };
    let mut cols: Vec<String> = counts.keys().map(|(_, c)| c.clone()).collect();
    cols.sort();
    cols.dedup();
    cols.sort_by_key(|k| k == NOT_GIVEN);
    let raw: Vec<Vec<u64>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| counts.get(&(r.clone(), c.clone())).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    CrossTable {
        quarter: quarter.to_owned(),
        name,
        rows_dim,
        cols_dim,
        cells: suppress(&raw, threshold),
        rows,
        cols,
    }
}

/// Build the outcome tables from the closed cases among `stats`.
pub fn build_outcomes(stats: &[CaseStat], threshold: u64) -> Outcomes {
    let closed: Vec<&CaseStat> = stats.iter().filter(|s| s.closed).collect();
    let small = |n: u64| (n == 0 || n >= threshold).then_some(n);
    let mut by_quarter: BTreeMap<&str, Vec<&CaseStat>> = BTreeMap::new();
    for s in &closed {
        by_quarter.entry(s.quarter.as_str()).or_default().push(s);
    }
    let none_given = |v: &[&CaseStat]| v.iter().filter(|s| s.outcomes.is_empty()).count() as u64;
    let mut quarters = Vec::new();
    let mut tables = Vec::new();
    for (q, cases) in &by_quarter {
        let n = cases.len() as u64;
        let (closed_cell, not_given_cell) = (small(n), small(none_given(cases)));
        quarters.push(((*q).to_owned(), closed_cell, not_given_cell));
        tables.push(cross(
            q,
            "outcome_by_city",
            ("outcome", "city"),
            cases,
            |s| {
                outcome_keys(s)
                    .into_iter()
                    .map(|o| (o, s.city.clone()))
                    .collect()
            },
            None,
            threshold,
        ));
        tables.push(cross(
            q,
            "outcome_by_abuse",
            ("outcome", "abuse"),
            cases,
            |s| match &s.abuse {
                Some(a) => outcome_keys(s)
                    .into_iter()
                    .map(|o| (o, a.clone()))
                    .collect(),
                None => Vec::new(),
            },
            None,
            threshold,
        ));
        tables.push(cross(
            q,
            "time_to_accept_by_outcome",
            ("time to accept", "outcome"),
            cases,
            |s| {
                outcome_keys(s)
                    .into_iter()
                    .map(|o| (time_band(s).to_owned(), o))
                    .collect()
            },
            Some(&TIME_BANDS),
            threshold,
        ));
    }
    Outcomes {
        closed: small(closed.len() as u64),
        not_given: small(none_given(&closed)),
        quarters,
        tables,
    }
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

/// The outcome tables as Markdown (after [`to_markdown`]'s).
pub fn outcomes_markdown(o: &Outcomes, threshold: u64) -> String {
    let mut out = format!(
        "\n# Outcomes\n\nWhat happened next, as the lawyer recorded it when closing the case (`DONE 4821` and outcome codes): categories only, never free text. Closed cases by the quarter they opened in (UTC). A case with several outcomes counts in each of its rows; `{NOT_GIVEN}` counts cases closed without one. Counts below {threshold} are shown as `<{threshold}`, and where a row or column would have exactly one such cell, the next smallest is hidden too.\n\nClosed cases: {}. No outcome given: {}.\n",
        cell_n(o.closed, threshold),
        cell_n(o.not_given, threshold)
    );
    for (q, closed, not_given) in &o.quarters {
        out.push_str(&format!(
            "\n## {q}\n\nClosed cases: {}. No outcome given: {}.\n",
            cell_n(*closed, threshold),
            cell_n(*not_given, threshold)
        ));
        for t in o.tables.iter().filter(|t| &t.quarter == q) {
            out.push_str(&format!("\n### {} × {}\n\n", t.rows_dim, t.cols_dim));
            if t.cols.is_empty() {
                out.push_str("No cases.\n");
                continue;
            }
            out.push_str(&format!("| {} | {} |\n", t.rows_dim, t.cols.join(" | ")));
            out.push_str(&format!("|---{}|\n", "|---".repeat(t.cols.len())));
            for (key, cells) in t.rows.iter().zip(&t.cells) {
                let cells: Vec<String> = cells.iter().map(|c| cell_n(*c, threshold)).collect();
                out.push_str(&format!("| {key} | {} |\n", cells.join(" | ")));
            }
        }
    }
    out
}

/// The outcome tables as CSV, a second block after [`to_csv`]'s (an
/// empty line between): `quarter,table,row,column,cases`; the summary rows
/// are `summary,closed` and `summary,not_given` (quarter `all` for every
/// quarter together).
pub fn outcomes_csv(o: &Outcomes, threshold: u64) -> String {
    let mut out = String::from("\nquarter,table,row,column,cases\n");
    let mut summary = |q: &str, closed: Option<u64>, not_given: Option<u64>| {
        out.push_str(&format!(
            "{q},summary,closed,all,{}\n",
            cell_n(closed, threshold)
        ));
        out.push_str(&format!(
            "{q},summary,{NOT_GIVEN},all,{}\n",
            cell_n(not_given, threshold)
        ));
    };
    summary("all", o.closed, o.not_given);
    for (q, closed, not_given) in &o.quarters {
        summary(q, *closed, *not_given);
    }
    for t in &o.tables {
        for (key, cells) in t.rows.iter().zip(&t.cells) {
            for (col, cell) in t.cols.iter().zip(cells) {
                out.push_str(&format!(
                    "{},{},{key},{col},{}\n",
                    t.quarter,
                    t.name,
                    cell_n(*cell, threshold)
                ));
            }
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
            quarter: "2026-Q4".into(),
            closed: false,
            outcomes: Vec::new(),
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

    fn closed(
        city: &str,
        abuse: Option<&str>,
        minutes: Option<u64>,
        outcomes: &[&str],
    ) -> CaseStat {
        CaseStat {
            closed: true,
            outcomes: outcomes.iter().map(|s| (*s).to_owned()).collect(),
            ..stat(city, "report", abuse, minutes)
        }
    }

    #[test]
    fn outcome_tables_count_each_outcome_and_suppress_along_rows_and_columns() {
        let mut stats = Vec::new();
        for _ in 0..6 {
            stats.push(closed("bishkek", Some("beating"), Some(10), &["released"]));
        }
        for _ in 0..5 {
            stats.push(closed(
                "osh",
                Some("beating"),
                Some(30),
                &["released", "complaint"],
            ));
        }
        stats.push(closed("osh", None, None, &["complaint"]));
        for _ in 0..7 {
            stats.push(closed("poltava", None, Some(90), &[]));
        }
        stats.push(stat("poltava", "report", None, None)); // open: not counted
        let o = build_outcomes(&stats, 5);
        assert_eq!(o.closed, Some(19));
        assert_eq!(o.not_given, Some(7));
        assert_eq!(o.quarters, vec![("2026-Q4".to_owned(), Some(19), Some(7))]);
        let t = o
            .tables
            .iter()
            .find(|t| t.name == "outcome_by_city")
            .unwrap();
        assert_eq!(t.rows, ["complaint", "released", NOT_GIVEN]);
        assert_eq!(t.cols, ["bishkek", "osh", "poltava"]);
        assert_eq!(t.cells[0], [Some(0), Some(6), Some(0)]);
        assert_eq!(t.cells[1], [Some(6), Some(5), Some(0)]);
        assert_eq!(t.cells[2], [Some(0), Some(0), Some(7)]);
        let t = o
            .tables
            .iter()
            .find(|t| t.name == "time_to_accept_by_outcome")
            .unwrap();
        assert_eq!(t.rows, TIME_BANDS);
        assert_eq!(t.cols, ["complaint", "released", NOT_GIVEN]);
        // complaint: 5 within 60 min and 1 not accepted (suppressed, so the
        // 5 above it goes too, then the 5 beside that, then the 6 above).
        assert_eq!(t.cells[0], [Some(0), None, Some(0)]);
        assert_eq!(t.cells[1], [None, None, Some(0)]);
        assert_eq!(t.cells[2], [Some(0), Some(0), Some(7)]);
        assert_eq!(t.cells[3], [None, Some(0), Some(0)]);
        let md = outcomes_markdown(&o, 5);
        assert!(
            md.contains("Closed cases: 19. No outcome given: 7."),
            "{md}"
        );
        assert!(md.contains("| outcome | bishkek | osh | poltava |"), "{md}");
        assert!(md.contains("| 15_to_60_min | <5 | <5 | 0 |"), "{md}");
        let csv = outcomes_csv(&o, 5);
        assert!(csv.contains("\nquarter,table,row,column,cases\n"), "{csv}");
        assert!(csv.contains("all,summary,not_given,all,7\n"), "{csv}");
        assert!(
            csv.contains("2026-Q4,outcome_by_city,released,osh,5\n"),
            "{csv}"
        );
        assert!(
            csv.contains("2026-Q4,time_to_accept_by_outcome,not_accepted,complaint,<5\n"),
            "{csv}"
        );
    }

    #[test]
    fn complementary_suppression_leaves_no_line_with_one_hidden_cell() {
        // Whatever the counts, no printed count is small, and no row or
        // column has exactly one hidden cell when another could be hidden.
        let mut seed = 7u64;
        for _ in 0..300 {
            let mut next = || {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 33) % 9
            };
            let counts: Vec<Vec<u64>> = (0..4).map(|_| (0..3).map(|_| next()).collect()).collect();
            let cells = suppress(&counts, 5);
            let lines: Vec<Vec<Option<u64>>> = cells
                .iter()
                .cloned()
                .chain((0..3).map(|c| cells.iter().map(|r| r[c]).collect()))
                .collect();
            for line in lines {
                assert!(
                    line.iter().flatten().all(|n| *n == 0 || *n >= 5),
                    "{counts:?}"
                );
                let hidden = line.iter().filter(|c| c.is_none()).count();
                let more = line.iter().any(|c| c.is_some_and(|n| n > 0));
                assert!(hidden != 1 || !more, "{counts:?} → {cells:?}");
            }
        }
    }
}

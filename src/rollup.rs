//! Daily rollups: the pre-computed aggregates of the bundled schema, rebuilt from raw rows.
//!
//! [`recompute`] rebuilds six tables for a [`RollupRange`] of UTC days. For each table it
//! deletes the rows of the range and inserts them again from the raw tables, so running it
//! twice gives the same rows (idempotent) and days outside the range are never touched.
//! A row's day is `date(<timestamp>)` of the raw row, that is its UTC calendar day; raw rows
//! whose timestamp SQLite cannot parse belong to no day and are ignored.
//!
//! What each table holds, per day `D`:
//!
//! - `skill_metrics_daily` (SHARED), one row per skill with any activity on `D`:
//!   - `uses`: drafts created on `D` with that skill (`content_drafts.skill_id`);
//!   - `approval_rate`: approved share of the reviewer decisions on `D`
//!     (`revision_events` of type `review_approved` over `review_approved` plus
//!     `review_rejected`), NULL when there were none;
//!   - `pass_rate`: passed share of the guard checks on `D` (`guard_check` events), NULL
//!     when there were none;
//!   - `tenant_count`: distinct tenants behind those drafts and events.
//! - `guard_metrics_daily` (SHARED), one row per guard checked on `D`: `evaluations`
//!   (guard checks), `failures` (those with `passed = 0`) and `tenant_count`.
//! - `platform_benchmarks` (SHARED), one row per platform, industry and metric: each tenant
//!   with posts published on `D` on that platform (and with impressions) contributes one
//!   value, computed over the latest totals in `post_metrics` of those posts:
//!   - `engagement_rate` = (clicks + likes + comments + shares) / impressions;
//!   - `click_through_rate` = clicks / impressions.
//!
//!   `p25`, `p50` and `p75` are percentiles of those per-tenant values with linear
//!   interpolation between closest ranks (rank `p * (n - 1)` of the sorted values, as
//!   numpy's default), `tenant_count` is the number of values, and the industry is the
//!   tenant's `industry`, or `'unspecified'` when NULL.
//! - `tenant_metrics_daily` (PRIVATE), one row per tenant with activity on `D`: `posts`
//!   published on `D`, `impressions` (the quantity of `impression` engagement events that
//!   occurred on `D`), `engagements` (the quantity of every other kind), and the number and
//!   value of `conversions` that occurred on `D` (`revenue`).
//! - `campaign_metrics_daily` (PRIVATE), one row per campaign with activity on `D`: `posts`
//!   of the campaign published on `D`, `conversions` and `revenue` from conversions on `D`
//!   credited to the campaign's posts, and `spend`, the `cost_usd` of workflow runs started
//!   on `D` for the campaign's content requests.
//! - `api_usage_daily` (PRIVATE), one row per tenant, provider and model with workflow
//!   runs started on `D` (whatever their status, since failed calls are billed too):
//!   `calls`, `tokens` (`tokens_in + tokens_out`) and `cost_usd`. A run without a provider
//!   is billed as its engine, one without a model as `'unknown'`.
//!
//! Every row is computed, including shared rows with `tenant_count` below
//! [`crate::catalog::K_ANONYMITY`]: suppression happens when a tenant reads them, not here.

use rusqlite::{params, Transaction};

/// Which days to recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollupRange {
    /// Every day: the rollup tables are rebuilt from scratch.
    All,
    /// One UTC day, `YYYY-MM-DD`.
    Day(String),
    /// Every UTC day from this one (`YYYY-MM-DD`, inclusive) onwards.
    Since(String),
}

/// Rows written per table, in the order [`recompute`] rebuilds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RollupReport {
    /// `(table name, rows inserted)` for each rollup table.
    pub tables: Vec<(String, usize)>,
}

/// The smallest and largest day a range covers (`date()` of any timestamp lies within).
const FIRST_DAY: &str = "0000-01-01";
const LAST_DAY: &str = "9999-12-31";

/// The rollups computed in plain SQL: `(table, insert statement)`. Each statement binds the
/// first day of the range as `?1` and the last as `?2`.
const SQL_ROLLUPS: &[(&str, &str)] = &[
    (
        "skill_metrics_daily",
        "INSERT INTO skill_metrics_daily
             (skill_id, date, uses, approval_rate, pass_rate, tenant_count)
         WITH activity (skill_id, day, tenant_id, is_use, approved, passed) AS (
             SELECT skill_id, date(created_at), tenant_id, 1, NULL, NULL
             FROM content_drafts
             WHERE skill_id IS NOT NULL AND date(created_at) BETWEEN ?1 AND ?2
             UNION ALL
             SELECT skill_id, date(created_at), tenant_id, 0,
                    CASE event_type WHEN 'review_approved' THEN 1.0
                                    WHEN 'review_rejected' THEN 0.0 END,
                    CASE WHEN event_type = 'guard_check' THEN passed * 1.0 END
             FROM revision_events
             WHERE skill_id IS NOT NULL AND date(created_at) BETWEEN ?1 AND ?2
         )
         SELECT skill_id, day, SUM(is_use), AVG(approved), AVG(passed),
                COUNT(DISTINCT tenant_id)
         FROM activity
         GROUP BY skill_id, day",
    ),
    (
        "guard_metrics_daily",
        "INSERT INTO guard_metrics_daily (guard_id, date, evaluations, failures, tenant_count)
         SELECT guard_id, date(created_at), COUNT(*),
                SUM(CASE WHEN passed = 0 THEN 1 ELSE 0 END), COUNT(DISTINCT tenant_id)
         FROM revision_events
         WHERE guard_id IS NOT NULL AND date(created_at) BETWEEN ?1 AND ?2
         GROUP BY guard_id, date(created_at)",
    ),
    (
        "tenant_metrics_daily",
        "INSERT INTO tenant_metrics_daily
             (tenant_id, date, posts, impressions, engagements, conversions, revenue)
         WITH activity (tenant_id, day, posts, impressions, engagements, conversions,
                        revenue) AS (
             SELECT tenant_id, date(published_at), 1, 0, 0, 0, 0.0
             FROM published_posts
             WHERE date(published_at) BETWEEN ?1 AND ?2
             UNION ALL
             SELECT tenant_id, date(occurred_at), 0,
                    CASE WHEN kind = 'impression' THEN quantity ELSE 0 END,
                    CASE WHEN kind = 'impression' THEN 0 ELSE quantity END, 0, 0.0
             FROM engagement_events
             WHERE date(occurred_at) BETWEEN ?1 AND ?2
             UNION ALL
             SELECT tenant_id, date(occurred_at), 0, 0, 0, 1, value
             FROM conversions
             WHERE date(occurred_at) BETWEEN ?1 AND ?2
         )
         SELECT tenant_id, day, SUM(posts), SUM(impressions), SUM(engagements),
                SUM(conversions), SUM(revenue)
         FROM activity
         GROUP BY tenant_id, day",
    ),
    (
        "campaign_metrics_daily",
        "INSERT INTO campaign_metrics_daily
             (campaign_id, tenant_id, date, posts, conversions, revenue, spend)
         WITH activity (tenant_id, campaign_id, day, posts, conversions, revenue, spend) AS (
             SELECT tenant_id, campaign_id, date(published_at), 1, 0, 0.0, 0.0
             FROM published_posts
             WHERE campaign_id IS NOT NULL AND date(published_at) BETWEEN ?1 AND ?2
             UNION ALL
             SELECT c.tenant_id, p.campaign_id, date(c.occurred_at), 0, 1, c.value, 0.0
             FROM conversions AS c
             JOIN published_posts AS p ON p.tenant_id = c.tenant_id AND p.post_id = c.post_id
             WHERE p.campaign_id IS NOT NULL AND date(c.occurred_at) BETWEEN ?1 AND ?2
             UNION ALL
             SELECT w.tenant_id, r.campaign_id, date(w.started_at), 0, 0, 0.0, w.cost_usd
             FROM workflow_runs AS w
             JOIN content_requests AS r
               ON r.tenant_id = w.tenant_id AND r.request_id = w.request_id
             WHERE r.campaign_id IS NOT NULL AND date(w.started_at) BETWEEN ?1 AND ?2
         )
         SELECT campaign_id, tenant_id, day, SUM(posts), SUM(conversions), SUM(revenue),
                SUM(spend)
         FROM activity
         GROUP BY tenant_id, campaign_id, day",
    ),
    (
        "api_usage_daily",
        "INSERT INTO api_usage_daily
             (tenant_id, date, provider, model, calls, tokens, cost_usd)
         SELECT tenant_id, date(started_at), COALESCE(provider, engine),
                COALESCE(model, 'unknown'), COUNT(*), SUM(tokens_in + tokens_out),
                SUM(cost_usd)
         FROM workflow_runs
         WHERE date(started_at) BETWEEN ?1 AND ?2
         GROUP BY tenant_id, date(started_at), COALESCE(provider, engine),
                  COALESCE(model, 'unknown')",
    ),
];

/// Per-tenant values behind `platform_benchmarks`, ordered by group.
const BENCHMARK_VALUES_SQL: &str = "
    SELECT p.platform, COALESCE(t.industry, 'unspecified'), date(p.published_at),
           SUM(m.clicks + m.likes + m.comments + m.shares) * 1.0 / SUM(m.impressions),
           SUM(m.clicks) * 1.0 / SUM(m.impressions)
    FROM published_posts AS p
    JOIN post_metrics AS m ON m.tenant_id = p.tenant_id AND m.post_id = p.post_id
    JOIN tenants AS t ON t.tenant_id = p.tenant_id
    WHERE date(p.published_at) BETWEEN ?1 AND ?2
    GROUP BY p.platform, COALESCE(t.industry, 'unspecified'), date(p.published_at), p.tenant_id
    HAVING SUM(m.impressions) > 0
    ORDER BY 1, 2, 3";

/// The metrics of `platform_benchmarks`, in the column order of [`BENCHMARK_VALUES_SQL`].
const BENCHMARK_METRICS: [&str; 2] = ["engagement_rate", "click_through_rate"];

/// Recomputes skill_metrics_daily, guard_metrics_daily, platform_benchmarks,
/// tenant_metrics_daily, campaign_metrics_daily and api_usage_daily for the range, inside
/// the caller's transaction.
///
/// The rows of the range are deleted and inserted again from the raw tables (see the
/// module docs for what each row holds), so the call is idempotent. Nothing is committed:
/// the caller commits or rolls back. A `Day` or `Since` date that is not a valid
/// `YYYY-MM-DD` is refused with [`rusqlite::Error::ToSqlConversionFailure`] before anything
/// is written.
pub fn recompute(tx: &Transaction<'_>, range: &RollupRange) -> rusqlite::Result<RollupReport> {
    let (first, last) = bounds(range)?;
    let mut report = RollupReport::default();
    for (table, insert) in &SQL_ROLLUPS[..2] {
        report
            .tables
            .push(rebuild(tx, table, insert, &first, &last)?);
    }
    clear(tx, "platform_benchmarks", &first, &last)?;
    report.tables.push((
        "platform_benchmarks".to_owned(),
        insert_benchmarks(tx, &first, &last)?,
    ));
    for (table, insert) in &SQL_ROLLUPS[2..] {
        report
            .tables
            .push(rebuild(tx, table, insert, &first, &last)?);
    }
    Ok(report)
}

/// Validates a YYYY-MM-DD date string (returns it normalised) — used by the CLI.
///
/// Surrounding whitespace is ignored; the date must be exactly four year digits, two month
/// digits and two day digits separated by `-`, and name a real day of the proleptic
/// Gregorian calendar (so `2024-02-29` is accepted and `2023-02-29` is not).
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
        )
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month).contains(&day).then(|| s.to_owned())
}

/// The first and last day of a range, validated.
fn bounds(range: &RollupRange) -> rusqlite::Result<(String, String)> {
    let valid = |d: &str| {
        parse_date(d).ok_or_else(|| {
            rusqlite::Error::ToSqlConversionFailure(
                format!("invalid rollup date `{d}`: expected YYYY-MM-DD").into(),
            )
        })
    };
    Ok(match range {
        RollupRange::All => (FIRST_DAY.to_owned(), LAST_DAY.to_owned()),
        RollupRange::Day(d) => {
            let d = valid(d)?;
            (d.clone(), d)
        }
        RollupRange::Since(d) => (valid(d)?, LAST_DAY.to_owned()),
    })
}

/// Deletes a rollup table's rows for the days `first..=last`.
fn clear(tx: &Transaction<'_>, table: &str, first: &str, last: &str) -> rusqlite::Result<usize> {
    // `table` is one of this module's constants, never input.
    tx.execute(
        &format!("DELETE FROM {table} WHERE date BETWEEN ?1 AND ?2"),
        params![first, last],
    )
}

/// Deletes then re-inserts one SQL-computed rollup table for the days `first..=last`.
fn rebuild(
    tx: &Transaction<'_>,
    table: &str,
    insert: &str,
    first: &str,
    last: &str,
) -> rusqlite::Result<(String, usize)> {
    clear(tx, table, first, last)?;
    let written = tx.execute(insert, params![first, last])?;
    Ok((table.to_owned(), written))
}

/// Inserts `platform_benchmarks` for the days `first..=last`; returns the rows written.
fn insert_benchmarks(tx: &Transaction<'_>, first: &str, last: &str) -> rusqlite::Result<usize> {
    type Group = (String, String, String);
    let mut groups: Vec<(Group, [Vec<f64>; 2])> = Vec::new();
    {
        let mut values = tx.prepare(BENCHMARK_VALUES_SQL)?;
        let mut rows = values.query(params![first, last])?;
        while let Some(row) = rows.next()? {
            let group: Group = (row.get(0)?, row.get(1)?, row.get(2)?);
            let sample = [row.get::<_, f64>(3)?, row.get::<_, f64>(4)?];
            match groups.last_mut() {
                Some((g, acc)) if *g == group => {
                    for (acc, v) in acc.iter_mut().zip(sample) {
                        acc.push(v);
                    }
                }
                _ => groups.push((group, sample.map(|v| vec![v]))),
            }
        }
    }
    let mut insert = tx.prepare(
        "INSERT INTO platform_benchmarks
             (platform, industry, date, metric, p25, p50, p75, tenant_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut written = 0;
    for ((platform, industry, date), mut per_metric) in groups {
        for (metric, values) in BENCHMARK_METRICS.iter().zip(per_metric.iter_mut()) {
            values.sort_by(f64::total_cmp);
            let tenants = i64::try_from(values.len()).unwrap_or(i64::MAX);
            written += insert.execute(params![
                platform,
                industry,
                date,
                metric,
                percentile(values, 0.25),
                percentile(values, 0.50),
                percentile(values, 0.75),
                tenants,
            ])?;
        }
    }
    Ok(written)
}

/// The `p`-th percentile (`0.0..=1.0`) of sorted values, interpolating linearly between the
/// closest ranks. The result always lies between those two values, so percentiles never
/// decrease as `p` grows. An empty slice gives NaN (never called with one).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let below = (rank.floor() as usize).min(last);
    let above = (below + 1).min(last);
    let (lo, hi) = (sorted[below], sorted[above]);
    let value = lo + (hi - lo) * (rank - below as f64);
    value.max(lo).min(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    const MIGRATIONS: [&str; 5] = [
        include_str!("../migrations/0001_core.sql"),
        include_str!("../migrations/0002_content_generation.sql"),
        include_str!("../migrations/0003_publishing.sql"),
        include_str!("../migrations/0004_analytics.sql"),
        include_str!("../migrations/0005_security.sql"),
    ];

    fn schema() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for m in MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
        conn
    }

    #[test]
    fn parse_date_accepts_real_days_only() {
        assert_eq!(parse_date("2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(parse_date(" 2025-12-31\n").as_deref(), Some("2025-12-31"));
        assert_eq!(parse_date("2000-02-29").as_deref(), Some("2000-02-29"));
        for bad in [
            "",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-01-00",
            "2024-1-01",
            "2024/01/01",
            "2024-01-01T00:00:00Z",
            "+024-01-01",
            "２０２４-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_date_agrees_with_sqlite() {
        // Oracle: SQLite's date() normalises a valid day to itself. (SQLite accepts day 31
        // in every month and rolls it over, so its answer is compared after a round trip.)
        let conn = Connection::open_in_memory().unwrap();
        for year in [1900, 2000, 2023, 2024] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let s = format!("{year:04}-{month:02}-{day:02}");
                    let sqlite: Option<String> = conn
                        .query_row("SELECT date(?1)", [&s], |r| r.get(0))
                        .unwrap();
                    let expected = sqlite.filter(|d| *d == s);
                    assert_eq!(parse_date(&s), expected, "{s}");
                }
            }
        }
    }

    #[test]
    fn percentile_interpolates_between_closest_ranks() {
        assert_eq!(percentile(&[7.0], 0.25), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.25), 2.0);
        assert_eq!(percentile(&[0.0, 10.0], 0.25), 2.5);
        assert_eq!(percentile(&[1.0, 2.0, 4.0, 8.0], 0.75), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn invalid_range_dates_are_refused_before_writing() {
        let mut conn = schema();
        let tx = conn.transaction().unwrap();
        for range in [
            RollupRange::Day("2024-02-30".into()),
            RollupRange::Since("yesterday".into()),
        ] {
            assert!(matches!(
                recompute(&tx, &range),
                Err(rusqlite::Error::ToSqlConversionFailure(_))
            ));
        }
    }

    /// A tiny hand-computed case: two tenants, one skill, one guard, one day.
    #[test]
    fn hand_computed_day() {
        let mut conn = schema();
        conn.execute_batch(
            "INSERT INTO tenants (tenant_id, name, industry) VALUES
                 ('a', 'A', 'retail'), ('b', 'B', NULL);
             INSERT INTO skills (skill_id, name, category, status) VALUES
                 ('s', 'S', 'hook', 'active');
             INSERT INTO guards (guard_id, name) VALUES ('g', 'G');
             INSERT INTO content_requests (request_id, tenant_id, platform, brief) VALUES
                 ('ra', 'a', 'linkedin', 'x'), ('rb', 'b', 'linkedin', 'y');
             INSERT INTO content_drafts
                 (draft_id, request_id, tenant_id, skill_id, body, version, created_at) VALUES
                 ('da', 'ra', 'a', 's', '.', 1, '2025-03-01T10:00:00.000Z'),
                 ('db', 'rb', 'b', 's', '.', 1, '2025-03-01T23:59:59.999Z'),
                 ('dc', 'rb', 'b', 's', '.', 2, '2025-03-02T00:00:00.000Z');
             INSERT INTO revision_events
                 (event_id, tenant_id, draft_id, skill_id, guard_id, event_type, passed,
                  created_at) VALUES
                 ('e1', 'a', 'da', 's', 'g', 'guard_check', 1, '2025-03-01T10:01:00Z'),
                 ('e2', 'a', 'da', 's', 'g', 'guard_check', 0, '2025-03-01T10:02:00Z'),
                 ('e3', 'b', 'db', 's', 'g', 'guard_check', 0, '2025-03-01T11:00:00Z'),
                 ('e4', 'a', 'da', 's', NULL, 'review_approved', NULL, '2025-03-01T12:00:00Z');
             INSERT INTO published_posts (post_id, tenant_id, platform, published_at) VALUES
                 ('pa', 'a', 'linkedin', '2025-03-01T13:00:00Z'),
                 ('pb', 'b', 'linkedin', '2025-03-01T14:00:00Z');
             INSERT INTO post_metrics (post_id, tenant_id, impressions, clicks, likes) VALUES
                 ('pa', 'a', 100, 10, 10), ('pb', 'b', 50, 0, 5);
             INSERT INTO workflow_runs
                 (run_id, tenant_id, request_id, engine, provider, model, tokens_in,
                  tokens_out, cost_usd, started_at) VALUES
                 ('w1', 'a', 'ra', 'dify', 'openai', 'm', 10, 5, 0.25, '2025-03-01T09:00:00Z'),
                 ('w2', 'a', NULL, 'openmanus', NULL, NULL, 1, 1, 0.5, '2025-03-01T09:30:00Z');",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let report = recompute(&tx, &RollupRange::Day("2025-03-01".into())).unwrap();
        let count = |t: &str| report.tables.iter().find(|(n, _)| n == t).unwrap().1;
        assert_eq!(count("skill_metrics_daily"), 1);
        assert_eq!(count("guard_metrics_daily"), 1);
        assert_eq!(count("platform_benchmarks"), 4); // (retail, unspecified) x 2 metrics
        assert_eq!(count("tenant_metrics_daily"), 2);
        assert_eq!(count("campaign_metrics_daily"), 0);
        assert_eq!(count("api_usage_daily"), 2);

        let skill: (i64, f64, f64, i64) = tx
            .query_row(
                "SELECT uses, approval_rate, pass_rate, tenant_count FROM skill_metrics_daily",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        // 'dc' belongs to 2025-03-02; one review (approved); one of three checks passed.
        assert_eq!(skill, (2, 1.0, 1.0 / 3.0, 2));
        let guard: (String, i64, i64, i64) = tx
            .query_row(
                "SELECT date, evaluations, failures, tenant_count FROM guard_metrics_daily",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(guard, ("2025-03-01".to_owned(), 3, 2, 2));
        let bench: (f64, f64, i64) = tx
            .query_row(
                "SELECT p50, p75, tenant_count FROM platform_benchmarks
                 WHERE industry = 'retail' AND metric = 'engagement_rate'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(bench, (0.2, 0.2, 1));
        let usage: Vec<(String, String, i64, i64)> = tx
            .prepare("SELECT provider, model, calls, tokens FROM api_usage_daily ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            usage,
            vec![
                ("openai".to_owned(), "m".to_owned(), 1, 15),
                ("openmanus".to_owned(), "unknown".to_owned(), 1, 2),
            ]
        );
        // Nothing outside the day was written.
        let other_days: i64 = tx
            .query_row(
                "SELECT (SELECT COUNT(*) FROM skill_metrics_daily WHERE date <> '2025-03-01')
                      + (SELECT COUNT(*) FROM tenant_metrics_daily WHERE date <> '2025-03-01')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(other_days, 0);
        // A second run rewrites the same rows.
        assert_eq!(
            recompute(&tx, &RollupRange::Day("2025-03-01".into())).unwrap(),
            report
        );
    }
}

//! Keyset pagination ([`d1vec::sql::cursor`]) through tenant sessions. The oracle is the
//! admin connection: the rows a walk must see are those its own `SELECT ... WHERE
//! tenant_id = ? ORDER BY ...` returns.

use std::collections::{BTreeSet, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use d1vec::sql::cursor::{page, Page, PageSpec, MAX_PAGE_ROWS};
use d1vec::sql::migrate;
use d1vec::{params, Database, Error, Param, TenantSession};
use serde_json::{json, Value};

/// The tenant that walks.
const ME: &str = "t_p";
/// Another tenant, whose rows share timestamps with ours and interleave with our ids.
const OTHER: &str = "t_o";

/// A database with `mine` posts of [`ME`] and `theirs` posts of [`OTHER`] (and of a third
/// tenant with a quote in its id). Post `i` is published `(i * 7919) % 3001` minutes after
/// 2026-01-01, so three or four posts share each timestamp, and ids are not in time order.
fn setup(mine: usize, theirs: usize) -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name) VALUES ('t_p', 'P'), ('t_o', 'O'), ('t''q', 'Q')",
    )
    .unwrap();
    let insert = |tenant: &str, n: usize, suffix: &str| {
        db.prepare(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
             INSERT INTO published_posts (post_id, tenant_id, platform, external_id, published_at)
             SELECT printf('p_%05d', i) || ?3, ?1,
                    CASE i % 4 WHEN 0 THEN 'linkedin' WHEN 1 THEN 'twitter' WHEN 2 THEN 'threads' ELSE 'facebook' END,
                    printf('x%05d', i),
                    strftime('%Y-%m-%dT%H:%M:%fZ', '2026-01-01', '+' || ((i * 7919) % 3001) || ' minutes')
             FROM n",
        )
        .bind(params![tenant, n as i64, suffix])
        .run()
        .unwrap()
    };
    if mine > 0 {
        assert_eq!(insert(ME, mine, "").meta.changes, mine as u64);
    }
    if theirs > 0 {
        insert(OTHER, theirs, "_o");
        insert("t'q", theirs / 4, "_q");
    }
    db
}

/// `(published_at, post_id)` of each row of a page.
fn keys(p: &Page) -> Vec<(String, String)> {
    p.rows
        .iter()
        .map(|r| {
            (
                r["published_at"].as_str().unwrap().to_owned(),
                r["post_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The admin's answer to `sql` (one text column), as a list.
fn column(db: &Database, sql: &str, bind: Vec<Param>) -> Vec<String> {
    db.prepare(sql)
        .bind(bind)
        .raw(false)
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect()
}

/// Walks every page of `sql` and returns the ids in the order seen, checking each page's
/// size against `spec.limit`.
fn walk(session: &TenantSession, sql: &str, params: &[Param], spec: &PageSpec) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = page(session, sql, params, spec, cursor.as_deref()).unwrap();
        assert!(p.rows.len() <= spec.limit);
        ids.extend(
            p.rows
                .iter()
                .map(|r| r["post_id"].as_str().unwrap().to_owned()),
        );
        match p.next_cursor {
            Some(c) => {
                assert_eq!(p.rows.len(), spec.limit, "only a last page may be short");
                cursor = Some(c);
            }
            None => return ids,
        }
    }
}

#[test]
fn a_descending_walk_sees_every_existing_row_once_while_rows_arrive() {
    let db = setup(10_000, 2_000);
    let me = db.tenant(ME).unwrap();
    let existing: BTreeSet<String> = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1",
        params![ME],
    )
    .into_iter()
    .collect();
    assert_eq!(existing.len(), 10_000);
    let spec = PageSpec::descending("published_at", "post_id", 50);
    let sql = "SELECT * FROM published_posts";
    let add_mine = me.prepare(
        "INSERT INTO published_posts (post_id, platform, external_id, published_at) VALUES (?1, 'linkedin', ?1, ?2)",
    );
    let add_theirs = db.prepare(
        "INSERT INTO published_posts (post_id, tenant_id, platform, external_id, published_at) VALUES (?1, ?2, 'linkedin', ?1, ?3)",
    );

    let mut seen: Vec<(String, String)> = Vec::new();
    // Rows inserted during the walk: those after the position reached must be seen, those
    // before it must not.
    let mut ahead: BTreeSet<String> = BTreeSet::new();
    let mut behind: BTreeSet<String> = BTreeSet::new();
    let mut theirs: HashSet<String> = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id <> ?1",
        params![ME],
    )
    .into_iter()
    .collect();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = page(&me, sql, &[], &spec, cursor.as_deref()).unwrap();
        pages += 1;
        for row in &p.rows {
            assert_eq!(row["tenant_id"], ME, "another tenant's row: {row:?}");
        }
        seen.extend(keys(&p));
        let Some(next) = p.next_cursor else {
            break;
        };
        assert_eq!(p.rows.len(), 50);
        // Insert around the position just reached: newer, older, and with an equal
        // published_at and an id on either side of the position's.
        let (at, id) = seen.last().unwrap().clone();
        let (at_pos, id_pos) = (at.clone(), id.clone());
        let n = pages;
        let batch = [
            (
                format!("n_new{n}"),
                "2027-01-01T00:00:00.000Z".to_owned(),
                false,
            ),
            (
                format!("n_old{n}"),
                format!("2025-12-31T00:00:{:02}.000Z", n % 60),
                true,
            ),
            (format!("{id}~{n}"), at.clone(), false),
            (format!("a_{n}"), at.clone(), true),
        ];
        let stmts: Vec<_> = batch
            .iter()
            .map(|(pid, when, _)| add_mine.clone().bind([pid, when]))
            .collect();
        me.batch(&stmts).unwrap();
        for (pid, when, after) in batch {
            // The fixed labels hold until the walk itself reaches the old rows; compare
            // with the position for the truth.
            assert!(
                !after
                    || (when.as_str(), pid.as_str()) < (at_pos.as_str(), id_pos.as_str())
                    || pid.starts_with("n_old")
            );
            let after = (when.as_str(), pid.as_str()) < (at_pos.as_str(), id_pos.as_str());
            if after {
                ahead.insert(pid);
            } else {
                behind.insert(pid);
            }
        }
        // And another tenant's rows at the same places.
        for (pid, when) in [
            (format!("o_old{n}"), "2025-12-30T00:00:00.000Z".to_owned()),
            (format!("o_eq{n}"), at.clone()),
            (format!("0_eq{n}"), at),
        ] {
            add_theirs
                .clone()
                .bind([pid.as_str(), OTHER, when.as_str()])
                .run()
                .unwrap();
            theirs.insert(pid);
        }
        cursor = Some(next);
    }
    assert!(pages >= 200, "{pages} pages");

    // Strictly decreasing (published_at, post_id): no row twice, none out of order.
    for pair in seen.windows(2) {
        assert!(pair[0] > pair[1], "out of order: {pair:?}");
    }
    let ids: BTreeSet<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), seen.len(), "a row was seen twice");
    assert!(ids.iter().all(|id| !theirs.contains(id)));
    let missing: Vec<_> = existing.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "{} existing rows never seen, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        ahead.is_subset(&ids),
        "rows inserted ahead of the position were skipped: {:?}",
        ahead.difference(&ids).take(5).collect::<Vec<_>>()
    );
    assert!(
        behind.is_disjoint(&ids),
        "rows inserted behind the position were seen"
    );
    let expected: BTreeSet<String> = existing.union(&ahead).cloned().collect();
    assert_eq!(ids, expected);
}

#[test]
fn ascending_walks_with_the_smallest_and_largest_pages_follow_the_admin_order() {
    let db = setup(2_500, 500);
    let me = db.tenant(ME).unwrap();
    let oracle = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1 ORDER BY published_at, post_id",
        params![ME],
    );
    let spec = PageSpec::ascending("published_at", "post_id", MAX_PAGE_ROWS);
    assert_eq!(
        walk(&me, "SELECT * FROM published_posts", &[], &spec),
        oracle
    );

    // One row per page, over a narrower query.
    let sql =
        "SELECT post_id, published_at FROM published_posts WHERE published_at < '2026-01-01T03:00'";
    let oracle = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1 AND published_at < '2026-01-01T03:00' ORDER BY published_at, post_id",
        params![ME],
    );
    assert!(oracle.len() > 100, "{}", oracle.len());
    let spec = PageSpec::ascending("published_at", "post_id", 1);
    assert_eq!(walk(&me, sql, &[], &spec), oracle);

    // A walk may change its page size on the way: the cursor names a position only.
    let first = page(&me, sql, &[], &spec, None).unwrap();
    let bigger = PageSpec::ascending("published_at", "post_id", 40);
    let rest = page(&me, sql, &[], &bigger, first.next_cursor.as_deref()).unwrap();
    let got: Vec<String> = keys(&first)
        .into_iter()
        .chain(keys(&rest))
        .map(|(_, id)| id)
        .collect();
    assert_eq!(got, oracle[..41]);
}

#[test]
fn a_paged_query_keeps_its_own_bound_parameters() {
    let db = setup(3_000, 1_000);
    let me = db.tenant(ME).unwrap();
    let oracle = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1 AND platform = ?2 AND published_at >= ?3
         ORDER BY published_at DESC, post_id DESC",
        params![ME, "threads", "2026-01-02"],
    );
    assert!(oracle.len() > 200, "{}", oracle.len());
    let spec = PageSpec::descending("published_at", "post_id", 37);
    let bound = params!["threads", "2026-01-02"];
    for sql in [
        "SELECT post_id, published_at, platform FROM published_posts WHERE platform = ?1 AND published_at >= ?2",
        "SELECT post_id, published_at, platform FROM published_posts WHERE platform = ? AND published_at >= ?",
        "SELECT post_id, published_at, platform FROM published_posts WHERE platform = :platform AND published_at >= :since",
    ] {
        assert_eq!(walk(&me, sql, &bound, &spec), oracle, "{sql}");
    }
    // Too few values for the query's own parameters is an error, not a silent NULL.
    let err = page(
        &me,
        "SELECT * FROM published_posts WHERE platform = ?1",
        &[],
        &spec,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

fn first_cursor(session: &TenantSession, sql: &str, spec: &PageSpec) -> String {
    page(session, sql, &[], spec, None)
        .unwrap()
        .next_cursor
        .unwrap()
}

fn assert_invalid_cursor(result: d1vec::Result<Page>, why: &str) {
    match result {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("{why}: expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn a_cursor_only_works_for_the_query_and_order_it_came_from() {
    let db = setup(300, 100);
    let me = db.tenant(ME).unwrap();
    let sql = "SELECT * FROM published_posts";
    let spec = PageSpec::descending("published_at", "post_id", 10);
    let cursor = first_cursor(&me, sql, &spec);
    assert!(page(&me, sql, &[], &spec, Some(&cursor)).is_ok());

    let other_sql = "SELECT * FROM published_posts WHERE platform = 'linkedin'";
    assert_invalid_cursor(
        page(&me, other_sql, &[], &spec, Some(&cursor)),
        "another query",
    );
    assert_invalid_cursor(
        page(
            &me,
            sql,
            &[],
            &PageSpec::ascending("published_at", "post_id", 10),
            Some(&cursor),
        ),
        "the other direction",
    );
    assert_invalid_cursor(
        page(
            &me,
            sql,
            &[],
            &PageSpec::descending("created_at", "post_id", 10),
            Some(&cursor),
        ),
        "another sort column",
    );
    assert_invalid_cursor(
        page(
            &me,
            sql,
            &[],
            &PageSpec::descending("published_at", "external_id", 10),
            Some(&cursor),
        ),
        "another id column",
    );
}

#[test]
fn tampered_cursors_are_refused_and_forged_positions_stay_in_scope() {
    let db = setup(300, 300);
    let me = db.tenant(ME).unwrap();
    let sql = "SELECT * FROM published_posts";
    let spec = PageSpec::descending("published_at", "post_id", 10);
    let cursor = first_cursor(&me, sql, &spec);
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());

    let tampered = [
        ("empty", String::new()),
        ("not base64", "!!not*base64!!".to_owned()),
        ("truncated", cursor[..cursor.len() - 3].to_owned()),
        ("extended", format!("{cursor}AAAA")),
        ("not JSON", URL_SAFE_NO_PAD.encode("hello")),
        // The unsigned format of earlier versions: [key, id, fingerprint].
        (
            "unsigned",
            enc(json!([
                "2026-01-01T00:00:00.000Z",
                "p_00001",
                "0123456789abcdef"
            ])),
        ),
        ("standard base64 padding", format!("{cursor}==")),
    ];
    for (why, bad) in tampered {
        assert_invalid_cursor(page(&me, sql, &[], &spec, Some(&bad)), why);
    }

    // A cursor carries a position, not a permission: even one signed with the database's
    // own key (which only the admin can read) for a position on another tenant's row still
    // yields only this tenant's rows after that position, exactly as the admin orders them.
    let (at, id): (String, String) = {
        let row = db
            .prepare("SELECT published_at, post_id FROM published_posts WHERE tenant_id = ?1 ORDER BY published_at DESC, post_id DESC LIMIT 1 OFFSET 77")
            .bind([OTHER])
            .raw(false)
            .unwrap()
            .remove(0);
        (
            row[0].as_str().unwrap().to_owned(),
            row[1].as_str().unwrap().to_owned(),
        )
    };
    let forged = crate::cursors_signed::resign(&db, &cursor, |e| {
        e.body = json!([at, id]).to_string().into_bytes();
    });
    let got = page(&me, sql, &[], &spec, Some(&forged)).unwrap();
    let oracle = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1 AND (published_at, post_id) < (?2, ?3)
         ORDER BY published_at DESC, post_id DESC LIMIT 10",
        params![ME, at.as_str(), id.as_str()],
    );
    let ids: Vec<String> = keys(&got).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, oracle);
    assert!(got.rows.iter().all(|r| r["tenant_id"] == ME));
}

#[test]
fn page_sizes_outside_one_to_a_thousand_are_refused() {
    let db = setup(20, 0);
    let me = db.tenant(ME).unwrap();
    let sql = "SELECT * FROM published_posts";
    for limit in [0, MAX_PAGE_ROWS + 1, usize::MAX] {
        let spec = PageSpec::descending("published_at", "post_id", limit);
        match page(&me, sql, &[], &spec, None) {
            Err(Error::LimitExceeded {
                limit: max, got, ..
            }) => {
                assert_eq!((max, got), (MAX_PAGE_ROWS, limit));
            }
            other => panic!("limit {limit}: expected LimitExceeded, got {other:?}"),
        }
    }
    assert_eq!(MAX_PAGE_ROWS, 1000);
    let spec = PageSpec::descending("published_at", "post_id", MAX_PAGE_ROWS);
    let all = page(&me, sql, &[], &spec, None).unwrap();
    assert_eq!(all.rows.len(), 20);
    assert!(all.next_cursor.is_none());
}

#[test]
fn a_paged_query_cannot_reach_outside_the_tenant() {
    let db = setup(50, 50);
    let me = db.tenant(ME).unwrap();
    let before = db
        .prepare("SELECT * FROM published_posts ORDER BY rowid")
        .raw(false)
        .unwrap();
    let spec = PageSpec::descending("published_at", "post_id", 10);
    for sql in [
        "SELECT * FROM main.published_posts",
        "SELECT * FROM published_posts UNION ALL SELECT * FROM main.published_posts",
        "SELECT * FROM published_posts) UNION ALL SELECT * FROM (SELECT * FROM main.published_posts",
        "WITH x AS (SELECT * FROM main.published_posts) SELECT * FROM x",
        "SELECT * FROM published_posts WHERE post_id IN (SELECT post_id FROM main.published_posts)",
        "SELECT * FROM sqlite_schema",
    ] {
        match page(&me, sql, &[], &spec, None) {
            Err(Error::TenantViolation { tenant, .. }) => assert_eq!(tenant, ME, "{sql}"),
            other => panic!("{sql}: expected TenantViolation, got {other:?}"),
        }
    }
    // Names in the spec are quoted identifiers, not SQL: they cannot widen the query.
    for (key, id) in [
        ("published_at\" FROM main.published_posts --", "post_id"),
        (
            "published_at",
            "post_id\", (SELECT count(*) FROM main.published_posts) AS \"n",
        ),
        ("tenant_id) OR 1=1 --", "post_id"),
    ] {
        let spec = PageSpec::descending(key, id, 10);
        let got = page(&me, "SELECT * FROM published_posts", &[], &spec, None);
        assert!(got.is_err(), "{key} / {id}: {got:?}");
    }
    // A second statement is not smuggled in behind the query.
    let got = page(
        &me,
        "SELECT * FROM published_posts; DELETE FROM published_posts",
        &[],
        &spec,
        None,
    );
    assert!(got.is_err(), "{got:?}");
    let after = db
        .prepare("SELECT * FROM published_posts ORDER BY rowid")
        .raw(false)
        .unwrap();
    assert_eq!(before, after);

    // Every row the session pages through is its own, and all of them are there.
    let ids = walk(&me, "SELECT * FROM published_posts", &[], &spec);
    let oracle = column(
        &db,
        "SELECT post_id FROM published_posts WHERE tenant_id = ?1 ORDER BY published_at DESC, post_id DESC",
        params![ME],
    );
    assert_eq!(ids, oracle);
}

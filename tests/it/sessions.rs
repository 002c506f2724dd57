//! D1's Sessions API on one node: a bookmark names a commit, and a session started from a
//! bookmark never reads older state. The oracle is the write log the test keeps itself:
//! every row a writer committed before taking a bookmark must be visible to any session
//! started from that bookmark, on any connection.

use std::sync::mpsc;

use d1vec::sql::{migrate, SessionConstraint};
use d1vec::{Database, Error};
use proptest::prelude::*;

fn open(path: &std::path::Path) -> Database {
    Database::open(path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Writers on their own connections interleave (threads, in an order proptest varies by
    /// the work each does); after each write the writer hands its bookmark to a reader on
    /// yet another connection, whose session from that bookmark must see the write and
    /// every earlier write of that writer.
    #[test]
    fn a_bookmark_taken_after_a_write_always_sees_it(
        plan in proptest::collection::vec(proptest::collection::vec(0u8..4, 1..6), 2..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        open(&path).exec("CREATE TABLE log (writer INTEGER, n INTEGER, pad TEXT)").unwrap();
        let (tx, rx) = mpsc::channel::<(usize, usize, String)>();
        let mut handles = Vec::new();
        for (w, writes) in plan.iter().cloned().enumerate() {
            let tx = tx.clone();
            let path = path.clone();
            handles.push(std::thread::spawn(move || {
                let db = open(&path);
                for (n, extra) in writes.into_iter().enumerate() {
                    let s = db.with_session(SessionConstraint::FirstPrimary).unwrap();
                    // Extra reads between writes vary the interleaving.
                    for _ in 0..extra {
                        s.prepare("SELECT count(*) FROM log").all().unwrap();
                    }
                    s.prepare("INSERT INTO log (writer, n, pad) VALUES (?1, ?2, 'x')")
                        .bind([w as i64, n as i64])
                        .run()
                        .unwrap();
                    tx.send((w, n, s.get_bookmark().unwrap())).unwrap();
                }
            }));
        }
        drop(tx);
        let reader = open(&path);
        let mut seen_bookmarks = Vec::new();
        for (w, n, bookmark) in rx {
            let s = reader.with_session(SessionConstraint::Bookmark(bookmark.clone())).unwrap();
            let rows = s
                .prepare("SELECT count(*) AS c FROM log WHERE writer = ?1 AND n <= ?2")
                .bind([w as i64, n as i64])
                .first_column("c")
                .unwrap();
            prop_assert_eq!(rows, Some(serde_json::json!(n + 1)), "writer {} write {} bookmark {}", w, n, &bookmark);
            // The session's bookmark never moves backwards.
            let after = s.get_bookmark().unwrap();
            prop_assert!(after >= bookmark, "{} < {}", after, bookmark);
            seen_bookmarks.push(bookmark);
        }
        for h in handles {
            h.join().unwrap();
        }
        // Each write is its own commit: all bookmarks differ.
        let total: usize = plan.iter().map(Vec::len).sum();
        seen_bookmarks.sort();
        seen_bookmarks.dedup();
        prop_assert_eq!(seen_bookmarks.len(), total);
    }
}

#[test]
fn bookmarks_sort_in_commit_order_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let mut marks = Vec::new();
    {
        let db = open(&path);
        db.exec("CREATE TABLE t (x)").unwrap();
        let s = db.with_session("first-primary").unwrap();
        assert_eq!(s.get_bookmark(), None, "no call ran yet");
        for i in 0..5 {
            s.prepare("INSERT INTO t VALUES (?1)")
                .bind([i])
                .run()
                .unwrap();
            marks.push(s.get_bookmark().unwrap());
        }
        // A read names the commit it read: the same as the last write's.
        s.prepare("SELECT * FROM t").all().unwrap();
        assert_eq!(s.get_bookmark().as_ref(), marks.last());
    }
    let mut sorted = marks.clone();
    sorted.sort();
    assert_eq!(sorted, marks, "lexicographic order is commit order");
    let db = open(&path);
    let s = db
        .with_session(SessionConstraint::Bookmark(marks[2].clone()))
        .unwrap();
    assert_eq!(s.get_bookmark().as_ref(), Some(&marks[2]));
    let n = s
        .prepare("SELECT count(*) AS n FROM t")
        .first_column("n")
        .unwrap();
    assert_eq!(n, Some(serde_json::json!(5)));
    assert_eq!(
        s.get_bookmark().as_ref(),
        marks.last(),
        "moved to the commit it read"
    );
}

#[track_caller]
fn refused(db: &Database, bookmark: &str) {
    match db.with_session(SessionConstraint::Bookmark(bookmark.to_owned())) {
        Err(Error::Bookmark { .. }) => {}
        other => panic!("{bookmark}: {other:?}"),
    }
}

#[test]
fn bad_bookmarks_are_refused_with_a_typed_error() {
    let db = Database::open_in_memory().unwrap();
    db.exec("CREATE TABLE t (x)").unwrap();
    let s = db.with_session("first-unconstrained").unwrap();
    s.prepare("INSERT INTO t VALUES (1)").run().unwrap();
    let good = s.get_bookmark().unwrap();
    let (seq, tag) = good.split_once('-').unwrap();
    for bad in [
        "",
        "first-secondary",
        "zzzz",
        &good[1..],
        &format!("{seq}-{}", &tag[..15]),
        &format!("{}-{tag}", seq.to_uppercase().replace('0', "O")),
        &format!("{good}-x"),
    ] {
        refused(&db, bad);
    }
    // Newer than any commit of this database.
    let next = u64::from_str_radix(seq, 16).unwrap() + 1;
    refused(&db, &format!("{next:016x}-{tag}"));
    // Issued by another database.
    let other = Database::open_in_memory().unwrap();
    refused(&other, &good);
    // The good one still works.
    assert!(db.with_session(SessionConstraint::Bookmark(good)).is_ok());
}

#[test]
fn tenant_bookmarks_count_the_tenants_own_commits_only() {
    let db = Database::open_in_memory().unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us')")
        .unwrap();
    let a = db.tenant("t_a").unwrap();
    let b = db.tenant("t_b").unwrap();
    let sa = a.with_session("first-primary").unwrap();
    sa.prepare("INSERT INTO campaigns (campaign_id, name) VALUES ('c1', 'one')")
        .run()
        .unwrap();
    let mark_a = sa.get_bookmark().unwrap();
    // Other tenants' and the admin's writes do not move tenant A's counter.
    let sb = b.with_session("first-primary").unwrap();
    for i in 0..3 {
        sb.prepare("INSERT INTO campaigns (campaign_id, name) VALUES (?1, 'b')")
            .bind([format!("b{i}")])
            .run()
            .unwrap();
    }
    db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('t_c','C','pro','us')")
        .unwrap();
    let sa2 = a
        .with_session(SessionConstraint::Bookmark(mark_a.clone()))
        .unwrap();
    sa2.prepare("SELECT count(*) FROM campaigns").all().unwrap();
    assert_eq!(
        sa2.get_bookmark(),
        Some(mark_a.clone()),
        "nothing of A's was committed since"
    );
    // A bookmark belongs to its scope.
    match b.with_session(SessionConstraint::Bookmark(mark_a.clone())) {
        Err(Error::Bookmark { .. }) => {}
        other => panic!("{other:?}"),
    }
    refused(&db, &mark_a);
    let admin_mark = {
        let s = db.with_session("first-primary").unwrap();
        s.prepare("SELECT 1").all().unwrap();
        s.get_bookmark().unwrap()
    };
    assert!(matches!(
        a.with_session(SessionConstraint::Bookmark(admin_mark)),
        Err(Error::Bookmark { .. })
    ));
}

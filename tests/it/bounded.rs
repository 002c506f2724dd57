//! Bounded work: runaway SQL ends in a typed error within its limit, changes nothing, and
//! never stalls another tenant (whose latency is measured while it runs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d1vec::sql::{migrate, D1Limits};
use d1vec::{Database, Error};

const TIMEOUT: Duration = Duration::from_millis(400);

fn open(path: &std::path::Path, limits: D1Limits) -> Database {
    let db = Database::builder().limits(limits).open(path).unwrap();
    db.apply_migrations(&migrate::bundled()).unwrap();
    db.exec(
        "INSERT OR IGNORE INTO tenants (tenant_id, name, plan, region) VALUES ('t_a','A','pro','eu'),('t_b','B','pro','us');
         INSERT OR IGNORE INTO campaigns (campaign_id, tenant_id, name) VALUES ('c_a1','t_a','A one'),('c_b1','t_b','B one');",
    )
    .unwrap();
    db
}

fn limits() -> D1Limits {
    D1Limits {
        statement_timeout: TIMEOUT,
        ..D1Limits::default()
    }
}

/// A loop of another tenant's reads and writes on its own thread; returns the slowest
/// call and any failure when stopped.
struct Neighbour {
    stop: Arc<AtomicBool>,
    worst: Arc<Mutex<(Duration, Vec<String>, usize)>>,
    handle: std::thread::JoinHandle<()>,
}

impl Neighbour {
    fn start(path: &std::path::Path) -> Neighbour {
        let stop = Arc::new(AtomicBool::new(false));
        let worst = Arc::new(Mutex::new((Duration::ZERO, Vec::new(), 0)));
        let (s, w, path) = (Arc::clone(&stop), Arc::clone(&worst), path.to_owned());
        let handle = std::thread::spawn(move || {
            let db = Database::builder().limits(limits()).open(&path).unwrap();
            let b = db.tenant("t_b").unwrap();
            let mut n = 0u64;
            while !s.load(Ordering::SeqCst) {
                let started = Instant::now();
                let read = b.prepare("SELECT count(*) AS n FROM campaigns").first();
                let write = b
                    .prepare("INSERT INTO campaigns (campaign_id, name) VALUES (?1, 'neighbour')")
                    .bind([format!("nb_{n}")])
                    .run();
                let took = started.elapsed();
                let mut w = w.lock().unwrap();
                w.0 = w.0.max(took);
                w.2 += 1;
                if let Err(e) = read {
                    w.1.push(format!("read: {e}"));
                }
                if let Err(e) = write {
                    w.1.push(format!("write: {e}"));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Neighbour {
            stop,
            worst,
            handle,
        }
    }

    fn finish(self) -> (Duration, Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap();
        let w = self.worst.lock().unwrap();
        (w.0, w.1.clone(), w.2)
    }
}

/// Whether an error is the one a runaway statement must end in.
type Expected = fn(&Error) -> bool;

fn campaigns(db: &Database) -> Vec<Vec<serde_json::Value>> {
    db.prepare("SELECT campaign_id, tenant_id, name FROM campaigns WHERE tenant_id = 't_a' ORDER BY campaign_id")
        .raw(false)
        .unwrap()
}

#[test]
fn runaway_sql_ends_in_a_typed_error_while_another_tenant_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let db = open(&path, limits());
    let before = campaigns(&db);
    let a = db.tenant("t_a").unwrap();
    let neighbour = Neighbour::start(&path);
    std::thread::sleep(Duration::from_millis(50));
    let runaways: &[(&str, Expected)] = &[
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT max(n) FROM r",
            |e| matches!(e, Error::LimitExceeded { what, .. } if what.contains("run time")),
        ),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 100000)
             SELECT count(*) FROM r AS x, r AS y, r AS z",
            |e| matches!(e, Error::LimitExceeded { what, .. } if what.contains("run time")),
        ),
        (
            "SELECT count(*) FROM campaigns AS a, campaigns AS b, (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT n FROM r)",
            |e| matches!(e, Error::LimitExceeded { what, .. } if what.contains("run time")),
        ),
        ("SELECT zeroblob(100000000)", |e| {
            matches!(e, Error::ValueTooLarge { limit: 2_000_000 })
        }),
        ("SELECT randomblob(1000000000)", |e| {
            matches!(e, Error::ValueTooLarge { .. })
        }),
        ("SELECT printf('%.*c', 1000000000, 'x')", |e| {
            matches!(e, Error::ValueTooLarge { .. })
        }),
        ("SELECT length(printf('%0999999999d', 1))", |e| {
            matches!(e, Error::ValueTooLarge { .. })
        }),
        (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 40) SELECT zeroblob(1900000) AS b FROM r",
            |e| matches!(e, Error::LimitExceeded { what, limit: 50_000_000, .. } if what.contains("result size")),
        ),
        (
            "INSERT INTO campaigns (campaign_id, name) WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT 'run_' || n, 'runaway' FROM r",
            |e| matches!(e, Error::LimitExceeded { what, .. } if what.contains("run time")),
        ),
    ];
    for (sql, expected) in runaways {
        let started = Instant::now();
        let got = a.prepare(sql).all();
        let took = started.elapsed();
        match &got {
            Err(e) => assert!(expected(e), "{sql}: unexpected error {e:?}"),
            Ok(r) => panic!("{sql}: answered {} rows", r.results.len()),
        }
        assert!(
            took < TIMEOUT + Duration::from_millis(1500),
            "{sql}: took {took:?} against a {TIMEOUT:?} limit"
        );
        assert_eq!(campaigns(&db), before, "{sql} changed data");
        // The session is usable afterwards.
        assert_eq!(
            a.prepare("SELECT count(*) AS n FROM campaigns")
                .first()
                .unwrap()
                .unwrap()["n"],
            1
        );
    }
    let (worst, failures, calls) = neighbour.finish();
    assert!(failures.is_empty(), "the other tenant failed: {failures:?}");
    assert!(calls > 10, "the other tenant ran only {calls} calls");
    // Reads never wait; a write waits at most for the runaway writer's time limit.
    assert!(
        worst < TIMEOUT + Duration::from_millis(1000),
        "the other tenant's slowest call took {worst:?}"
    );
    eprintln!("other tenant: {calls} calls, slowest {worst:?}");
}

#[test]
fn a_runaway_read_never_blocks_writers_or_readers() {
    // The review's lock-out: a runaway reader used to hold BEGIN IMMEDIATE, so every other
    // call failed with "database is locked" after 5 s. Reads now run in deferred
    // transactions: the other tenant's SELECT 1 and writes answer at once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let long = D1Limits {
        statement_timeout: Duration::from_secs(3),
        ..D1Limits::default()
    };
    let db = open(&path, long.clone());
    let runner = {
        let path = path.clone();
        std::thread::spawn(move || {
            let db = Database::builder().limits(long).open(&path).unwrap();
            let a = db.tenant("t_a").unwrap();
            a.prepare("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT max(n) FROM r")
                .all()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let b = db.tenant("t_b").unwrap();
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        b.prepare("SELECT 1 AS one").first().unwrap();
        b.prepare("INSERT INTO campaigns (campaign_id, name) VALUES (?1, 'b')")
            .bind([format!("c_b_new{i}")])
            .run()
            .unwrap();
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "another tenant waited {slowest:?} behind a runaway reader"
    );
    let got = runner.join().unwrap();
    assert!(matches!(got, Err(Error::LimitExceeded { .. })), "{got:?}");
}

#[test]
fn the_step_limit_is_a_machine_independent_bound() {
    let db = Database::builder()
        .limits(D1Limits {
            max_statement_steps: Some(1_000_000),
            statement_timeout: Duration::from_secs(60),
            ..D1Limits::default()
        })
        .open_in_memory()
        .unwrap();
    let err = db
        .prepare(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT max(n) FROM r",
        )
        .all()
        .unwrap_err();
    match err {
        Error::LimitExceeded { what, limit, got } => {
            assert!(what.contains("VM steps"), "{what}");
            assert_eq!(limit, 1_000_000);
            assert!(got > limit, "{got}");
        }
        other => panic!("{other:?}"),
    }
    // Small statements stay well inside the bound, and the connection is usable.
    let r = db
        .prepare("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 1000) SELECT sum(n) AS s FROM r")
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(r["s"], 500_500);
}

#[test]
fn values_at_the_limit_pass_and_one_byte_more_fails() {
    let db = Database::open_in_memory().unwrap();
    let r = db
        .prepare("SELECT length(zeroblob(2000000)) AS n")
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(r["n"], 2_000_000);
    assert!(matches!(
        db.prepare("SELECT length(zeroblob(2000001)) AS n").first(),
        Err(Error::ValueTooLarge { limit: 2_000_000 })
    ));
    // A BLOB comes back in D1's shape: an array of byte values.
    let r = db
        .prepare("SELECT X'00ff10' AS b")
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(r["b"], serde_json::json!([0, 255, 16]));
}

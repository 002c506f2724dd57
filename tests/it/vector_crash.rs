//! Crash safety of the vector engine under SIGKILL, with SQLite as the source of truth.
//!
//! [`sigkill_during_ingest_loses_nothing_acknowledged`] re-runs this test binary as a child
//! ([`child_ingest`], selected with `--exact` and enabled by the `D1VEC_CRASH_CHILD`
//! environment variable) that ingests numbered batches into one file database and prints
//! `D1VEC-CRASH-ACK <op> <batch>` after each call returns. Batch `b` holds ids `b<b>-<i>`
//! whose values, namespace and metadata are a pure function of `(b, i, version)`; some
//! batches are upserts that also rewrite half of the previous batch (version 2), some are
//! followed by a delete of their tail, an explicit `seal()` or a `compact()`, and
//! `seal_at` is small so that most writes also write a segment file (each child loads the
//! index's state first, which writes then keep current and seal). Each child first
//! inserts its own marker vector `m<round>`, so that a batch retried after a kill gets
//! other internal ids than the killed attempt. The parent kills the child with SIGKILL 40
//! times: after a random number of acks plus a random delay, or the moment a segment
//! `.tmp` file appears, or the moment a new `.seg` file appears (a write seals right after
//! its commit, before it returns). Each new child continues on the same files
//! (half the time the raw post-kill files, half the time after the parent's own reopen).
//!
//! Oracle, after every kill, on a fresh [`Database`]: every acknowledged call is durable;
//! every batch is all-or-nothing (its ids, the rewrite of the previous batch, and a tail
//! delete each apply fully or not at all, and batches apply in order); every stored
//! vector's values/namespace/metadata equal the deterministic ones; exact-mode queries
//! (namespace candidate sets under `exact_max_candidates`) equal a brute-force f64 cosine
//! scoring of what SQLite holds (ids in order, scores within 1e-4); graph-mode queries
//! only return stored ids with their true scores; and every recently written vector (plus
//! a sample of the rest), queried by its own values, comes back first with score 1.
//!
//! [`rolled_back_seal_leaves_no_stale_vectors`] is the deterministic form of SQLite going
//! back behind a segment file (a write seals only after its commit, so this takes SQLite
//! restored from an older copy, or a crash of an older d1vec that sealed before
//! committing). It is simulated by restoring the SQLite files from before a write while
//! keeping the segment folder, then writing different vectors.
//! Oracle: the same brute-force scoring of SQLite's rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::{CreateIndex, EngineOptions, VectorIndex};
use d1vec::Database;

use crate::oracle::brute;
use serde_json::{json, Map, Value};

/// Set (to the database path) only in the child process.
const CHILD_ENV: &str = "D1VEC_CRASH_CHILD";
/// The first batch the child writes.
const START_ENV: &str = "D1VEC_CRASH_START";
/// The child's number, which names its marker vector.
const ROUND_ENV: &str = "D1VEC_CRASH_ROUND";
/// Overrides the parent's random seed (printed at the start of every run).
const SEED_ENV: &str = "D1VEC_CRASH_SEED";
/// Prefix of the child's ack lines, so that libtest's own output is never parsed.
const ACK: &str = "D1VEC-CRASH-ACK";

const INDEX: &str = "crash";
const DIMS: usize = 32;
const BATCH: usize = 100;
/// Smaller than two batches: most writes also seal a segment file.
const SEAL_AT: usize = 150;
/// How many ids of the previous batch a replacing upsert rewrites (the first ones).
const REPLACED: usize = BATCH / 2;
/// How many ids at the end of a batch a tail delete removes.
const DELETED: usize = 10;
/// How many times the parent kills a child.
const KILLS: usize = 40;
const TOL: f64 = 1e-4;

/// Batch `b` is written with `upsert` and also rewrites the first [`REPLACED`] ids of `b - 1`.
fn is_replacing(b: u64) -> bool {
    b % 4 == 3
}

/// Batch `b` is followed by a delete of its last [`DELETED`] ids.
fn deletes_tail(b: u64) -> bool {
    b % 7 == 6
}

/// Batch `b` is followed by an explicit `seal()`.
fn seals_after(b: u64) -> bool {
    b % 5 == 2
}

/// Batch `b` is followed by `compact()`.
fn compacts_after(b: u64) -> bool {
    b % 11 == 10
}

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [-1, 1), exactly representable as f32.
    fn signed(&mut self) -> f64 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        f64::from(unit * 2.0 - 1.0)
    }
}

fn options() -> EngineOptions {
    EngineOptions {
        exact_max_candidates: 1 << 30,
        seal_at: SEAL_AT,
        ..EngineOptions::default()
    }
}

fn id_of(b: u64, i: usize) -> String {
    format!("b{b}-{i}")
}

fn namespace_of(b: u64) -> &'static str {
    if b % 2 == 0 {
        "even"
    } else {
        "odd"
    }
}

/// The deterministic values of id `(b, i)` at `version` (f32-exact).
fn values_of(b: u64, i: usize, version: u64) -> Vec<f64> {
    let mut rng = Rng((b << 32) ^ ((i as u64) << 8) ^ version ^ 0xC0FF_EE00_0000_0000);
    (0..DIMS).map(|_| rng.signed()).collect()
}

fn metadata_of(b: u64, i: usize, version: u64) -> Map<String, Value> {
    json!({"b": b, "i": i, "version": version})
        .as_object()
        .unwrap()
        .clone()
}

fn vector_of(b: u64, i: usize, version: u64) -> Vector {
    Vector::new(id_of(b, i), values_of(b, i, version))
        .with_namespace(namespace_of(b))
        .with_metadata(metadata_of(b, i, version))
}

/// The vector each child inserts first: `m<round>`. It shifts the internal ids of everything
/// the child writes after, so that a batch retried after a kill does not get the same ids
/// with the same values as the attempt that was killed (which would hide a stale segment).
fn marker_of(round: u64) -> Vector {
    let mut rng = Rng(round ^ 0x4D41_524B_0000_0000);
    Vector::new(
        format!("m{round}"),
        (0..DIMS).map(|_| rng.signed()).collect(),
    )
    .with_namespace(namespace_of(round))
    .with_metadata(json!({"marker": round}).as_object().unwrap().clone())
}

/// What batch `b`'s write call sends.
fn batch_vectors(b: u64) -> Vec<Vector> {
    let mut vs: Vec<Vector> = (0..BATCH).map(|i| vector_of(b, i, 1)).collect();
    if is_replacing(b) {
        vs.extend((0..REPLACED).map(|i| vector_of(b - 1, i, 2)));
    }
    vs
}

fn tail_ids(b: u64) -> Vec<String> {
    (BATCH - DELETED..BATCH).map(|i| id_of(b, i)).collect()
}

fn parse_id(id: &str) -> Option<(u64, usize)> {
    let (b, i) = id.strip_prefix('b')?.split_once('-')?;
    Some((b.parse().ok()?, i.parse().ok()?))
}

/// The child: ingests from batch `$D1VEC_CRASH_START` on until killed. Does nothing unless
/// `$D1VEC_CRASH_CHILD` names the database (so a plain `--include-ignored` run passes).
#[test]
#[ignore = "the child process of sigkill_during_ingest_loses_nothing_acknowledged"]
fn child_ingest() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let db = Database::open(&path).unwrap();
    db.set_vector_options(options());
    let ix = db.vectorize(INDEX).unwrap();
    ix.warm().unwrap();
    let mut out = std::io::stdout().lock();
    let mut ack = |op: &str, b: u64| {
        writeln!(out, "{ACK} {op} {b}").unwrap();
        out.flush().unwrap();
    };
    ix.insert(&[marker_of(round)]).unwrap();
    ack("marker", round);
    // Bounded only so that a child the parent failed to kill does not run forever.
    for b in start..start + 1000 {
        let vs = batch_vectors(b);
        if is_replacing(b) {
            ix.upsert(&vs).unwrap();
        } else {
            ix.insert(&vs).unwrap();
        }
        ack("write", b);
        if deletes_tail(b) {
            ix.delete_by_ids(&tail_ids(b)).unwrap();
            ack("delete", b);
        }
        if seals_after(b) {
            ix.seal().unwrap();
            ack("seal", b);
        }
        if compacts_after(b) {
            ix.compact().unwrap();
            ack("compact", b);
        }
    }
}

/// Every acknowledged call so far, over all children.
#[derive(Debug, Default)]
struct Acks {
    writes: BTreeSet<u64>,
    deletes: BTreeSet<u64>,
    markers: BTreeSet<u64>,
    other: usize,
}

impl Acks {
    fn record(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix(ACK) else {
            return false;
        };
        let mut parts = rest.split_whitespace();
        let (Some(op), Some(b)) = (parts.next(), parts.next().and_then(|b| b.parse().ok())) else {
            panic!("malformed ack line {line:?}");
        };
        match op {
            "write" => self.writes.insert(b),
            "delete" => self.deletes.insert(b),
            "marker" => self.markers.insert(b),
            "seal" | "compact" => {
                self.other += 1;
                true
            }
            _ => panic!("unknown ack {line:?}"),
        };
        true
    }
}

fn spawn_child(db: &Path, start: u64, round: usize, stderr: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "vector_crash::child_ingest",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db)
        .env(START_ENV, start.to_string())
        .env(ROUND_ENV, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// Every id listed by `list_vectors`, page by page.
fn list_all(ix: &VectorIndex) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ix.list_vectors(Some(1000), cursor.as_deref()).unwrap();
        ids.extend(page.vectors.into_iter().map(|v| v.id));
        match page.next_cursor {
            Some(c) if page.is_truncated => cursor = Some(c),
            _ => break,
        }
    }
    ids
}

/// The stored vectors with these ids (20 per `get_by_ids` call).
fn get_all(ix: &VectorIndex, ids: &[String]) -> Vec<Vector> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(20) {
        out.extend(ix.get_by_ids(chunk).unwrap());
    }
    out
}

/// An exact-mode answer must be the brute-force top `k`: each returned id stored with that
/// score, and the score at each position the brute-force one (ties may swap ids).
#[track_caller]
fn check_exact(got: &[(String, f64)], want: &[(String, f64)], k: usize, what: &str) {
    assert_eq!(
        got.len(),
        k.min(want.len()),
        "{what}: {} matches, want {}",
        got.len(),
        k.min(want.len())
    );
    check_sound(got, want, what);
    for (pos, ((id, score), (want_id, want_score))) in got.iter().zip(want).enumerate() {
        assert!(
            (score - want_score).abs() < TOL,
            "{what}: position {pos} is {id} with score {score}, brute force has {want_id} with {want_score}"
        );
    }
}

/// Any answer: distinct ids, each stored, each with its true score.
#[track_caller]
fn check_sound(got: &[(String, f64)], truth: &[(String, f64)], what: &str) {
    let score_of: HashMap<&str, f64> = truth.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let mut seen = BTreeSet::new();
    for (id, score) in got {
        assert!(seen.insert(id), "{what}: {id} returned twice");
        let Some(&true_score) = score_of.get(id.as_str()) else {
            panic!("{what}: returned {id}, which SQLite does not hold in that scope");
        };
        assert!(
            (score - true_score).abs() < TOL,
            "{what}: {id} scored {score}, but SQLite's values give {true_score} (stale or corrupt vector served)"
        );
    }
}

fn run_query(ix: &VectorIndex, q: &[f64], opts: &QueryOptions) -> Vec<(String, f64)> {
    ix.query(q, opts)
        .unwrap()
        .matches
        .into_iter()
        .map(|m| (m.id, m.score))
        .collect()
}

/// Queries `ix` and compares with brute force over `stored`: exactly per namespace, and
/// soundly over the whole index (graph search).
fn check_queries(ix: &VectorIndex, stored: &[Vector], seed: u64, what: &str) {
    let mut rng = Rng(seed);
    for qn in 0..6 {
        let q: Vec<f64> = (0..DIMS).map(|_| rng.signed()).collect();
        for ns in ["even", "odd"] {
            let scope: Vec<&Vector> = stored
                .iter()
                .filter(|v| v.namespace.as_deref() == Some(ns))
                .collect();
            let got = run_query(
                ix,
                &q,
                &QueryOptions::new().with_top_k(20).with_namespace(ns),
            );
            check_exact(
                &got,
                &brute(&scope, &q),
                20,
                &format!("{what}: query {qn} in {ns}"),
            );
        }
        let everything: Vec<&Vector> = stored.iter().collect();
        let got = run_query(ix, &q, &QueryOptions::new().with_top_k(20));
        check_sound(
            &got,
            &brute(&everything, &q),
            &format!("{what}: graph query {qn}"),
        );
        assert_eq!(
            got.len(),
            20.min(stored.len()),
            "{what}: graph query {qn} returned too few"
        );
    }
}

/// Checks the database at `path` against the acks after the kill of child `round`, which
/// started at batch `started`; returns the next batch to write.
fn verify(path: &Path, acks: &Acks, round: usize, started: u64) -> u64 {
    let what = format!("after kill {round}");
    let db = Database::open(path).unwrap();
    db.set_vector_options(options());
    let ix = db.vectorize(INDEX).unwrap();
    let ids = list_all(&ix);
    let mut present: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    let mut markers = BTreeSet::new();
    for id in &ids {
        if let Some(r) = id.strip_prefix('m').and_then(|r| r.parse::<u64>().ok()) {
            assert!(r <= round as u64, "{what}: marker {id} of a later child");
            markers.insert(r);
            continue;
        }
        let (b, i) = parse_id(id).unwrap_or_else(|| panic!("{what}: unexpected id {id:?}"));
        assert!(i < BATCH, "{what}: unexpected id {id:?}");
        assert!(
            present.entry(b).or_default().insert(i),
            "{what}: {id} listed twice"
        );
    }
    let next = present.keys().next_back().map_or(0, |&b| b + 1);
    let full: BTreeSet<usize> = (0..BATCH).collect();
    let without_tail: BTreeSet<usize> = (0..BATCH - DELETED).collect();
    for b in 0..next {
        let got = present.get(&b).cloned().unwrap_or_default();
        assert!(
            !got.is_empty(),
            "{what}: batch {b} is missing but batch {} is present (batches apply in order)",
            next - 1
        );
        if acks.deletes.contains(&b) {
            assert_eq!(
                got, without_tail,
                "{what}: batch {b} after its acked delete"
            );
        } else if deletes_tail(b) {
            assert!(
                got == full || got == without_tail,
                "{what}: batch {b} is half-present or half-deleted: {} of {BATCH} ids",
                got.len()
            );
        } else {
            assert_eq!(got, full, "{what}: batch {b} is half-present");
        }
    }
    if let Some(&last) = acks.writes.iter().next_back() {
        assert!(
            last < next,
            "{what}: batch {last} was acknowledged but is missing"
        );
    }
    if let Some(r) = acks.markers.difference(&markers).next() {
        panic!("{what}: marker m{r} was acknowledged but is missing");
    }
    let stored = get_all(&ix, &ids);
    assert_eq!(stored.len(), ids.len(), "{what}: listed ids not readable");
    for v in &stored {
        if let Some(r) = v.id.strip_prefix('m') {
            let r: u64 = r.parse().unwrap();
            assert_eq!(*v, marker_of(r), "{what}: marker {} differs", v.id);
            continue;
        }
        let (b, i) = parse_id(&v.id).unwrap();
        let version = if i < REPLACED && is_replacing(b + 1) && b + 1 < next {
            2
        } else {
            1
        };
        assert_eq!(
            *v,
            vector_of(b, i, version),
            "{what}: {} is not the version-{version} vector",
            v.id
        );
    }
    check_queries(&ix, &stored, round as u64, &what);
    // Each recent vector (internal ids that may have been reused after a kill), and a
    // sample of the others, queried by its own values: brute force puts it first, score 1.
    let mut rng = Rng(round as u64);
    for v in &stored {
        let recent = parse_id(&v.id).is_none_or(|(b, _)| b + 1 >= started);
        if !recent && rng.below(50) != 0 {
            continue;
        }
        let ns = v.namespace.clone().unwrap();
        let got = run_query(
            &ix,
            &v.values,
            &QueryOptions::new().with_top_k(1).with_namespace(ns),
        );
        assert!(
            got.len() == 1 && got[0].0 == v.id && (got[0].1 - 1.0).abs() < TOL,
            "{what}: querying {} by its own values returned {got:?} (a stale or corrupt vector is served for it)",
            v.id
        );
    }
    next
}

/// How many segment files hold internal ids SQLite has not allocated: left by a kill after
/// a segment was renamed into place but before its transaction committed. Read before
/// anything opens the index (opening it may seal or rewrite files).
fn segments_ahead_of_sqlite(path: &Path) -> usize {
    let db = Database::open(path).unwrap();
    let next_vid = db
        .prepare("SELECT next_vid FROM d1vec_indexes WHERE name = ?1")
        .bind([INDEX])
        .first_column("next_vid")
        .ok()
        .flatten()
        .and_then(|v| v.as_u64());
    let Some(next_vid) = next_vid else {
        return 0;
    };
    let mut ahead = 0;
    for index in std::fs::read_dir(with_suffix(path, ".vectors"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            let last = name
                .strip_suffix(".seg")
                .and_then(|n| n.split_once('-'))
                .and_then(|(_, last)| last.parse::<u64>().ok());
            ahead += usize::from(last.is_some_and(|last| last >= next_vid));
        }
    }
    ahead
}

fn seg_files(db: &Path) -> (usize, usize) {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".vectors");
    let (mut segs, mut tmps) = (0, 0);
    let Ok(indexes) = std::fs::read_dir(PathBuf::from(dir)) else {
        return (0, 0);
    };
    for index in indexes.flatten() {
        for f in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".seg") {
                segs += 1;
            } else if name.ends_with(".tmp") {
                tmps += 1;
            }
        }
    }
    (segs, tmps)
}

/// When the parent kills a child.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After `wanted` acks, then `delay`.
    Acks { wanted: usize, delay: Duration },
    /// As soon as a segment file is being written.
    TmpAppears,
    /// As soon as a new segment file is in place.
    SegmentAppears,
}

/// The names of the files in every index folder of the database at `db`.
fn segment_names(db: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for index in std::fs::read_dir(with_suffix(db, ".vectors"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            names.insert(f.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// Copies the database's SQLite files and segment folder from `from` to `to` (same names).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let src = with_suffix(from, suffix);
        if src.exists() {
            std::fs::copy(&src, with_suffix(to, suffix)).unwrap();
        }
    }
    copy_tree(&with_suffix(from, ".vectors"), &with_suffix(to, ".vectors"));
}

/// Copies a file, keeping its modification time.
fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let mtime = std::fs::metadata(from).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Copies a folder tree, keeping each file's modification time (as `cp -a` would).
fn copy_tree(from: &Path, to: &Path) {
    if !from.is_dir() {
        return;
    }
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            copy_file(&e.path(), &dst);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[test]
fn sigkill_during_ingest_loses_nothing_acknowledged() {
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_D1EC);
    eprintln!("vector_crash: seed {seed} (set {SEED_ENV} to replay the kill schedule)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.sqlite");
    {
        let db = Database::open(&path).unwrap();
        db.create_index(&CreateIndex::new(INDEX, DIMS, Metric::Cosine))
            .unwrap();
    }
    let began = Instant::now();
    let mut acks = Acks::default();
    let mut next = 0u64;
    let mut tmp_leftovers = 0;
    let mut stale_segments = 0;
    let mut targeted = 0;
    for round in 0..KILLS {
        let stderr = dir.path().join(format!("child-{round}.stderr"));
        let mut child = spawn_child(&path, next, round, &stderr);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Three ways to pick the moment: after 0..=5 acks plus a delay of nothing, up to
        // 2 ms or up to 40 ms; as soon as a segment file is being written (a `.tmp`
        // appears); or as soon as a new segment file is renamed into place (most likely
        // before the write that sealed it has returned).
        let when = match rng.below(4) {
            0 | 1 => KillAt::Acks {
                wanted: rng.below(6) as usize,
                delay: match rng.below(3) {
                    0 => Duration::ZERO,
                    1 => Duration::from_micros(rng.below(2000)),
                    _ => Duration::from_micros(rng.below(40_000)),
                },
            },
            2 => KillAt::TmpAppears,
            _ => KillAt::SegmentAppears,
        };
        let fail = |child: &mut Child, why: &str| -> ! {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!(
                "round {round}: {why} ({status}):\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        match when {
            KillAt::Acks { wanted, delay } => {
                let mut seen = 0;
                while seen < wanted {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(line) => seen += usize::from(acks.record(&line)),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if child.try_wait().unwrap().is_some() {
                                fail(&mut child, "child exited by itself");
                            }
                            if Instant::now() > deadline {
                                fail(&mut child, "child stalled");
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            fail(&mut child, "child closed stdout")
                        }
                    }
                }
                std::thread::sleep(delay);
            }
            KillAt::TmpAppears | KillAt::SegmentAppears => {
                // Give up waiting after 3 s (then it is just another kill).
                let before = segment_names(&path);
                let give_up = Instant::now() + Duration::from_secs(3);
                while Instant::now() < give_up {
                    let now = segment_names(&path);
                    let hit = match when {
                        KillAt::TmpAppears => now.iter().any(|n| n.ends_with(".tmp")),
                        _ => now
                            .iter()
                            .any(|n| n.ends_with(".seg") && !before.contains(n)),
                    };
                    if hit {
                        targeted += 1;
                        break;
                    }
                    if child.try_wait().unwrap().is_some() {
                        fail(&mut child, "child exited by itself");
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            fail(&mut child, "child exited by itself");
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: child was not killed");
        reader.join().unwrap();
        // Acks printed before the kill are in the pipe: they count too.
        for line in rx.try_iter() {
            acks.record(&line);
        }
        tmp_leftovers += usize::from(seg_files(&path).1 > 0);
        stale_segments += segments_ahead_of_sqlite(&path);
        let started = next;
        next = if round % 2 == 0 {
            verify(&path, &acks, round, started)
        } else {
            // Verify a copy, so that the next child starts from the raw post-kill files.
            let copy = dir.path().join(format!("verify-{round}"));
            std::fs::create_dir_all(&copy).unwrap();
            let copied = copy.join("crash.sqlite");
            copy_db(&path, &copied);
            let next = verify(&copied, &acks, round, started);
            std::fs::remove_dir_all(&copy).unwrap();
            next
        };
    }
    let (segs, _) = seg_files(&path);
    eprintln!(
        "vector_crash: {KILLS} kills in {:.1?}: {next} batches stored, {} writes, {} deletes and {} seals/compactions acked, {segs} segment files; {targeted} kills aimed at segment writes, {tmp_leftovers} left a .tmp segment, {stale_segments} a segment ahead of SQLite",
        began.elapsed(),
        acks.writes.len(),
        acks.deletes.len(),
        acks.other,
    );
    assert!(
        next >= 10,
        "only {next} batches were stored: the kills came too early to test anything"
    );
    assert!(segs > 0, "no segment file was ever written");
}

/// Writes 50 vectors, snapshots SQLite, writes 50 more (sealing a segment file that covers
/// them), then restores SQLite from the snapshot, keeping the segment folder: SQLite behind
/// a segment file, as a restored backup leaves it. New, different vectors
/// written next reuse the rolled-back internal ids; queries must score them by their own
/// values (SQLite's), not the rolled-back ones the segment file still holds.
#[test]
fn rolled_back_seal_leaves_no_stale_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollback.sqlite");
    let backup = dir.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    let saved = backup.join("rollback.sqlite");
    let opts = EngineOptions {
        exact_max_candidates: 1 << 30,
        seal_at: 100,
        ..EngineOptions::default()
    };
    let make = |prefix: &str, seed: u64| -> Vec<Vector> {
        let mut rng = Rng(seed);
        (0..50)
            .map(|i| {
                Vector::new(
                    format!("{prefix}{i}"),
                    (0..8).map(|_| rng.signed()).collect(),
                )
                .with_namespace("all")
            })
            .collect()
    };
    {
        let db = Database::open(&path).unwrap();
        db.set_vector_options(opts);
        db.create_index(&CreateIndex::new("r", 8, Metric::Cosine))
            .unwrap();
        db.vectorize("r").unwrap().insert(&make("a", 1)).unwrap();
    }
    copy_db(&path, &saved);
    {
        let db = Database::open(&path).unwrap();
        db.set_vector_options(opts);
        let ix = db.vectorize("r").unwrap();
        // A loaded state follows the write and seals once it holds `seal_at` vectors.
        ix.warm().unwrap();
        ix.insert(&make("b", 2)).unwrap();
    }
    assert!(seg_files(&path).0 > 0, "the second write did not seal");
    // "Crash": SQLite goes back to before the second write; the segment file stays.
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(&path, suffix));
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let src = with_suffix(&saved, suffix);
        if src.exists() {
            std::fs::copy(&src, with_suffix(&path, suffix)).unwrap();
        }
    }
    let db = Database::open(&path).unwrap();
    db.set_vector_options(opts);
    let ix = db.vectorize("r").unwrap();
    ix.insert(&make("c", 3)).unwrap();
    let ids = list_all(&ix);
    assert_eq!(ids.len(), 100, "a* and c* are stored, b* never committed");
    let stored = get_all(&ix, &ids);
    let scope: Vec<&Vector> = stored.iter().collect();
    for v in stored.iter().filter(|v| v.id.starts_with('c')).take(10) {
        let got = run_query(
            &ix,
            &v.values,
            &QueryOptions::new().with_top_k(10).with_namespace("all"),
        );
        check_exact(
            &got,
            &brute(&scope, &v.values),
            10,
            &format!("query by the values of {}", v.id),
        );
    }
    drop(ix);
    drop(db);
    // And again after a reopen (the state rebuilt from files and SQLite).
    let db = Database::open(&path).unwrap();
    db.set_vector_options(opts);
    let ix = db.vectorize("r").unwrap();
    for v in stored.iter().filter(|v| v.id.starts_with('c')).take(10) {
        let got = run_query(
            &ix,
            &v.values,
            &QueryOptions::new().with_top_k(10).with_namespace("all"),
        );
        check_exact(
            &got,
            &brute(&scope, &v.values),
            10,
            &format!("after reopen, query by the values of {}", v.id),
        );
    }
}

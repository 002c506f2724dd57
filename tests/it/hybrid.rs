//! Hybrid search: Reciprocal Rank Fusion against hand-computed numbers, BM25 against SQLite's
//! own `bm25()` over one tenant's rows, the FTS index following writes from sessions and the
//! admin, tenant isolation (rows, scores, the index's tables), typed errors, and the CLI.

use std::collections::BTreeMap;

use d1vec::embed::{Embedder, HashingEmbedder};
use d1vec::search::query::KeywordQuery;
use d1vec::search::rrf::{fuse, RankedList};
use d1vec::search::{HybridHit, HybridQuery, TextSource};
use d1vec::vectorize::filter::IndexType;
use d1vec::vectorize::types::Vector;
use d1vec::{Database, Error, Param, TenantSession};
use serde_json::json;

use crate::cli::{d1vec, ok_json};
use crate::oracle::cosine;

const DIMS: usize = 1536;

/// A database with the bundled schema, tenants `ta` and `tb` (one knowledge document each,
/// `da` and `db`), and the knowledge chunks' text index.
fn setup() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.apply_bundled().unwrap();
    db.exec(
        "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('ta','A','pro','us'),('tb','B','pro','eu');
         INSERT INTO knowledge_documents (doc_id, tenant_id, title, content_hash) VALUES ('da','ta','A docs','h'),('db','tb','B docs','h'),('da2','ta','A more','h');",
    )
    .unwrap();
    db.create_text_index(&TextSource::knowledge_chunks())
        .unwrap();
    db
}

fn embedder() -> HashingEmbedder {
    HashingEmbedder::new(DIMS).unwrap()
}

fn embed(text: &str) -> Vec<f64> {
    embedder().embed(text).into_iter().map(f64::from).collect()
}

/// Inserts a chunk through the tenant's session, and its vector (id = chunk id) unless
/// `vector` is false.
fn add(s: &TenantSession, id: &str, doc: &str, ordinal: i64, text: &str, lang: Option<&str>) {
    s.prepare(
        "INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text, vector_id) VALUES (?1, ?2, ?3, ?4, ?1)",
    )
    .bind([
        Param::from(id),
        Param::from(doc),
        Param::Integer(ordinal),
        Param::from(text),
    ])
    .run()
    .unwrap();
    let mut v = Vector::new(id, embed(text));
    if let Some(lang) = lang {
        v = v.with_metadata(json!({ "lang": lang }).as_object().unwrap().clone());
    }
    s.vectorize("nds-knowledge").unwrap().upsert(&[v]).unwrap();
}

/// `(id, bm25)` of every row of `tenant` matching `query`, from SQLite's own FTS5 `bm25()`
/// over a fresh `ascii`-tokenized table holding only that tenant's rows (negated: higher is
/// better). Sorted by id.
fn oracle_bm25(db: &Database, tenant: &str, query: &str) -> BTreeMap<String, f64> {
    let rows = db
        .prepare("SELECT chunk_id, text FROM knowledge_chunks WHERE tenant_id = ?1")
        .bind([tenant])
        .raw(false)
        .unwrap();
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE VIRTUAL TABLE o USING fts5(id UNINDEXED, body, tokenize = 'ascii')")
        .unwrap();
    for r in &rows {
        conn.execute(
            "INSERT INTO o (id, body) VALUES (?1, ?2)",
            [r[0].as_str().unwrap(), r[1].as_str().unwrap()],
        )
        .unwrap();
    }
    let expr = KeywordQuery::parse(query).unwrap().to_fts5();
    let mut stmt = conn
        .prepare("SELECT id, -bm25(o) FROM o WHERE o MATCH ?1")
        .unwrap();
    let found = stmt
        .query_map([expr], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<BTreeMap<String, f64>>>()
        .unwrap();
    found
}

/// The session's keyword search must return exactly the oracle's rows and scores, best first.
#[track_caller]
fn check_keywords(db: &Database, s: &TenantSession, query: &str) {
    let got = s.text_search("knowledge_chunks", query, 10_000).unwrap();
    let want = oracle_bm25(db, s.tenant_id(), query);
    let got_map: BTreeMap<String, f64> = got.iter().map(|h| (h.id.clone(), h.bm25)).collect();
    assert_eq!(
        got_map.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "tenant {} query {query:?}",
        s.tenant_id()
    );
    for (id, w) in &want {
        let g = got_map[id];
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{id}: {g} vs SQLite's {w} (query {query:?})"
        );
    }
    for pair in got.windows(2) {
        assert!(
            pair[0].bm25 > pair[1].bm25
                || (pair[0].bm25 == pair[1].bm25 && pair[0].id < pair[1].id),
            "not best first: {pair:?}"
        );
    }
}

/// Each hit's fused score is the RRF sum of its reported ranks.
#[track_caller]
fn check_fusion(hits: &[HybridHit], k: f64) {
    for h in hits {
        let kw = h
            .keyword
            .as_ref()
            .map_or(0.0, |m| 1.0 / (k + m.rank as f64));
        let vec = h.vector.as_ref().map_or(0.0, |m| 1.0 / (k + m.rank as f64));
        assert_eq!(h.score, 0.0 + kw + vec, "{h:?}");
    }
    for pair in hits.windows(2) {
        assert!(
            pair[0].score > pair[1].score
                || (pair[0].score == pair[1].score && pair[0].id < pair[1].id)
        );
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn rrf_matches_hand_computed_examples() {
    // The module docs' example: keyword [a, b, c], vector [b, d, a], k = 60.
    let (kw, vec) = (ids(&["a", "b", "c"]), ids(&["b", "d", "a"]));
    let lists = |wk, wv| {
        [
            RankedList {
                weight: wk,
                ids: &kw,
            },
            RankedList {
                weight: wv,
                ids: &vec,
            },
        ]
    };
    let out = fuse(&lists(1.0, 1.0), 60.0).unwrap();
    let got: Vec<(&str, f64)> = out.iter().map(|f| (f.id.as_str(), f.score)).collect();
    let want = [
        ("b", 0.032_522_474_9), // 1/62 + 1/61
        ("a", 0.032_266_458_5), // 1/61 + 1/63
        ("d", 0.016_129_032_3), // 1/62
        ("c", 0.015_873_015_9), // 1/63
    ];
    for ((gid, g), (wid, w)) in got.iter().zip(want) {
        assert_eq!(*gid, wid);
        assert!((g - w).abs() < 1e-10, "{gid}: {g} vs {w}");
    }
    assert_eq!(out[0].ranks, vec![Some(2), Some(1)]);
    assert_eq!(out[2].ranks, vec![None, Some(2)]);
    assert_eq!(out[3].ranks, vec![Some(3), None]);

    // Weights 2 and 0.5, k = 10: a = 2/11 + 0.5/13 = 0.2202797, b = 2/12 + 0.5/11 = 0.2121212,
    // c = 2/13 = 0.1538462, d = 0.5/12 = 0.0416667.
    let out = fuse(&lists(2.0, 0.5), 10.0).unwrap();
    let got: Vec<(&str, f64)> = out.iter().map(|f| (f.id.as_str(), f.score)).collect();
    let want = [
        ("a", 0.220_279_720_3),
        ("b", 0.212_121_212_1),
        ("c", 0.153_846_153_8),
        ("d", 0.041_666_666_7),
    ];
    for ((gid, g), (wid, w)) in got.iter().zip(want) {
        assert_eq!(*gid, wid);
        assert!((g - w).abs() < 1e-9, "{gid}: {g} vs {w}");
    }

    // Mirror-image ranks tie exactly; the tie goes to the smaller id.
    let (l1, l2) = (ids(&["y", "x"]), ids(&["x", "y"]));
    let out = fuse(
        &[
            RankedList {
                weight: 1.0,
                ids: &l1,
            },
            RankedList {
                weight: 1.0,
                ids: &l2,
            },
        ],
        60.0,
    )
    .unwrap();
    assert_eq!(out[0].score, out[1].score);
    assert_eq!((out[0].id.as_str(), out[1].id.as_str()), ("x", "y"));
}

#[test]
fn keyword_and_vector_winners_differ_and_both_come_back() {
    let db = setup();
    let ta = db.tenant("ta").unwrap();
    // `k`: the only row holding the token "shoes", among many other words.
    // `v`: no token "shoes", but the same spelling ("shoe…"): the lexical embedder's favourite.
    let corpus = [
        ("k", "Return policy for shoes: receipts, refunds, exchanges, warranty claims and store credit."),
        ("v", "shoe shoe shoe"),
        ("n1", "Weather forecast for the coast this weekend"),
        ("n2", "Quarterly tax filing deadline reminders"),
        ("n3", "Team offsite agenda and travel booking"),
    ];
    for (i, (id, text)) in corpus.iter().enumerate() {
        add(&ta, id, "da", i as i64, text, None);
    }
    let q = "shoes";
    // The oracles agree with the premise: BM25 finds only `k`; cosine ranks `v` first.
    let keyword = ta.text_search("knowledge_chunks", q, 10).unwrap();
    assert_eq!(
        keyword.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["k"]
    );
    let qv = embed(q);
    let mut by_cosine: Vec<(f64, &str)> = corpus
        .iter()
        .map(|(id, text)| (cosine(&embed(text), &qv), *id))
        .collect();
    by_cosine.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    assert_eq!(by_cosine[0].1, "v", "{by_cosine:?}");

    let e = embedder();
    let hits = ta.hybrid_search(&HybridQuery::new(q), Some(&e)).unwrap();
    check_fusion(&hits, 60.0);
    let k = hits
        .iter()
        .find(|h| h.id == "k")
        .expect("the keyword winner");
    let v = hits
        .iter()
        .find(|h| h.id == "v")
        .expect("the vector winner");
    assert_eq!(k.keyword.as_ref().unwrap().rank, 1);
    assert_eq!(v.vector.as_ref().unwrap().rank, 1);
    assert!(v.keyword.is_none());
    assert_eq!(v.text, "shoe shoe shoe");
    // The vector side's ranks are the brute-force cosine order, scores included.
    for h in &hits {
        let m = h.vector.as_ref().expect("every row has a vector");
        let pos = by_cosine.iter().position(|(_, id)| *id == h.id).unwrap();
        assert_eq!(m.rank, pos + 1, "{}", h.id);
        assert!((m.score - by_cosine[pos].0).abs() < 1e-5);
    }
    // Both lists agree on `k` being relevant, so it wins the fusion.
    assert_eq!(hits[0].id, "k");
    assert_eq!(hits.len(), corpus.len());
    // Keyword weight 0 leaves the vector order; top_k cuts.
    let only_vectors = ta
        .hybrid_search(&HybridQuery::new(q).weights(0.0, 1.0).top_k(2), Some(&e))
        .unwrap();
    assert_eq!(
        only_vectors
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        [by_cosine[0].1, by_cosine[1].1]
    );
}

/// A tiny deterministic PRNG (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: [&str; 12] = [
    "alpha", "Alpha", "beta", "gamma", "launch", "launches", "spring", "sale", "e-mail", "ÉCOLE",
    "école", "a",
];
const QUERIES: [&str; 9] = [
    "alpha",
    "launch*",
    "\"spring sale\"",
    "beta gamma",
    "e-mail",
    "école",
    "a*",
    "\"a a\" sale",
    "zeta",
];

fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(9);
    (0..n)
        .map(|_| WORDS[rng.below(WORDS.len())])
        .collect::<Vec<_>>()
        .join(if rng.below(2) == 0 { " " } else { ", " })
}

#[test]
fn the_index_follows_writes_and_bm25_is_sqlites_over_the_tenants_rows() {
    let db = setup();
    let sessions = [db.tenant("ta").unwrap(), db.tenant("tb").unwrap()];
    let docs = ["da", "db"];
    let mut rng = Rng(7);
    let mut live: [Vec<(String, i64)>; 2] = [Vec::new(), Vec::new()];
    let mut serial = 0;
    for round in 0..12 {
        for _ in 0..25 {
            let t = rng.below(2);
            let s = &sessions[t];
            serial += 1;
            let op = if live[t].len() < 3 { 0 } else { rng.below(7) };
            match op {
                // Insert, through the session.
                0 | 1 => {
                    let id = format!("c{serial}");
                    s.prepare("INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text) VALUES (?1, ?2, ?3, ?4)")
                        .bind([Param::from(id.as_str()), Param::from(docs[t]), Param::Integer(serial), Param::from(text(&mut rng))])
                        .run()
                        .unwrap();
                    live[t].push((id, serial));
                }
                // New text, through the session.
                2 => {
                    let (id, _) = &live[t][rng.below(live[t].len())];
                    s.prepare("UPDATE knowledge_chunks SET text = ?1 WHERE chunk_id = ?2")
                        .bind([text(&mut rng), id.clone()])
                        .run()
                        .unwrap();
                }
                // New key, through the session.
                3 => {
                    let i = rng.below(live[t].len());
                    let id = format!("c{serial}");
                    s.prepare("UPDATE knowledge_chunks SET chunk_id = ?1 WHERE chunk_id = ?2")
                        .bind([id.clone(), live[t][i].0.clone()])
                        .run()
                        .unwrap();
                    live[t][i].0 = id;
                }
                // Delete, through the session.
                4 => {
                    let (id, _) = live[t].swap_remove(rng.below(live[t].len()));
                    s.prepare("DELETE FROM knowledge_chunks WHERE chunk_id = ?1")
                        .bind([id])
                        .run()
                        .unwrap();
                }
                // REPLACE on the (tenant, doc, ordinal) key: the old row goes without firing
                // a delete trigger.
                5 => {
                    let i = rng.below(live[t].len());
                    let id = format!("c{serial}");
                    s.prepare("INSERT OR REPLACE INTO knowledge_chunks (chunk_id, doc_id, ordinal, text) VALUES (?1, ?2, ?3, ?4)")
                        .bind([Param::from(id.as_str()), Param::from(docs[t]), Param::Integer(live[t][i].1), Param::from(text(&mut rng))])
                        .run()
                        .unwrap();
                    live[t][i].0 = id;
                }
                // The admin rewrites one of the tenant's rows.
                _ => {
                    let (id, _) = &live[t][rng.below(live[t].len())];
                    db.prepare("UPDATE knowledge_chunks SET text = ?1 WHERE chunk_id = ?2")
                        .bind([text(&mut rng), id.clone()])
                        .run()
                        .unwrap();
                }
            }
        }
        let pending = db.text_indexes().unwrap()[0].pending;
        assert!(pending > 0, "round {round}: writes were logged");
        for s in &sessions {
            for q in QUERIES {
                check_keywords(&db, s, q);
            }
        }
        let info = &db.text_indexes().unwrap()[0];
        assert_eq!(info.pending, 0);
        assert_eq!(
            info.rows as usize,
            live[0].len() + live[1].len(),
            "round {round}"
        );
    }
}

#[test]
fn the_index_survives_losing_its_triggers() {
    let db = setup();
    let ta = db.tenant("ta").unwrap();
    add(&ta, "c1", "da", 0, "alpha beta", None);
    // A migration that rebuilds the table drops its triggers; simulate that.
    let triggers = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'knowledge_chunks'")
        .raw(false)
        .unwrap();
    assert_eq!(triggers.len(), 3);
    for t in &triggers {
        db.exec(&format!("DROP TRIGGER \"{}\"", t[0].as_str().unwrap()))
            .unwrap();
    }
    db.exec("INSERT INTO knowledge_chunks (chunk_id, doc_id, tenant_id, ordinal, text) VALUES ('c2', 'da', 'ta', 1, 'alpha gamma')")
        .unwrap();
    db.exec("DELETE FROM knowledge_chunks WHERE chunk_id = 'c1'")
        .unwrap();
    check_keywords(&db, &ta, "alpha");
    assert_eq!(
        db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'knowledge_chunks'")
            .first_column("n")
            .unwrap(),
        Some(json!(3))
    );
    // And the re-created triggers are trusted in sessions: a session write is followed.
    add(&ta, "c3", "da", 2, "alpha delta", None);
    check_keywords(&db, &ta, "alpha delta");
}

#[test]
fn a_tenant_sees_only_its_rows_and_scores_ignore_other_tenants() {
    let db = setup();
    let (ta, tb) = (db.tenant("ta").unwrap(), db.tenant("tb").unwrap());
    add(
        &ta,
        "a1",
        "da",
        0,
        "spring launch plan for the alpha product",
        None,
    );
    add(
        &ta,
        "a2",
        "da",
        1,
        "launch checklist and alpha review",
        None,
    );
    add(&ta, "a3", "da", 2, "budget notes", None);
    add(&tb, "b1", "db", 0, "zanzibar secret roadmap", None);
    let e = embedder();
    let query = HybridQuery::new("alpha launch").top_k(20);
    let before_kw = ta
        .text_search("knowledge_chunks", "alpha launch", 100)
        .unwrap();
    let before = ta.hybrid_search(&query, Some(&e)).unwrap();
    assert!(before.iter().all(|h| h.id.starts_with('a')), "{before:?}");
    assert_eq!(before.len(), 3);

    // tb writes a lot with ta's words: ta's results and scores do not move by one bit.
    for i in 0..40 {
        add(
            &tb,
            &format!("b{}", i + 2),
            "db",
            i + 1,
            "alpha alpha launch launch launch",
            None,
        );
    }
    let after_kw = ta
        .text_search("knowledge_chunks", "alpha launch", 100)
        .unwrap();
    let after = ta.hybrid_search(&query, Some(&e)).unwrap();
    assert_eq!(before_kw, after_kw);
    assert_eq!(before, after);
    check_keywords(&db, &ta, "alpha launch");
    check_keywords(&db, &tb, "alpha launch");

    // tb's unique word finds nothing for ta, by keyword or otherwise.
    assert!(ta
        .text_search("knowledge_chunks", "zanzibar", 100)
        .unwrap()
        .is_empty());
    let hits = ta
        .hybrid_search(&HybridQuery::new("zanzibar secret roadmap"), Some(&e))
        .unwrap();
    assert!(
        hits.iter()
            .all(|h| h.id.starts_with('a') && h.keyword.is_none()),
        "{hits:?}"
    );
    let theirs = tb
        .hybrid_search(&HybridQuery::new("zanzibar secret roadmap"), Some(&e))
        .unwrap();
    assert_eq!(theirs[0].id, "b1");
    assert!(theirs.iter().all(|h| h.id.starts_with('b')));
}

#[test]
fn sessions_cannot_reach_the_text_index_tables() {
    let db = Database::open_in_memory().unwrap();
    db.apply_bundled().unwrap();
    db.exec("INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('ta','A','pro','us'),('tb','B','pro','eu');
             INSERT INTO knowledge_documents (doc_id, tenant_id, title, content_hash) VALUES ('da','ta','A','h'),('db','tb','B','h');
             INSERT INTO knowledge_chunks (chunk_id, doc_id, tenant_id, ordinal, text) VALUES ('b1','db','tb',0,'zanzibar secret')")
        .unwrap();
    // A session opened before the index exists writes through its triggers all the same.
    let early = db.tenant("ta").unwrap();
    db.create_text_index(&TextSource::knowledge_chunks())
        .unwrap();
    early
        .exec("INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text) VALUES ('a1','da',0,'alpha notes')")
        .unwrap();
    assert_eq!(
        early.text_search("knowledge_chunks", "alpha", 10).unwrap()[0].id,
        "a1"
    );

    let ta = db.tenant("ta").unwrap();
    let fts = "d1vec_fts_1";
    let attempts = [
        format!("SELECT * FROM {fts}"),
        format!("SELECT * FROM main.{fts}"),
        format!("SELECT rowid FROM {fts} WHERE {fts} MATCH 'zanzibar'"),
        format!("SELECT count(*) FROM {fts}_content"),
        format!("SELECT * FROM {fts}_data"),
        format!("SELECT * FROM {fts}_idx"),
        format!("SELECT * FROM {fts}_docsize"),
        "SELECT * FROM d1vec_text_docs".into(),
        "SELECT * FROM d1vec_text_log".into(),
        "SELECT trigger_tag FROM d1vec_text_indexes".into(),
        "SELECT name FROM sqlite_schema WHERE type = 'trigger'".into(),
        format!("INSERT INTO {fts} (rowid, body, scope, tenant_id) VALUES (99, 'x', 't7461', 'ta')"),
        format!("INSERT INTO {fts} ({fts}) VALUES ('delete-all')"),
        format!("DELETE FROM {fts}"),
        "INSERT INTO d1vec_text_log (text_index_id, source_key) VALUES (1, 'b1')".into(),
        "DELETE FROM d1vec_text_docs".into(),
        "UPDATE d1vec_text_indexes SET source_table = 'x'".into(),
        "DROP TABLE d1vec_text_log".into(),
        // CTEs named like the engine's triggers, but without their secret tag.
        "WITH d1vec_text_ins AS (SELECT text FROM main.knowledge_chunks) SELECT * FROM d1vec_text_ins".into(),
        "WITH d1vec_text_00000000000000000000000000000000_ins AS (SELECT count(*) FROM main.knowledge_chunks) SELECT * FROM d1vec_text_00000000000000000000000000000000_ins".into(),
    ];
    for sql in &attempts {
        match ta.prepare(sql).all() {
            Err(Error::TenantViolation { tenant, .. }) => assert_eq!(tenant, "ta"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    // Nothing moved: tb's row is still indexed, for tb only.
    let tb = db.tenant("tb").unwrap();
    assert_eq!(
        tb.text_search("knowledge_chunks", "zanzibar", 10).unwrap()[0].id,
        "b1"
    );
    assert!(ta
        .text_search("knowledge_chunks", "zanzibar", 10)
        .unwrap()
        .is_empty());
    check_keywords(&db, &ta, "alpha");
    check_keywords(&db, &tb, "zanzibar");
}

#[test]
fn filters_apply_to_both_lists() {
    let db = setup();
    db.vectorize("nds-knowledge")
        .unwrap()
        .create_metadata_index("lang", IndexType::String)
        .unwrap();
    let ta = db.tenant("ta").unwrap();
    add(&ta, "en1", "da", 0, "refund policy in english", Some("en"));
    add(
        &ta,
        "fr1",
        "da",
        1,
        "refund politique en francais",
        Some("fr"),
    );
    add(&ta, "en2", "da2", 0, "shipping times", Some("en"));
    add(
        &ta,
        "fr2",
        "da2",
        1,
        "refund delais de livraison",
        Some("fr"),
    );
    let e = embedder();
    let all = ta
        .hybrid_search(&HybridQuery::new("refund"), Some(&e))
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().filter(|h| h.keyword.is_some()).count(), 3);

    let en = ta
        .hybrid_search(
            &HybridQuery::new("refund").filter(json!({"lang": "en"})),
            Some(&e),
        )
        .unwrap();
    check_fusion(&en, 60.0);
    let mut got: Vec<&str> = en.iter().map(|h| h.id.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["en1", "en2"]);
    assert_eq!(en[0].id, "en1");
    assert_eq!(en[0].keyword.as_ref().unwrap().rank, 1);

    let in_doc = ta
        .hybrid_search(
            &HybridQuery::new("refund").where_sql("doc_id = 'da2' -- a comment"),
            Some(&e),
        )
        .unwrap();
    let mut got: Vec<&str> = in_doc.iter().map(|h| h.id.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["en2", "fr2"]);
    let fr2 = in_doc.iter().find(|h| h.id == "fr2").unwrap();
    assert_eq!(
        fr2.keyword.as_ref().unwrap().rank,
        1,
        "ranks count the filtered list"
    );

    let both = ta
        .hybrid_search(
            &HybridQuery::new("refund")
                .filter(json!({"lang": {"$ne": "en"}}))
                .where_sql("ordinal = 1"),
            Some(&e),
        )
        .unwrap();
    let mut got: Vec<&str> = both.iter().map(|h| h.id.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["fr1", "fr2"]);
}

#[track_caller]
fn invalid<T: std::fmt::Debug>(r: d1vec::Result<T>, what: &str) {
    match r {
        Err(Error::InvalidInput { what: w, .. }) => assert_eq!(w, what),
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let db = setup();
    let ta = db.tenant("ta").unwrap();
    add(&ta, "a1", "da", 0, "alpha", None);
    let e = embedder();
    let run = |q: HybridQuery| ta.hybrid_search(&q, Some(&e));
    invalid(run(HybridQuery::new("")), "keyword query");
    invalid(run(HybridQuery::new("  ... ")), "keyword query");
    invalid(run(HybridQuery::new("\"unclosed phrase")), "keyword query");
    invalid(run(HybridQuery::new("alpha *")), "keyword query");
    invalid(run(HybridQuery::new("alpha").top_k(0)), "top_k");
    invalid(run(HybridQuery::new("alpha").rrf_k(-1.0)), "RRF k");
    invalid(run(HybridQuery::new("alpha").rrf_k(f64::NAN)), "RRF k");
    invalid(
        run(HybridQuery::new("alpha").weights(1.0, f64::INFINITY)),
        "RRF weight",
    );
    invalid(
        run(HybridQuery::new("alpha").source("campaigns")),
        "text index",
    );
    invalid(
        ta.hybrid_search(&HybridQuery::new("alpha"), None),
        "hybrid search",
    );
    assert!(matches!(
        run(HybridQuery::new("alpha").top_k(101)),
        Err(Error::LimitExceeded { .. })
    ));
    assert!(matches!(
        run(HybridQuery::new("alpha").filter(json!({"lang": {"$regex": "x"}}))),
        Err(Error::Vectorize(_))
    ));
    assert!(matches!(
        run(HybridQuery::new("alpha").filter(json!({"unindexed": "x"}))),
        Err(Error::Vectorize(_))
    ));
    assert!(matches!(
        run(HybridQuery::new("alpha").vector(vec![1.0, 2.0])),
        Err(Error::Vectorize(_))
    ));
    assert!(matches!(
        run(HybridQuery::new("alpha").where_sql("no_such_column = 1")),
        Err(Error::Sql(_))
    ));
    assert!(matches!(
        run(HybridQuery::new("alpha")
            .where_sql("chunk_id IN (SELECT chunk_id FROM main.knowledge_chunks)")),
        Err(Error::TenantViolation { .. })
    ));
    invalid(ta.text_search("knowledge_chunks", "alpha", 0), "limit");
    invalid(
        ta.text_search("knowledge_chunks", "\"", 10),
        "keyword query",
    );

    // Text indexes that cannot be made.
    let source = |table: &str, key: &str| TextSource {
        table: table.into(),
        key_column: key.into(),
        text_column: "text".into(),
        vector_id_column: None,
        vector_index: None,
    };
    for bad in [
        source("no_such_table", "chunk_id"),
        source("knowledge_chunks", "doc_id"), // not unique
        source("knowledge_chunks", "no_column"),
        source("d1vec_text_docs", "doc"), // the engine's own
        TextSource {
            text_column: "name".into(),
            ..source("skills", "skill_id")
        }, // shared
        TextSource {
            text_column: "doc_id".into(),
            ..TextSource::knowledge_chunks()
        }, // taken
    ] {
        match db.create_text_index(&bad) {
            Err(Error::InvalidInput { what, .. }) => assert_eq!(what, "text source", "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let unknown_vectors = TextSource {
        vector_index: Some("nope".into()),
        ..TextSource::knowledge_chunks()
    };
    assert!(matches!(
        db.create_text_index(&unknown_vectors),
        Err(Error::Vectorize(_))
    ));
    // The same definition again is the existing index.
    assert_eq!(
        db.create_text_index(&TextSource::knowledge_chunks())
            .unwrap()
            .rows,
        1
    );
}

#[test]
fn cli_search_is_scoped_and_prints_hits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let db = Database::open(&path).unwrap();
        db.apply_bundled().unwrap();
        db.exec(
            "INSERT INTO tenants (tenant_id, name, plan, region) VALUES ('ta','A','pro','us'),('tb','B','pro','eu');
             INSERT INTO knowledge_documents (doc_id, tenant_id, title, content_hash) VALUES ('da','ta','A','h'),('db','tb','B','h');",
        )
        .unwrap();
        let (ta, tb) = (db.tenant("ta").unwrap(), db.tenant("tb").unwrap());
        add(
            &ta,
            "a1",
            "da",
            0,
            "refunds are paid within thirty days",
            None,
        );
        add(&ta, "a2", "da", 1, "shipping takes a week", None);
        add(&tb, "b1", "db", 0, "refunds refunds refunds", None);
    }
    let out = ok_json(
        &path,
        &[
            "--json", "--tenant", "ta", "search", "--top-k", "5", "refunds",
        ],
    );
    assert_eq!(out["count"], 2);
    assert_eq!(out["hits"][0]["id"], "a1");
    assert_eq!(out["hits"][0]["keyword"]["rank"], 1);
    assert!(out["hits"][0]["vector"]["score"].is_number());
    assert_eq!(
        out["hits"][0]["text"],
        "refunds are paid within thirty days"
    );

    let out = ok_json(
        &path,
        &[
            "--json",
            "--tenant",
            "ta",
            "search",
            "--where",
            "ordinal = 1",
            "--rrf-k",
            "0",
            "refunds",
        ],
    );
    assert_eq!(out["count"], 1);
    assert_eq!(out["hits"][0]["id"], "a2");
    assert_eq!(out["hits"][0]["score"], 1.0);

    let text = d1vec(&path, &["--tenant", "tb", "search", "refunds"]);
    assert!(text.status.success());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("b1") && !stdout.contains("a1") && stdout.contains("1 hit(s)"),
        "{stdout}"
    );

    let refused = d1vec(&path, &["--json", "search", "refunds"]);
    assert!(!refused.status.success());
    let err: serde_json::Value = serde_json::from_slice(&refused.stderr).unwrap();
    assert_eq!(err["code"], 400);
    assert!(err["error"].as_str().unwrap().contains("--tenant"));
    for args in [
        vec!["--json", "--tenant", "ta", "search", "\"open"],
        vec![
            "--json",
            "--tenant",
            "ta",
            "search",
            "--filter",
            "{not json",
            "x",
        ],
        vec![
            "--json", "--tenant", "ta", "search", "--where", "nope(", "x",
        ],
        vec![
            "--json",
            "--tenant",
            "ta",
            "search",
            "--index",
            "nds-skills",
            "x",
        ],
    ] {
        let out = d1vec(&path, &args);
        assert!(!out.status.success(), "{args:?}");
        let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(err["code"], 400, "{args:?}: {err}");
    }
}

/// D1's `meta.changes` counts the caller's rows only: the text index's log rows, written by
/// its triggers inside the same statement, are not the caller's. SQLite on a plain copy of
/// the table (no text index, admin connection) is the oracle.
#[test]
fn session_writes_report_their_own_row_counts_with_a_text_index() {
    let db = setup();
    let ta = db.tenant("ta").unwrap();
    let plain = Database::open_in_memory().unwrap();
    plain
        .exec("CREATE TABLE k (chunk_id TEXT PRIMARY KEY, doc_id TEXT, ordinal INTEGER, text TEXT)")
        .unwrap();
    let statements = [
        (
            "INSERT INTO knowledge_chunks (chunk_id, doc_id, ordinal, text) VALUES ('x1','da',0,'one'),('x2','da',1,'two'),('x3','da',2,'three')",
            "INSERT INTO k (chunk_id, doc_id, ordinal, text) VALUES ('x1','da',0,'one'),('x2','da',1,'two'),('x3','da',2,'three')",
        ),
        (
            "UPDATE knowledge_chunks SET text = text || ' more' WHERE ordinal >= 1",
            "UPDATE k SET text = text || ' more' WHERE ordinal >= 1",
        ),
        (
            "DELETE FROM knowledge_chunks WHERE chunk_id = 'x1'",
            "DELETE FROM k WHERE chunk_id = 'x1'",
        ),
    ];
    for (scoped, oracle) in statements {
        let got = ta.prepare(scoped).run().unwrap().meta.changes;
        let want = plain.prepare(oracle).run().unwrap().meta.changes;
        assert_eq!(got, want, "{scoped}");
    }
    // The log did record them: a search sees the updated rows.
    let hits = ta.text_search("knowledge_chunks", "more", 10).unwrap();
    assert_eq!(hits.len(), 2);
}

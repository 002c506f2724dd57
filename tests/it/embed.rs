//! The offline embedder: pinned outputs (so a platform, toolchain or refactoring change to
//! the hashing scheme is caught), unit length, lexical similarity, hostile input, the
//! dimension limits, the command line, and a proptest over arbitrary strings.

use std::process::Command;

use d1vec::embed::{Embedder, HashingEmbedder};
use d1vec::index::Metric;
use d1vec::vectorize::types::{QueryOptions, Vector};
use d1vec::vectorize::CreateIndex;
use d1vec::{Database, Error};
use proptest::prelude::*;

fn embedder(dims: usize) -> HashingEmbedder {
    HashingEmbedder::new(dims).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// FNV-1a over every component's bits, little-endian: one number that pins a whole vector.
fn bits_digest(v: &[f32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in v {
        for b in x.to_bits().to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The vector has `dims` finite values and Euclidean length 1.
#[track_caller]
fn check_unit(v: &[f32], dims: usize, what: &str) {
    assert_eq!(v.len(), dims, "{what}");
    assert!(v.iter().all(|x| x.is_finite()), "{what}: {v:?}");
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{what}: norm {norm}");
}

#[track_caller]
fn check_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() < 1e-6,
            "{what}[{i}]: got {g}, pinned {w}; the embedding scheme changed"
        );
    }
}

const PINNED_TEXTS: [&str; 3] = [
    "Spring sale on running shoes",
    "d1vec: SQL + vectors, offline!",
    "Ünïcödé naïve café 🚀",
];

/// Every component at 8 dimensions. If this fails on one platform only, the scheme is not
/// platform-independent; if it fails everywhere after a change, stored vectors go stale.
#[test]
fn pinned_values_at_8_dimensions() {
    let want: [[f64; 8]; 3] = [
        [
            -0.346713, 0.0, 0.430840, 0.143613, 0.574454, -0.143613, 0.287227, -0.490327,
        ],
        [
            -0.804305, 0.148554, -0.297109, -0.148554, -0.297109, 0.148554, 0.297109, -0.148554,
        ],
        [
            -0.188982, 0.755929, 0.377964, 0.0, 0.188982, -0.377964, -0.188982, 0.188982,
        ],
    ];
    let e = embedder(8);
    for (text, want) in PINNED_TEXTS.iter().zip(want) {
        check_close(&e.embed(text), &want, text);
    }
}

/// A sparse 1536-dimension vector, pinned: its count of non-zero components, the first six of
/// them as (index, value), and a digest of every component's bits.
struct Pinned {
    nonzero: usize,
    first: [(usize, f64); 6],
    digest: u64,
}

#[test]
fn pinned_values_at_1536_dimensions() {
    let want = [
        Pinned {
            nonzero: 27,
            first: [
                (44, 0.150756),
                (141, -0.213201),
                (171, -0.301511),
                (418, 0.301511),
                (479, 0.150756),
                (559, -0.150756),
            ],
            digest: 0x285f_99af_8bd4_69a6,
        },
        Pinned {
            nonzero: 25,
            first: [
                (4, -0.162221),
                (24, -0.162221),
                (146, -0.324443),
                (185, -0.229416),
                (242, 0.162221),
                (521, -0.162221),
            ],
            digest: 0x491e_9d88_2863_cb2d,
        },
        Pinned {
            nonzero: 19,
            first: [
                (186, -0.171499),
                (209, 0.171499),
                (228, -0.171499),
                (301, 0.171499),
                (313, 0.171499),
                (357, 0.342997),
            ],
            digest: 0xdaa5_9c4a_1e67_4300,
        },
    ];
    let e = embedder(1536);
    for (text, want) in PINNED_TEXTS.iter().zip(want) {
        let v = e.embed(text);
        let nonzero: Vec<(usize, f32)> = v
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, x)| *x != 0.0)
            .collect();
        assert_eq!(nonzero.len(), want.nonzero, "{text}");
        for ((gi, gv), (wi, wv)) in nonzero.iter().zip(want.first) {
            assert_eq!(*gi, wi, "{text}");
            assert!((f64::from(*gv) - wv).abs() < 1e-6, "{text}[{gi}]: {gv}");
        }
        assert_eq!(bits_digest(&v), want.digest, "{text}: bits changed");
    }
}

#[test]
fn same_text_same_bits_and_batch_equals_map() {
    let e = embedder(384);
    let texts = [
        "a",
        "",
        "the quick brown fox",
        "🚀",
        "Straße STRASSE",
        "日本語のテキスト",
    ];
    let one: Vec<Vec<f32>> = texts.iter().map(|t| e.embed(t)).collect();
    let again: Vec<Vec<f32>> = texts.iter().map(|t| e.embed(t)).collect();
    let bits = |vs: &[Vec<f32>]| -> Vec<Vec<u32>> {
        vs.iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    assert_eq!(bits(&one), bits(&again));
    assert_eq!(bits(&one), bits(&e.embed_batch(&texts)));
    // A fresh embedder of the same size is the same function.
    assert_eq!(bits(&one), bits(&embedder(384).embed_batch(&texts)));
    // The trait is object-safe, so an app can hold any model behind `dyn`.
    let boxed: Box<dyn Embedder> = Box::new(e);
    assert_eq!(boxed.dimensions(), 384);
    assert_eq!(bits(&one), bits(&boxed.embed_batch(&texts)));
}

#[test]
fn unit_length_at_every_size() {
    for dims in [1, 2, 3, 8, 100, 384, 768, 1024, 1536] {
        let e = embedder(dims);
        assert_eq!(e.dimensions(), dims);
        for text in PINNED_TEXTS.iter().chain(&["", "x", "one two three"]) {
            check_unit(&e.embed(text), dims, &format!("{text:?} at {dims}"));
        }
    }
}

/// Lexical similarity: texts sharing words or spellings score above unrelated texts.
#[test]
fn shared_words_score_higher_than_unrelated_text() {
    // (anchor, sharing words with it, unrelated)
    let triples = [
        (
            "spring sale on running shoes",
            "Running shoes: the spring collection",
            "quarterly tax filing deadline",
        ),
        (
            "how to reset a forgotten password",
            "password reset instructions",
            "best hiking trails near the lake",
        ),
        (
            "brand voice: friendly, playful, concise",
            "keep the brand voice playful and friendly",
            "invoice overdue by thirty days",
        ),
        // Shared spellings without a shared word: inflections.
        (
            "colour palettes",
            "colours and palette",
            "server migration plan",
        ),
    ];
    for dims in [256, 1024, 1536] {
        let e = embedder(dims);
        for (anchor, near, far) in triples {
            let (a, n, f) = (e.embed(anchor), e.embed(near), e.embed(far));
            let (near_score, far_score) = (cosine(&a, &n), cosine(&a, &f));
            assert!(
                near_score > far_score + 0.2,
                "{dims}: {anchor:?}~{near:?} = {near_score:.3}, ~{far:?} = {far_score:.3}"
            );
        }
        // Case and punctuation do not matter; word order does not either.
        let a = e.embed("Running shoes, on SALE!");
        let b = e.embed("sale on running shoes");
        assert!(cosine(&a, &b) > 0.999, "{dims}: {}", cosine(&a, &b));
    }
}

/// Inputs with no features, odd characters or great length never panic and always give a
/// unit vector a cosine index accepts.
#[test]
fn hostile_input_gives_a_unit_vector() {
    let long_text = "lorem ipsum dolor sit amet ".repeat(40_000); // ~1 MB
    let long_word = "x".repeat(100_000);
    let inputs: Vec<&str> = vec![
        "",
        " ",
        "\t\n\r  \u{a0}\u{3000}",
        "...,;:!?—…",
        "🚀",
        "🚀🔥🎉",
        "👨\u{200d}👩\u{200d}👧\u{200d}👦",
        "🇫🇷 flag",
        "\u{0}\u{1}\u{7f}",
        "\u{301}\u{301}",
        "\u{feff}\u{fe0f}",
        "İstanbul ΣΊΣΥΦΟΣ ß ﬃ",
        "مرحبا بالعالم",
        "नमस्ते दुनिया",
        "你好，世界。",
        "\u{10ffff}\u{e000}",
        &long_text,
        &long_word,
    ];
    for dims in [1, 8, 1536] {
        let e = embedder(dims);
        for text in &inputs {
            let what = format!("{:?} at {dims}", text.chars().take(20).collect::<String>());
            check_unit(&e.embed(text), dims, &what);
        }
    }
}

/// Texts without features share one documented fallback: `±1/√dims` in every component.
#[test]
fn featureless_text_gets_the_dense_fallback() {
    for dims in [1, 8, 1536] {
        let e = embedder(dims);
        let empty = e.embed("");
        let magnitude = 1.0 / (dims as f64).sqrt();
        assert!(empty
            .iter()
            .all(|x| (f64::from(x.abs()) - magnitude).abs() < 1e-7));
        for text in [" ", "\n\t", "?!...", "\u{200b}", "«»"] {
            assert_eq!(e.embed(text), empty, "{text:?} at {dims}");
        }
        if dims > 1 {
            // Not the vector of a real text.
            assert!(cosine(&empty, &e.embed("hello")) < 0.9);
        }
    }
    // Pinned signs at 8 dimensions.
    let s = 1.0 / 8f64.sqrt();
    check_close(
        &embedder(8).embed(""),
        &[-s, s, s, s, s, -s, s, s],
        "fallback",
    );
}

#[test]
fn emoji_are_tokens() {
    let e = embedder(1536);
    let rocket = e.embed("🚀");
    assert_ne!(rocket, e.embed(""), "an emoji is a feature");
    assert_ne!(rocket, e.embed("🎉"));
    assert!(cosine(&e.embed("launch day 🚀"), &e.embed("🚀 launch")) > 0.5);
}

#[test]
fn dimensions_outside_1_to_1536_are_refused() {
    for dims in [0, 1537, usize::MAX] {
        match HashingEmbedder::new(dims) {
            Err(Error::InvalidInput { what, reason }) => {
                assert_eq!(what, "dimensions");
                assert!(reason.contains(&dims.to_string()), "{reason}");
            }
            other => panic!("{dims}: {other:?}"),
        }
    }
    assert!(HashingEmbedder::new(1).is_ok());
    assert!(HashingEmbedder::new(1536).is_ok());
}

/// The vectors go into a cosine index as they are, including the fallback, and a query with
/// one text's vector finds the texts that share its words first.
#[test]
fn vectors_fit_a_cosine_index() {
    let db = Database::open_in_memory().unwrap();
    db.create_index(&CreateIndex::new("docs", 64, Metric::Cosine))
        .unwrap();
    let index = db.vectorize("docs").unwrap();
    let e = embedder(64);
    let docs = [
        ("shoes", "running shoes for the spring season"),
        ("tax", "quarterly tax filing deadline reminder"),
        ("empty", ""),
        ("emoji", "🚀🎉"),
    ];
    let vectors: Vec<Vector> = docs
        .iter()
        .map(|(id, text)| Vector::new(*id, e.embed(text).into_iter().map(f64::from).collect()))
        .collect();
    index.insert(&vectors).unwrap();
    let query: Vec<f64> = e
        .embed("spring running shoes")
        .into_iter()
        .map(f64::from)
        .collect();
    let matches = index
        .query(&query, &QueryOptions::new().with_top_k(4))
        .unwrap();
    assert_eq!(matches.matches[0].id, "shoes");
}

fn d1vec(args: &[&str], db: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_d1vec"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("D1VEC_TENANT")
        .output()
        .unwrap()
}

/// `d1vec embed` prints the library's vector, bit for bit, as a JSON array, and opens no
/// database.
#[test]
fn cli_prints_the_library_vector() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never/db.sqlite");
    for (args, dims, text) in [
        (vec!["embed", "--dims", "8"], 8, PINNED_TEXTS[0]),
        (vec!["--json", "embed", "--dims", "8"], 8, PINNED_TEXTS[2]),
        (vec!["embed"], 1536, PINNED_TEXTS[1]),
        (vec!["--json", "embed", "--dims", "1024"], 1024, ""),
        (vec!["embed", "--dims", "3", "--"], 3, "-starts with a dash"),
    ] {
        let mut all = args.clone();
        all.push(text);
        let out = d1vec(&all, &db);
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
        let want = embedder(dims).embed(text);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&printed), bits(&want), "{all:?}");
    }
    assert!(
        !dir.path().join("never").exists(),
        "embed opened a database"
    );

    for dims in ["0", "1537"] {
        let out = d1vec(&["--json", "embed", "--dims", dims, "text"], &db);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(err["code"], 400, "{err}");
        assert!(err["error"].as_str().unwrap().contains(dims), "{err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any string, any valid size: a finite unit vector of that length, the same bits twice.
    #[test]
    fn any_string_gives_a_stable_unit_vector(
        text in prop_oneof![any::<String>(), "[a-z ]{0,40}", "\\PC{0,60}"],
        dims in prop_oneof![Just(1usize), Just(1536usize), 1usize..=1536],
    ) {
        let e = embedder(dims);
        let a = e.embed(&text);
        let b = e.embed(&text);
        prop_assert_eq!(a.len(), dims);
        prop_assert!(a.iter().all(|x| x.is_finite()));
        let norm = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        prop_assert!((norm - 1.0).abs() < 1e-5, "norm {}", norm);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&a), bits(&b));
    }
}

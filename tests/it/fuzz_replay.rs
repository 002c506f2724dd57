//! Replays the committed fuzz corpora of `fuzz/corpus/{ndjson_line,segment_open,bookmark,
//! sealed_field,key_file,wrangler_config,http_request}` on stable
//! Rust, checking the same properties the fuzz targets check, so CI covers every seed and
//! every input the fuzzers kept. (The filter and SQL-splitter corpora are replayed in
//! `filter.rs` and `split.rs`.)

use std::path::{Path, PathBuf};

use d1vec::fuzzing::{
    format_bookmark, key_file_text, open_field, parse_bookmark, parse_key_file, seal_field, FIELD,
};
use d1vec::index::segment::{SealedSegment, SearchScratch, SegmentError};
use d1vec::vectorize::ndjson::{parse_line, reader, write_vector, Unparsable};
use d1vec::vectorize::types::Vector;
use d1vec::wrangler::config::WranglerConfig;
use d1vec::Error;

/// Every file of one corpus folder, sorted.
fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Reads `data` in `mode`: the vectors, whether an error ended the read, and the counts.
fn read_all(data: &[u8], batch: usize, mode: Unparsable) -> (Vec<Vector>, bool, usize) {
    let mut r = reader(data, batch, mode);
    let mut out = Vec::new();
    let mut failed = false;
    for item in r.by_ref() {
        match item {
            Ok(b) => {
                assert!(!b.is_empty() && b.len() <= batch.max(1));
                out.extend(b);
            }
            Err(e) => {
                assert!(!failed, "two errors");
                assert_eq!(e.code, 40023);
                failed = true;
            }
        }
    }
    (out, failed, r.discarded())
}

#[test]
fn ndjson_corpus_reads_consistently_and_round_trips() {
    let files = corpus("ndjson_line");
    assert!(files.len() >= 10, "the seed corpus is missing");
    let mut vectors = 0;
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let batch = data.first().map_or(1, |&b| usize::from(b % 7));
        let (all, failed, discarded) = read_all(&data, batch, Unparsable::Discard);
        assert!(!failed, "{}", file.display());
        let (prefix, failed, _) = read_all(&data, batch, Unparsable::Error);
        assert_eq!(failed, discarded > 0, "{}", file.display());
        assert_eq!(all[..prefix.len()], prefix[..], "{}", file.display());
        for v in all
            .iter()
            .filter(|v| v.values.iter().all(|&x| (x as f32).is_finite()))
        {
            let mut line = Vec::new();
            write_vector(&mut line, v).unwrap();
            let back = parse_line(&line[..line.len() - 1], 1).unwrap().unwrap();
            assert_eq!((&back.id, &back.namespace), (&v.id, &v.namespace));
            let a: Vec<f32> = back.values.iter().map(|&x| x as f32).collect();
            let b: Vec<f32> = v.values.iter().map(|&x| x as f32).collect();
            assert_eq!(a, b, "{}", file.display());
            vectors += 1;
        }
    }
    assert!(vectors > 0, "no seed holds a readable vector");
}

#[test]
fn segment_corpus_opens_soundly_or_is_refused() {
    let files = corpus("segment_open");
    assert!(files.len() >= 5, "the seed corpus is missing");
    let (mut opened, mut verified) = (0, 0);
    for file in files {
        let seg = match SealedSegment::open(&file) {
            Ok(seg) => seg,
            Err(SegmentError::Corrupt { reason, .. }) => {
                assert!(!reason.is_empty());
                continue;
            }
            // A version field above the readable range (the fuzz target's same property).
            Err(SegmentError::Incompatible { found, .. }) => {
                let data = std::fs::read(&file).unwrap();
                assert!(data.starts_with(&d1vec::index::segment::MAGIC));
                assert_eq!(data.get(8..12), Some(&found.to_le_bytes()[..]));
                assert!(found > *d1vec::index::segment::READABLE_VERSIONS.end());
                continue;
            }
            Err(e) => panic!("{}: unexpected error {e}", file.display()),
        };
        opened += 1;
        verified += usize::from(seg.verify().is_ok());
        let ids = seg.ids().to_vec();
        let mut scratch = SearchScratch::new();
        let q: Vec<f32> = (0..seg.dims()).map(|i| (i % 5) as f32 - 2.0).collect();
        for (k, ef) in [(1, 1), (10, 32)] {
            let hits = seg.search(&q, k, ef, None, &mut scratch);
            assert!(hits.len() <= k);
            assert!(
                hits.iter().all(|h| ids.contains(&h.id)),
                "{}",
                file.display()
            );
        }
        // Ties with the fifth distance are kept too, so only membership is bounded.
        assert!(seg.exact(&q, &ids, 5).iter().all(|h| ids.contains(&h.id)));
    }
    // The seeds include whole, valid files as well as damaged ones.
    assert!(
        opened > 0 && verified > 0,
        "opened {opened}, verified {verified}"
    );
}

/// An independent oracle for bookmarks: 16 lower-case hex digits, `-`, 16 more.
fn bookmark_shape(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let hex = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    (b.len() == 33 && b[16] == b'-' && hex(&b[..16]) && hex(&b[17..]))
        .then(|| u64::from_str_radix(&text[..16], 16).unwrap())
}

#[test]
fn bookmark_corpus_parses_to_the_oracle_and_formats_back() {
    let files = corpus("bookmark");
    assert!(files.len() >= 8, "the seed corpus is missing");
    let mut accepted = 0;
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        match parse_bookmark(&text) {
            Ok((seq, tag)) => {
                assert_eq!(Some(seq), bookmark_shape(&text), "{}", file.display());
                assert_eq!(format_bookmark(seq, &tag), text);
                accepted += 1;
            }
            Err(Error::Bookmark { bookmark, reason }) => {
                assert_eq!(bookmark_shape(&text), None, "{}", file.display());
                assert!(bookmark.chars().count() <= 80 && !reason.is_empty());
            }
            Err(e) => panic!("{}: untyped error {e}", file.display()),
        }
    }
    assert_eq!(accepted, 3, "the three valid seeds, no more");
}

#[test]
fn sealed_field_corpus_never_forges_and_round_trips() {
    const KEY: [u8; 32] = [9; 32];
    let files = corpus("sealed_field");
    assert!(files.len() >= 6, "the seed corpus is missing");
    let mut sealed_seeds = 0;
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let Some((&mode, rest)) = data.split_first() else {
            continue;
        };
        if mode & 1 == 0 {
            match open_field(&KEY, &FIELD, rest) {
                Ok(_) => panic!("{}: forged a sealed field", file.display()),
                Err(d1vec::keys::KeyError::Tampered { location }) => {
                    assert!(location.contains("access_token_ct"));
                }
                Err(e) => panic!("{}: unexpected error {e}", file.display()),
            }
            continue;
        }
        sealed_seeds += 1;
        let mut v = [0u8; 4];
        let n = rest.len().min(4);
        v[..n].copy_from_slice(&rest[..n]);
        let version = u32::from_be_bytes(v).max(1);
        let plaintext = &rest[n..];
        let sealed = seal_field(&KEY, version, plaintext).unwrap();
        assert_eq!(sealed[..4], version.to_be_bytes());
        assert_eq!(sealed.len(), 4 + 12 + plaintext.len() + 16);
        assert_eq!(open_field(&KEY, &FIELD, &sealed).unwrap(), plaintext);
        let mut other = FIELD.clone();
        other.row_key = "conn-2";
        assert!(open_field(&KEY, &other, &sealed).is_err());
        assert!(open_field(&[8; 32], &FIELD, &sealed).is_err());
        // Here every byte, not just the one the fuzzer picks.
        for at in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x80;
            assert!(open_field(&KEY, &FIELD, &flipped).is_err(), "byte {at}");
        }
        assert!(open_field(&KEY, &FIELD, &sealed[..sealed.len() - 1]).is_err());
    }
    assert!(sealed_seeds >= 3);
}

#[test]
fn key_file_corpus_parses_consistently() {
    use d1vec::keys::{EnvKey, KeyProvider, MasterKey};
    let files = corpus("key_file");
    assert!(files.len() >= 10, "the seed corpus is missing");
    let (mut files_ok, mut env_ok) = (0, 0);
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let Some((&mode, rest)) = data.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if mode & 1 == 1 {
            match EnvKey::parse(&text) {
                Ok(env) => {
                    assert!(!env.load().unwrap().all().is_empty());
                    env_ok += 1;
                }
                Err(Error::Key(e)) => assert!(!e.to_string().is_empty()),
                Err(e) => panic!("{name}: untyped error {e}"),
            }
            continue;
        }
        match parse_key_file(&text) {
            Ok(keys) => {
                let ids: Vec<_> = keys.all().iter().map(MasterKey::id).collect();
                assert!(!ids.is_empty());
                let again = parse_key_file(&key_file_text(&keys)).unwrap();
                let back: Vec<_> = again.all().iter().map(MasterKey::id).collect();
                assert_eq!(ids, back, "{name}");
                files_ok += 1;
            }
            Err(Error::Key(e)) => {
                let message = e.to_string();
                assert!(message.contains("fuzz.key"), "{name}: {message}");
                // No key material in the message: it names lines, never their contents.
                assert!(!message.contains("AAECAwQF"), "{name}: {message}");
            }
            Err(e) => panic!("{name}: untyped error {e}"),
        }
    }
    // file_one_key, file_two_keys_blank_line, file_crlf; env_one, env_two_spaces.
    assert_eq!((files_ok, env_ok), (3, 2));
}

#[test]
fn wrangler_config_corpus_parses_or_names_the_file() {
    let files = corpus("wrangler_config");
    assert!(files.len() >= 10, "the seed corpus is missing");
    let mut parsed = Vec::new();
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let Some((&mode, rest)) = data.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        let path = Path::new(if mode & 1 == 0 {
            "wrangler.toml"
        } else {
            "wrangler.jsonc"
        });
        let env = (mode & 2 != 0).then_some("staging");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match WranglerConfig::parse(path, &text, env) {
            Ok(config) => {
                let dbs: Vec<(String, Option<String>)> = config
                    .d1_databases
                    .iter()
                    .map(|d| (d.binding.clone(), d.database_name.clone()))
                    .collect();
                parsed.push((name, dbs, config.vectorize.len()));
            }
            Err(Error::WranglerConfig { path: p, reason }) => {
                assert_eq!(p, path, "{name}");
                assert!(!reason.is_empty(), "{name}");
            }
            Err(e) => panic!("{name}: untyped error {e}"),
        }
    }
    let find = |n: &str| parsed.iter().find(|p| p.0 == n).map(|p| (p.1.clone(), p.2));
    let db = |b: &str, n: Option<&str>| (b.to_owned(), n.map(str::to_owned));
    // The same bindings written in TOML and in JSONC read alike.
    for format in ["toml", "jsonc"] {
        assert_eq!(
            find(&format!("{format}_full")),
            Some((vec![db("DB", Some("app-db"))], 1)),
            "{format}"
        );
    }
    assert_eq!(
        find("toml_full_staging"),
        Some((vec![db("DB", Some("app-db-staging"))], 0))
    );
    assert_eq!(find("jsonc_full_staging"), Some((vec![db("DB", None)], 0)));
    for refused in [
        "toml_no_staging",
        "toml_bad_type",
        "toml_unterminated",
        "toml_duplicate_key",
        "jsonc_single_quotes",
        "jsonc_unterminated_comment",
        "jsonc_missing_binding",
        "jsonc_array",
    ] {
        assert_eq!(find(refused), None, "{refused} was accepted");
    }
}

/// The checks of `fuzz/fuzz_targets/http_request.rs` on one input.
pub fn check_http_request(h: &mut d1vec::fuzzing::HttpHarness, data: &[u8], name: &str) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let before = h.database().dump().unwrap();
    let (status, reply) = h.request(usize::from(selector & 0x7f), selector & 0x80 != 0, body);
    assert!(
        (200..500).contains(&status),
        "{name}: status {status}: {reply}"
    );
    let success = reply["success"]
        .as_bool()
        .unwrap_or_else(|| panic!("{name}: not an envelope: {reply}"));
    assert!(
        reply["errors"].is_array() && reply["messages"].is_array(),
        "{name}"
    );
    assert_eq!(success, status == 200, "{name}: {reply}");
    if !success {
        assert_eq!(
            h.database().dump().unwrap(),
            before,
            "{name}: a refused request changed the database"
        );
    }
    success
}

#[test]
fn http_request_corpus_gets_envelopes_and_refusals_change_nothing() {
    let files = corpus("http_request");
    assert!(files.len() >= 30, "the seed corpus is missing");
    let mut h = d1vec::fuzzing::HttpHarness::new().unwrap();
    let mut accepted = 0;
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        accepted += usize::from(check_http_request(&mut h, &data, &name));
    }
    // The seeds hold valid requests of most routes: they must pass, not only fail.
    assert!(accepted >= 15, "only {accepted} seeds were accepted");
}

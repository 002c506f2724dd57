//! `d1vec vectorize …` end to end through the binary: wrangler's command names and flags,
//! the API's JSON on stdout, `{"code", "error"}` on stderr with a non-zero exit, tenant
//! scoping with `--tenant`, and the export → insert round trip. Oracle: the library API on
//! the same database file, and brute-force cosine scores computed here.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::cli::{d1vec, ok_json};
use crate::oracle::cosine;

/// Runs a command that must fail; returns its JSON error from stderr.
#[track_caller]
fn err_json(db: &Path, args: &[&str]) -> Value {
    let out = d1vec(db, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// 30 vectors of 4 dims, with negative values, metadata and two namespaces.
fn vectors() -> Vec<Value> {
    (0..30)
        .map(|i| {
            let a = f64::from(i) * 0.41;
            json!({
                "id": format!("v{i:02}"),
                "values": [a.cos(), a.sin(), -0.5 + f64::from(i % 5) * 0.25, 1.0],
                "namespace": if i % 3 == 0 { "ns-a" } else { "ns-b" },
                "metadata": {"i": i, "kind": if i % 2 == 0 { "even" } else { "odd" }},
            })
        })
        .collect()
}

fn write_ndjson(path: &Path, vs: &[Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for v in vs {
        writeln!(f, "{v}").unwrap();
    }
}

#[test]
fn create_insert_query_and_export_like_wrangler() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let created = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create",
            "docs",
            "--dimensions",
            "4",
            "--metric",
            "cosine",
        ],
    );
    assert_eq!(created["name"], "docs");
    assert_eq!(
        created["config"],
        json!({"dimensions": 4, "metric": "cosine"})
    );
    let dup = err_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create",
            "docs",
            "--dimensions",
            "4",
            "--metric",
            "cosine",
        ],
    );
    assert_eq!(dup["code"], 3002, "{dup}");

    let meta = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create-metadata-index",
            "docs",
            "--property-name",
            "kind",
            "--type",
            "string",
        ],
    );
    assert!(meta["mutationId"].is_string(), "{meta}");
    let file = dir.path().join("in.ndjson");
    let vs = vectors();
    write_ndjson(&file, &vs);
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "insert",
            "docs",
            "--file",
            file.to_str().unwrap(),
            "--batch-size",
            "7",
        ],
    );
    let info = ok_json(&db, &["--json", "vectorize", "info", "docs"]);
    assert_eq!(info["dimensions"], 4);
    assert_eq!(info["vectorCount"], 30);

    // A query with negative numbers, a namespace and a filter, against brute force.
    let q = [-0.3, 0.9, -0.25, 1.0];
    let got = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "docs",
            "--vector",
            "-0.3",
            "0.9",
            "-0.25",
            "1",
            "--top-k",
            "4",
            "--namespace",
            "ns-b",
            "--filter",
            r#"{"kind": "odd"}"#,
            "--return-metadata",
            "all",
        ],
    );
    let mut want: Vec<(f64, String)> = vs
        .iter()
        .filter(|v| v["namespace"] == "ns-b" && v["metadata"]["kind"] == "odd")
        .map(|v| {
            let values: Vec<f64> = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| f64::from(x.as_f64().unwrap() as f32))
                .collect();
            (cosine(&q, &values), v["id"].as_str().unwrap().to_owned())
        })
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(got["count"], 4);
    let matches = got["matches"].as_array().unwrap();
    for (m, (score, id)) in matches.iter().zip(&want) {
        assert_eq!(m["id"], id.as_str());
        assert!(
            (m["score"].as_f64().unwrap() - score).abs() < 1e-5,
            "{m} vs {score}"
        );
        assert_eq!(m["metadata"]["kind"], "odd");
        assert_eq!(m["namespace"], "ns-b");
    }

    // The same vector from a file on stdin; and query by id.
    let mut child = Command::new(env!("CARGO_BIN_EXE_d1vec"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--json",
            "vectorize",
            "query",
            "docs",
        ])
        .args(["--vector-file", "-", "--top-k", "4", "--namespace", "ns-b"])
        .args(["--filter", r#"{"kind": "odd"}"#, "--return-metadata", "all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[-0.3, 0.9, -0.25, 1]")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), got);
    let by_id = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "docs",
            "--vector-id",
            "v05",
            "--top-k",
            "1",
        ],
    );
    assert_eq!(by_id["matches"][0]["id"], "v05");

    // Errors: Vectorize's codes, on stderr, non-zero exit, nothing printed on stdout.
    let e = err_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "docs",
            "--vector",
            "1",
            "2",
            "3",
        ],
    );
    assert_eq!(e["code"], 40006, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("expected 4 dimensions, and got 3"),
        "{e}"
    );
    let e = err_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "docs",
            "--vector",
            "1",
            "0",
            "0",
            "0",
            "--top-k",
            "101",
        ],
    );
    assert_eq!(e["code"], 40025, "{e}");
    let e = err_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "docs",
            "--vector",
            "1",
            "0",
            "0",
            "0",
            "--filter",
            r#"{"i": 3}"#,
        ],
    );
    assert_eq!(e["code"], 40031, "{e}");
    assert!(e["error"].as_str().unwrap().contains('i'), "{e}");
    let ids: Vec<String> = (0..21).map(|i| format!("v{i:02}")).collect();
    let mut args = vec!["--json", "vectorize", "get-vectors", "docs", "--ids"];
    args.extend(ids.iter().map(String::as_str));
    assert_eq!(err_json(&db, &args)["code"], 40007);

    // get / delete / list.
    let got_vs = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "get-vectors",
            "docs",
            "--ids",
            "v03",
            "v01",
            "nope",
        ],
    );
    let got_ids: Vec<&str> = got_vs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(got_ids, ["v03", "v01"]);
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "delete-vectors",
            "docs",
            "--ids",
            "v01",
            "v02",
        ],
    );
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec![
            "--json",
            "vectorize",
            "list-vectors",
            "docs",
            "--count",
            "8",
        ];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = ok_json(&db, &args);
        for v in page["vectors"].as_array().unwrap() {
            listed.push(v["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expect: Vec<String> = (0..30)
        .filter(|&i| i != 1 && i != 2)
        .map(|i| format!("v{i:02}"))
        .collect();
    expect.sort();
    listed.sort();
    assert_eq!(listed, expect);

    // export → insert into a fresh index gives the same answers.
    let out = dir.path().join("out.ndjson");
    let out_s = out.to_str().unwrap();
    d1vec(&db, &["vectorize", "compact", "docs"]);
    assert!(
        d1vec(&db, &["vectorize", "export", "docs", "--output", out_s])
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 28);
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create",
            "copy",
            "--dimensions",
            "4",
            "--metric",
            "cosine",
        ],
    );
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create-metadata-index",
            "copy",
            "--property-name",
            "kind",
            "--type",
            "string",
        ],
    );
    ok_json(
        &db,
        &["--json", "vectorize", "insert", "copy", "--file", out_s],
    );
    let q_args = |name: &'static str| {
        vec![
            "--json",
            "vectorize",
            "query",
            name,
            "--vector",
            "0.2",
            "-1",
            "0.5",
            "1",
            "--top-k",
            "10",
            "--filter",
            r#"{"kind": {"$ne": "even"}}"#,
            "--return-values",
            "--return-metadata",
            "all",
        ]
    };
    assert_eq!(ok_json(&db, &q_args("docs")), ok_json(&db, &q_args("copy")));
}

#[test]
fn tenant_sessions_confine_private_indexes_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let setup = ok_json(&db, &["--json", "d1", "migrations", "apply"]);
    assert_eq!(
        setup["indexes_created"],
        json!(["nds-brand-voice", "nds-skills", "nds-knowledge"])
    );
    let listed = ok_json(&db, &["--json", "vectorize", "list"]);
    let dims: Vec<(String, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["config"]["dimensions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(dims.contains(&("nds-skills".into(), 1024)), "{dims:?}");
    assert!(dims.contains(&("nds-knowledge".into(), 1536)), "{dims:?}");
    ok_json(
        &db,
        &[
            "--json",
            "d1",
            "execute",
            "--command",
            "INSERT INTO tenants (tenant_id, name) VALUES ('acme','A'), ('beta','B')",
        ],
    );
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create",
            "notes",
            "--dimensions",
            "2",
            "--metric",
            "euclidean",
            "--scope",
            "private",
        ],
    );
    let file = dir.path().join("a.ndjson");
    write_ndjson(
        &file,
        &[
            json!({"id": "a1", "values": [1.0, 0.0]}),
            json!({"id": "a2", "values": [0.0, 1.0]}),
        ],
    );
    ok_json(
        &db,
        &[
            "--json",
            "--tenant",
            "acme",
            "vectorize",
            "insert",
            "notes",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    write_ndjson(&file, &[json!({"id": "b1", "values": [1.0, 0.1]})]);
    ok_json(
        &db,
        &[
            "--json",
            "--tenant",
            "beta",
            "vectorize",
            "insert",
            "notes",
            "--file",
            file.to_str().unwrap(),
        ],
    );

    let q = |tenant: &str| {
        ok_json(
            &db,
            &[
                "--json",
                "--tenant",
                tenant,
                "vectorize",
                "query",
                "notes",
                "--vector",
                "1",
                "0",
                "--top-k",
                "10",
            ],
        )
    };
    let ids = |v: &Value| -> Vec<String> {
        v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&q("acme")), ["a1", "a2"]);
    assert_eq!(ids(&q("beta")), ["b1"]);
    // Another tenant's ids behave as missing; another namespace is a violation.
    let got = ok_json(
        &db,
        &[
            "--json",
            "--tenant",
            "beta",
            "vectorize",
            "get-vectors",
            "notes",
            "--ids",
            "a1",
            "b1",
        ],
    );
    assert_eq!(got.as_array().unwrap().len(), 1);
    let e = err_json(
        &db,
        &[
            "--json",
            "--tenant",
            "beta",
            "vectorize",
            "query",
            "notes",
            "--vector",
            "1",
            "0",
            "--namespace",
            "acme",
        ],
    );
    assert_eq!(e["code"], 403, "{e}");
    let e = err_json(
        &db,
        &["--json", "--tenant", "beta", "vectorize", "delete", "notes"],
    );
    assert_eq!(e["code"], 403, "{e}");
    // The admin sees everyone's vectors, each in its tenant's namespace.
    let all = ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "query",
            "notes",
            "--vector",
            "1",
            "0",
            "--top-k",
            "10",
            "--return-metadata",
            "none",
        ],
    );
    assert_eq!(ids(&all), ["a1", "b1", "a2"]);
    assert_eq!(all["matches"][1]["namespace"], "beta");
}

#[test]
fn a_cursor_that_starts_with_a_hyphen_reaches_the_cursor_check() {
    // base64url cursors may start with `-`: the argument parser must pass it on as the
    // cursor's value, and the cursor check must answer (here: not one d1vec issued).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    ok_json(
        &db,
        &[
            "--json",
            "vectorize",
            "create",
            "docs",
            "--dimensions",
            "2",
            "--metric",
            "cosine",
        ],
    );
    let err = err_json(
        &db,
        &[
            "--json",
            "vectorize",
            "list-vectors",
            "docs",
            "--cursor",
            "-tRspY4shV4x2Aj1FXGehrKObjbqaQoKzZjXtwLysLQBAbHnEmsAAAAAJyhX4RJWhEuj",
        ],
    );
    assert_eq!(err["code"], 40026, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("invalid cursor"),
        "{err}"
    );
}

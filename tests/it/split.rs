//! The SQL script splitter against SQLite itself.
//!
//! Scripts come from a small grammar whose statements hide `;`, quotes and comment openers in
//! strings, quoted names and comments, and include triggers with multi-statement bodies and
//! `CASE … END`. Two oracles: the splitter must return exactly the generated statements, and
//! running those one at a time must leave the same database as SQLite running the whole script.

use d1vec::sql::split::{leading_keyword, split_statements};
use proptest::prelude::*;
use rusqlite::types::Value;
use rusqlite::Connection;

/// Table names, each quoted a different way and hiding a `;` or comment opener.
const TABLES: [&str; 4] = ["t0", "\"t;1 --x\"", "[t/*2;]", "`t'3;`"];

/// Columns of every table; `begin` and `end` are keywords SQLite also accepts as names.
const COLUMNS: &str = "(a, begin_date, legend, begin, end)";

/// How keywords are spelled in one statement.
#[derive(Debug, Clone, Copy)]
enum Case {
    Upper,
    Lower,
    Mixed,
}

fn kw(word: &str, case: Case) -> String {
    match case {
        Case::Upper => word.to_ascii_uppercase(),
        Case::Lower => word.to_ascii_lowercase(),
        Case::Mixed => word
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Case::Upper), Just(Case::Lower), Just(Case::Mixed)]
}

/// Text made of pieces that trouble a naive splitter.
fn tricky_text(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pieces), 0..6).prop_map(|v| v.concat())
}

fn string_literal() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &[
        ";",
        "''",
        "\"",
        "`",
        "[",
        "]",
        "--",
        "/*",
        "*/",
        "BEGIN",
        "END;",
        "CASE",
        "begin transaction;",
        "commit;",
        " ",
        "\n",
        "x",
        "é",
    ];
    tricky_text(PIECES).prop_map(|s| format!("'{s}'"))
}

/// A comment (block or line, the latter with its newline) holding no comment terminator.
fn comment() -> impl Strategy<Value = String> {
    const LINE: &[&str] = &[
        ";", "'", "\"", "`", "[", "BEGIN", "END", "/*", "*/", " ", "x",
    ];
    const BLOCK: &[&str] = &[
        ";", "'", "\"", "`", "[", "BEGIN", "END", "CASE", "*", "--", " ", "\n", "x",
    ];
    prop_oneof![
        tricky_text(LINE).prop_map(|s| format!("--{s}\n")),
        tricky_text(BLOCK).prop_map(|s| format!("/*{s}*/")),
    ]
}

/// Whitespace and comments between tokens.
fn gap() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(&[" ", "\n", "\t", "  \n "][..]).prop_map(String::from),
            1 => comment(),
        ],
        0..3,
    )
    .prop_map(|v| v.concat())
}

/// A comment inside a statement, or nothing; always surrounded by a space so tokens stay apart.
fn inner_comment() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(" ".to_string()),
        1 => comment().prop_map(|c| format!(" {c} ")),
    ]
}

/// A value expression: a literal, a number, NULL or a CASE.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => string_literal(),
        1 => (-5i64..100).prop_map(|n| n.to_string()),
        1 => Just("NULL".to_string()),
        1 => (string_literal(), string_literal())
            .prop_map(|(a, b)| format!("CASE WHEN {a} IS NULL THEN {b} ELSE {a} END")),
    ]
}

/// One statement inside a trigger body; `row` is `new` or `old`, `target` a table name.
fn body_statement(row: &'static str, target: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        (value(), value()).prop_map(move |(v, w)| format!(
            "INSERT INTO {target} (a, begin_date, legend) VALUES ({row}.a, {v}, \
             CASE WHEN {row}.legend IS NULL THEN {w} ELSE {row}.legend END)"
        )),
        // Ends in `END` right before the body's `;`.
        (value(), value(), value()).prop_map(move |(v, w, x)| format!(
            "UPDATE {target} SET begin_date = {v}, legend = CASE WHEN {row}.a IS NULL THEN {w} ELSE {x} END"
        )),
        value().prop_map(move |v| format!("DELETE FROM {target} WHERE begin_date = {v}")),
        value().prop_map(move |v| format!(
            "UPDATE {target} SET end = {row}.begin, begin = {v} WHERE end IS NOT {row}.end"
        )),
        (value(), value()).prop_map(|(v, w)| format!("SELECT CASE WHEN 1 THEN {v} ELSE {w} END")),
    ]
}

/// A generated top-level statement (rendered later, once its trigger name is known).
#[derive(Debug, Clone)]
enum Stmt {
    Insert {
        table: usize,
        values: [String; 3],
        comment: String,
        case: Case,
    },
    Update {
        table: usize,
        literal: String,
        value: String,
        case: Case,
    },
    Delete {
        table: usize,
        value: String,
        comment: String,
        case: Case,
    },
    Trigger(Trigger),
}

#[derive(Debug, Clone)]
struct Trigger {
    table: usize,
    temp: bool,
    /// `(event, row)`: `INSERT`/`new`, `DELETE`/`old` or `UPDATE OF legend`/`new`.
    event: (&'static str, &'static str),
    when: Option<String>,
    body: Vec<String>,
    comment: String,
    case: Case,
}

fn trigger() -> impl Strategy<Value = Stmt> {
    // A trigger on table i writes only to tables after i, so triggers never chain back.
    (0..TABLES.len() - 1, case(), any::<bool>())
        .prop_flat_map(|(table, case, temp)| {
            let event = prop::sample::select(
                &[
                    ("INSERT", "new"),
                    ("DELETE", "old"),
                    ("UPDATE OF legend", "new"),
                ][..],
            );
            (Just(table), Just(case), Just(temp), event)
        })
        .prop_flat_map(|(table, case, temp, event)| {
            let row = event.1;
            let targets: Vec<&'static str> = TABLES[table + 1..].to_vec();
            let statement = prop::sample::select(targets)
                .prop_flat_map(move |target| body_statement(row, target));
            let when = prop::option::of(prop_oneof![
                string_literal()
                    .prop_map(move |s| format!("CASE WHEN {row}.legend = {s} THEN 0 ELSE 1 END")),
                string_literal().prop_map(move |s| format!("{row}.begin_date IS NOT {s}")),
                // `end` and `begin` after a dot are names, not keywords.
                string_literal().prop_map(move |s| format!(
                    "CASE {row}.end WHEN {s} THEN 0 ELSE {row}.begin END"
                )),
                // A bare `begin` inside a CASE of the header does not open the body.
                string_literal().prop_map(move |s| format!(
                    "(SELECT count(*) FROM {} WHERE CASE WHEN a IS NULL THEN begin END IS {s}) = 0",
                    TABLES[TABLES.len() - 1]
                )),
            ]);
            (
                Just(table),
                Just(case),
                Just(temp),
                Just(event),
                when,
                prop::collection::vec(statement, 1..4),
                inner_comment(),
            )
        })
        .prop_map(|(table, case, temp, event, when, body, comment)| {
            Stmt::Trigger(Trigger {
                table,
                temp,
                event,
                when,
                body,
                comment,
                case,
            })
        })
}

fn statement() -> impl Strategy<Value = Stmt> {
    let table = 0..TABLES.len();
    prop_oneof![
        3 => (table.clone(), value(), value(), value(), inner_comment(), case()).prop_map(
            |(table, a, b, c, comment, case)| Stmt::Insert { table, values: [a, b, c], comment, case }
        ),
        1 => (table.clone(), string_literal(), value(), case())
            .prop_map(|(table, literal, value, case)| Stmt::Update { table, literal, value, case }),
        1 => (table, value(), inner_comment(), case())
            .prop_map(|(table, value, comment, case)| Stmt::Delete { table, value, comment, case }),
        2 => trigger(),
    ]
}

impl Stmt {
    fn render(&self, index: usize) -> String {
        match self {
            Stmt::Insert {
                table,
                values: [a, b, c],
                comment,
                case,
            } => format!(
                "{} {}{comment}{} (a, begin_date, legend) {} ({a}, {b}, {c})",
                kw("INSERT", *case),
                kw("INTO", *case),
                TABLES[*table],
                kw("VALUES", *case),
            ),
            Stmt::Update {
                table,
                literal,
                value,
                case,
            } => format!(
                "{} {} {} legend = {literal} {} a IS {value}",
                kw("UPDATE", *case),
                TABLES[*table],
                kw("SET", *case),
                kw("WHERE", *case),
            ),
            Stmt::Delete {
                table,
                value,
                comment,
                case,
            } => format!(
                "{} {} {}{comment}{} legend = {value}",
                kw("DELETE", *case),
                kw("FROM", *case),
                TABLES[*table],
                kw("WHERE", *case),
            ),
            Stmt::Trigger(t) => {
                let c = t.case;
                let temp = if t.temp {
                    format!("{} ", kw("TEMP", c))
                } else {
                    String::new()
                };
                let when = match &t.when {
                    Some(w) => format!("{} {w}\n", kw("WHEN", c)),
                    None => String::new(),
                };
                let body: String = t.body.iter().map(|s| format!("  {s};\n")).collect();
                format!(
                    "{} {temp}{} tr{index} {} {} {} {} {} {} {}\n{when}{}{}\n{body}{}",
                    kw("CREATE", c),
                    kw("TRIGGER", c),
                    kw("AFTER", c),
                    t.event.0,
                    kw("ON", c),
                    TABLES[t.table],
                    kw("FOR", c),
                    kw("EACH", c),
                    kw("ROW", c),
                    kw("BEGIN", c),
                    t.comment,
                    kw("END", c),
                )
            }
        }
    }
}

/// A whole script plus the statements the splitter must find in it.
#[derive(Debug)]
struct Script {
    text: String,
    statements: Vec<String>,
}

fn script() -> impl Strategy<Value = Script> {
    let wrap = prop::option::of(prop::sample::select(
        &[
            ("BEGIN TRANSACTION", "COMMIT"),
            ("begin", "end"),
            ("Begin Transaction", "END TRANSACTION"),
            ("BEGIN IMMEDIATE", "commit transaction"),
        ][..],
    ));
    (
        prop::collection::vec(case(), TABLES.len()),
        prop::collection::vec((statement(), gap(), gap()), 0..10),
        gap(),
        any::<bool>(),
        wrap,
    )
        .prop_map(|(create_cases, stmts, lead, final_semi, wrap)| {
            let mut statements: Vec<String> = TABLES
                .iter()
                .zip(create_cases)
                .map(|(t, c)| format!("{} {} {t}{COLUMNS}", kw("CREATE", c), kw("TABLE", c)))
                .collect();
            let mut text = lead;
            if let Some((open, _)) = wrap {
                text.push_str(open);
                text.push_str(";\n");
            }
            for s in &statements {
                text.push_str(s);
                text.push_str(";\n");
            }
            let count = stmts.len();
            for (i, (stmt, before, after)) in stmts.into_iter().enumerate() {
                let rendered = stmt.render(i);
                text.push_str(&rendered);
                text.push_str(&before);
                if i + 1 < count || final_semi || wrap.is_some() {
                    text.push(';');
                }
                text.push_str(&after);
                statements.push(rendered);
            }
            if let Some((_, close)) = wrap {
                // Separate from a possible line comment with a newline.
                text.push('\n');
                text.push_str(close);
                text.push(';');
            }
            Script { text, statements }
        })
}

/// Everything a script can change: both schema tables and every row of every table.
fn snapshot(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for schema in ["sqlite_schema", "sqlite_temp_schema"] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT type, name, tbl_name, sql FROM {schema} ORDER BY type, name"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{schema}: {:?}",
                    (0..4)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<Result<Vec<_>, _>>()?
                ))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut stmt = conn
            .prepare(&format!("SELECT rowid, * FROM {quoted} ORDER BY rowid"))
            .unwrap();
        let width = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{table}: {:?}",
                    (0..width)
                        .map(|i| r.get::<_, Value>(i))
                        .collect::<Result<Vec<_>, _>>()?
                ))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn split_matches_the_generated_statements_and_sqlite(script in script()) {
        let got = split_statements(&script.text).unwrap();
        prop_assert_eq!(&got, &script.statements, "script:\n{}", script.text);

        let whole = Connection::open_in_memory().unwrap();
        whole.execute_batch(&script.text).unwrap();

        // `execute` refuses a piece holding two statements, so a missed split fails here too.
        let pieces = Connection::open_in_memory().unwrap();
        for piece in &got {
            if let Err(e) = pieces.execute(piece, []) {
                panic!("piece failed: {e}\n{piece}\nscript:\n{}", script.text);
            }
        }
        prop_assert_eq!(snapshot(&pieces), snapshot(&whole), "script:\n{}", script.text);
    }
}

/// The idempotence oracle shared with the fuzz target: splitting the re-joined statements gives
/// them back unchanged.
#[track_caller]
fn check_rejoin(sql: &str) {
    let Ok(statements) = split_statements(sql) else {
        return;
    };
    for s in &statements {
        assert!(
            !s.is_empty() && !s.ends_with(';'),
            "bad statement {s:?} from {sql:?}"
        );
        assert_eq!(
            s.trim_matches([' ', '\t', '\n', '\r', '\x0c']),
            s,
            "untrimmed {s:?}"
        );
        let _ = leading_keyword(s);
    }
    let again = split_statements(&statements.join(";\n"));
    assert_eq!(again.as_ref(), Ok(&statements), "rejoin of {sql:?}");
}

#[test]
fn fuzz_corpus_replays_and_rejoins() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sql_split");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let sql = String::from_utf8_lossy(&bytes);
        check_rejoin(&sql);
        seen += 1;
    }
    assert!(seen >= 10, "expected the seed corpus in {}", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text over the splitter's special characters: never a panic, always idempotent.
    #[test]
    fn arbitrary_text_rejoins(sql in prop::collection::vec(prop::sample::select(&[
        ";", "'", "\"", "`", "[", "]", "-", "/", "*", "\n", "\r\n", "\r", " ", ".", ":", "$", "1", "é",
        "BEGIN", "end", "Case", "CREATE", "TEMP", "TRIGGER", "COMMIT", "x", "_", "select",
    ][..]), 0..40).prop_map(|v| v.concat())) {
        check_rejoin(&sql);
    }
}

#[test]
fn a_sqlite_dump_runs_the_same_split_or_whole() {
    // Shaped like `sqlite3 .dump` output, with a trigger whose body holds CASE … END.
    let dump = "PRAGMA foreign_keys=OFF;\r\nBEGIN TRANSACTION;\r\n\
        CREATE TABLE t(a INTEGER PRIMARY KEY, legend TEXT);\r\n\
        INSERT INTO t VALUES(1,'a;b');\r\n\
        CREATE TABLE log(x);\r\n\
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN\r\n  \
          INSERT INTO log VALUES(CASE WHEN new.legend LIKE '%;%' THEN 'semi' ELSE 'plain' END);\r\n\
        END;\r\n\
        INSERT INTO t VALUES(2,'c');\r\n\
        INSERT INTO t VALUES(3,'d;e');\r\n\
        COMMIT;\r\n";
    let got = split_statements(dump).unwrap();
    assert_eq!(got.len(), 7);
    assert_eq!(leading_keyword(&got[4]).as_deref(), Some("CREATE"));
    let whole = Connection::open_in_memory().unwrap();
    whole.execute_batch(dump).unwrap();
    let pieces = Connection::open_in_memory().unwrap();
    for piece in &got {
        pieces.execute(piece, []).unwrap();
    }
    // The schema keeps each CREATE's text: the whole script stored it with CRLF, the pieces with
    // LF, and nothing else may differ.
    let whole: Vec<String> = snapshot(&whole)
        .iter()
        .map(|s| s.replace("\\r\\n", "\\n"))
        .collect();
    assert_eq!(snapshot(&pieces), whole);
    assert!(
        whole.iter().any(|s| s.contains("\"semi\"")),
        "the trigger fired: {whole:?}"
    );
}

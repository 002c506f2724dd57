//! Fuzzes the metadata filter parser: on any input it must not panic and must answer the same
//! way twice; an accepted filter must serialise back to itself (when that still fits the size
//! limit), and its SQL, with every property given a metadata index, must prepare and run on
//! the vector tables (no rows: they are empty).
#![no_main]

use d1vec::vectorize::filter::{
    candidate_sql, count_sql, parse_filter_text, IndexType, MAX_FILTER_BYTES,
};
use d1vec::Database;
use libfuzzer_sys::fuzz_target;

/// The vector tables of the design note.
const TABLES: &str = "
CREATE TABLE d1vec_vectors (index_id INTEGER NOT NULL, vid INTEGER NOT NULL, id TEXT NOT NULL,
  namespace TEXT, vals BLOB NOT NULL, metadata TEXT, seq INTEGER NOT NULL,
  PRIMARY KEY (index_id, vid));
CREATE INDEX d1vec_vectors_ns ON d1vec_vectors (index_id, namespace, vid);
CREATE TABLE d1vec_meta_values (index_id INTEGER NOT NULL, property TEXT NOT NULL,
  vid INTEGER NOT NULL, val, PRIMARY KEY (index_id, property, vid));
CREATE INDEX d1vec_meta_values_val ON d1vec_meta_values (index_id, property, val, vid);
";

thread_local! {
    static DB: Database = {
        let db = Database::open_in_memory().expect("in-memory database");
        db.exec(TABLES).expect("vector tables");
        db
    };
}

/// A type per property that varies with the property, so every type's SQL is exercised.
fn type_of(property: &str) -> Option<IndexType> {
    Some(match property.len() % 3 {
        0 => IndexType::String,
        1 => IndexType::Number,
        _ => IndexType::Boolean,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = parse_filter_text(text);
    assert_eq!(parse_filter_text(text), first, "not deterministic: {text:?}");
    let filter = match first {
        Ok(filter) => filter,
        Err(e) => {
            assert!(e.path.starts_with("filter"), "bad path in {e}");
            return;
        }
    };
    let again = filter.to_json().to_string();
    if again.len() < MAX_FILTER_BYTES {
        assert_eq!(parse_filter_text(&again).as_ref(), Ok(&filter), "round trip of {text:?}");
    }
    for namespace in [None, Some("ns")] {
        let q = candidate_sql(1, namespace, Some(&filter), &type_of).expect("all indexed");
        let c = count_sql(1, namespace, Some(&filter), &type_of).expect("all indexed");
        DB.with(|db| {
            for (sql, params) in [(&q.sql, q.d1_params()), (&c.sql, c.d1_params())] {
                let n = params.len();
                match db.prepare(sql).bind(params).raw(false) {
                    Ok(rows) => {
                        assert!(n <= d1vec::sql::MAX_BOUND_PARAMETERS);
                        let empty = rows.is_empty()
                            || (rows.len() == 1 && rows[0].len() == 1 && rows[0][0].as_i64() == Some(0));
                        assert!(empty, "rows {rows:?} from {sql}");
                    }
                    // The statement prepared; D1's 100-parameter cap refused to bind it.
                    Err(d1vec::Error::LimitExceeded { .. }) => {
                        assert!(n > d1vec::sql::MAX_BOUND_PARAMETERS, "{sql}")
                    }
                    Err(e) => panic!("{e}: {sql}"),
                }
            }
        });
    }
});

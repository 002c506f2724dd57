//! The committed demo dataset against its generator.

use std::path::Path;

use d1vec::demo::{archive, DEMO_SEED};

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(archive::COMMITTED_PATH)
}

#[test]
fn committed_dataset_is_the_generators_output() {
    let committed = archive::read_sql_gz(&committed_path()).unwrap();
    let generated = archive::committed_dataset().to_sql();
    if committed != generated {
        let at = committed
            .bytes()
            .zip(generated.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.len().min(generated.len()));
        panic!(
            "{} differs from generate({DEMO_SEED}, Scale::Demo).to_sql() at byte {at} \
             (lengths {} and {}); regenerate it with `cargo test --release --test it \
             demo_tour::regenerate_committed_dataset -- --ignored`",
            archive::COMMITTED_PATH,
            committed.len(),
            generated.len()
        );
    }
}

/// Rewrites the committed file from the generator.
#[test]
#[ignore = "rewrites data/demo-seed42.sql.gz"]
fn regenerate_committed_dataset() {
    let path = committed_path();
    let file = std::fs::File::create(&path).unwrap();
    archive::write_sql_gz(&archive::committed_dataset(), std::io::BufWriter::new(file)).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!("wrote {} ({size} bytes)", path.display());
}

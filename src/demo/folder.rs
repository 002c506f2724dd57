//! The demo's folder: made fresh on every run, and never a folder that is not the demo's.
//!
//! A demo folder holds a marker file, [`MARKER`], and what the demo writes: the database
//! file, its WAL and shared-memory files, and its vector segment folder. [`reset`] empties
//! such a folder of exactly those entries (anything else a user put there is left alone),
//! makes a missing or empty folder a demo folder, and refuses any other folder, so a
//! mistyped `--dir` can never delete someone's files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The marker file that makes a folder a demo folder.
pub const MARKER: &str = ".d1vec-demo";

/// The database file's name inside the folder.
pub const DB_FILE: &str = "db.sqlite";

/// What the demo writes in its folder besides the marker, all derived from [`DB_FILE`].
const OWNED: &[&str] = &[
    "db.sqlite",
    "db.sqlite-wal",
    "db.sqlite-shm",
    "db.sqlite-journal",
    "db.sqlite.vectors",
];

/// Makes `dir` an empty demo folder (creating it if missing) and returns the path of the
/// database file to open in it.
///
/// Refused, with nothing deleted: a path that exists and is not a folder, and a folder that
/// has entries but no [`MARKER`] file.
pub fn reset(dir: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        Err(e) => return Err(Error::io(dir)(e)),
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::invalid(
                "demo folder",
                format!(
                    "{} exists and is not a folder; give --dir a folder path",
                    dir.display()
                ),
            ))
        }
        Ok(_) => {
            let marked = dir.join(MARKER).is_file();
            if !marked && !is_empty(dir)? {
                return Err(Error::invalid(
                    "demo folder",
                    format!(
                        "{} is not empty and is not a d1vec demo folder (it has no {MARKER} \
                         file), so the demo will not delete anything in it; choose another \
                         --dir or empty this folder",
                        dir.display()
                    ),
                ));
            }
            for name in OWNED {
                remove_entry(&dir.join(name))?;
            }
        }
    }
    let marker = dir.join(MARKER);
    std::fs::write(
        &marker,
        "This folder is rebuilt by `d1vec demo`: its database and vector files are deleted \
         on every run.\n",
    )
    .map_err(Error::io(&marker))?;
    Ok(dir.join(DB_FILE))
}

fn is_empty(dir: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    Ok(entries.next().is_none())
}

/// Removes a file, a symbolic link (not its target) or a folder tree; a missing entry is fine.
fn remove_entry(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path)(e)),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(Error::io(path))
    } else {
        std::fs::remove_file(path).map_err(Error::io(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_foreign_folder_and_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("thesis.tex"), "mine").unwrap();
        std::fs::write(dir.path().join("db.sqlite"), "mine too").unwrap();
        let err = reset(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a d1vec demo folder"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("db.sqlite")).unwrap(),
            "mine too"
        );
        assert!(!dir.path().join(MARKER).exists());
    }

    #[test]
    fn refuses_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        assert!(reset(&file).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn empties_its_own_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let demo = dir.path().join("d1vec-demo");
        let db = reset(&demo).unwrap();
        assert_eq!(db, demo.join(DB_FILE));
        std::fs::write(&db, "old").unwrap();
        std::fs::create_dir_all(demo.join("db.sqlite.vectors/1")).unwrap();
        std::fs::write(demo.join("db.sqlite.vectors/1/seg"), "old").unwrap();
        std::fs::write(demo.join("keep.txt"), "user's").unwrap();
        reset(&demo).unwrap();
        assert!(!db.exists());
        assert!(!demo.join("db.sqlite.vectors").exists());
        assert!(demo.join(MARKER).is_file());
        assert_eq!(
            std::fs::read_to_string(demo.join("keep.txt")).unwrap(),
            "user's"
        );
    }
}

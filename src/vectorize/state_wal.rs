//! Whether any connection committed to the database since a moment, without asking SQLite:
//! the WAL-index header in the `<db>-shm` file (<https://www.sqlite.org/walformat.html>).
//!
//! The header is two copies of a 48-byte structure at offsets 0 and 48, in the machine's
//! byte order: `iVersion`, unused, `iChange` (incremented by every commit), `isInit`,
//! `bigEndCksum`, `szPage`, `mxFrame` (the last committed frame of the WAL), `nPage`,
//! `aFrameCksum[2]`, `aSalt[2]` (the WAL's salts: salt-1 is incremented and salt-2 drawn at
//! random at every WAL restart), `aCksum[2]` (a checksum of the first 40 bytes). A writer
//! commits by writing copy 1, a memory barrier, then copy 0 (wal.c `walIndexWriteHdr`);
//! SQLite's own readers read copy 0, a barrier, copy 1, and trust the header only if both
//! are equal, initialised and their checksum matches. [`WalWatch::stamp`] does the same and
//! returns `(iChange, mxFrame, salt-1, salt-2)`; any other outcome is `None` (the caller
//! then asks SQLite). ARCHITECTURE.md ("Knowing the state is current") gives the argument
//! that an unchanged stamp means no transaction committed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What identifies the database's committed content between two readings of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalStamp {
    /// `iChange`: incremented by every commit.
    pub change: u32,
    /// `mxFrame`: the last committed frame.
    pub max_frame: u32,
    /// `aSalt`: the WAL generation (changed by every restart of the WAL).
    pub salt: [u32; 2],
}

/// One header copy.
const HEADER: usize = 48;

/// The `<db>-shm` file, opened on first use and read with `pread`.
///
/// It used to be memory-mapped. A map of a file that another process truncates raises
/// SIGBUS on the next read, which kills the process without a word; SQLite truncates the
/// `-shm` file when a first connection opens it. A `pread` of a truncated file returns
/// short instead, which is "no stamp" (the caller asks SQLite).
#[derive(Debug)]
pub(crate) struct WalWatch {
    path: PathBuf,
    file: OnceLock<std::fs::File>,
}

impl WalWatch {
    /// Watches the WAL index of the database file `db`.
    pub fn new(db: &Path) -> WalWatch {
        let mut name = db.as_os_str().to_owned();
        name.push("-shm");
        WalWatch {
            path: PathBuf::from(name),
            file: OnceLock::new(),
        }
    }

    /// The header's stamp now, or `None` when there is no consistent header to read (no
    /// `-shm` file yet, too short, the two copies differ because a commit is writing them,
    /// not initialised, or a checksum mismatch).
    pub fn stamp(&self) -> Option<WalStamp> {
        let file = match self.file.get() {
            Some(file) => file,
            None => {
                let file = std::fs::File::open(&self.path).ok()?;
                let _ = self.file.set(file);
                self.file.get()?
            }
        };
        // Both copies in one read (front to back: copy 0, then copy 1, as SQLite's readers
        // read them; a writer writes copy 1, a barrier, then copy 0): a read torn by a
        // commit shows as two different copies.
        let [first, second] = read_copies(file)?;
        if first != second {
            return None;
        }
        parse(&first)
    }
}

/// Reads the two 48-byte header copies at the start of the file in one `pread`; `None`
/// when the file is shorter.
fn read_copies(file: &std::fs::File) -> Option<[[u32; 12]; 2]> {
    let mut bytes = [0u8; 2 * HEADER];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, 0).ok()?;
    // Elsewhere there is no stamp, and every query takes the snapshot path.
    #[cfg(not(unix))]
    {
        let _ = file;
        return None;
    }
    let mut out = [[0u32; 12]; 2];
    for (word, chunk) in out.iter_mut().flatten().zip(bytes.chunks_exact(4)) {
        *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(out)
}

/// The stamp of a header copy, if it is initialised and its checksum matches.
fn parse(words: &[u32; 12]) -> Option<WalStamp> {
    // Word 3 holds isInit (byte 12), bigEndCksum (13) and szPage (14..16), in memory order.
    let is_init = words[3].to_ne_bytes()[0];
    if is_init != 1 {
        return None;
    }
    if checksum(&words[..10]) != [words[10], words[11]] {
        return None;
    }
    Some(WalStamp {
        change: words[2],
        max_frame: words[4],
        salt: [words[8], words[9]],
    })
}

/// wal.c's `walChecksumBytes` in native byte order over pairs of words.
fn checksum(words: &[u32]) -> [u32; 2] {
    let (mut s1, mut s2) = (0u32, 0u32);
    for pair in words.chunks_exact(2) {
        s1 = s1.wrapping_add(pair[0]).wrapping_add(s2);
        s2 = s2.wrapping_add(pair[1]).wrapping_add(s1);
    }
    [s1, s2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_wal(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode = wal", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        c
    }

    #[test]
    fn every_commit_moves_the_stamp_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        let a = open_wal(&path);
        let b = open_wal(&path);
        a.execute_batch("CREATE TABLE t (x)").unwrap();
        let watch = WalWatch::new(&path);
        let mut last = watch.stamp().expect("a WAL database has a header");
        for i in 0..50 {
            // A commit of either connection moves it.
            let conn = if i % 2 == 0 { &a } else { &b };
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let now = watch.stamp().unwrap();
            assert_ne!(now, last, "commit {i} left the stamp as it was");
            last = now;
            // Reads, and a rolled-back write, do not.
            let _: i64 = b
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            a.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (0); ROLLBACK")
                .unwrap();
            assert_eq!(watch.stamp().unwrap(), last);
        }
        // A checkpoint that restarts the WAL changes the stamp or nothing: the next commit
        // starts a new WAL generation (new salts) and still moves it.
        a.execute_batch("PRAGMA wal_checkpoint(RESTART)").unwrap();
        let after_checkpoint = watch.stamp().unwrap();
        a.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_ne!(watch.stamp().unwrap(), after_checkpoint);
        a.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let truncated = watch.stamp().unwrap();
        b.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_ne!(watch.stamp().unwrap(), truncated);
    }

    #[test]
    fn no_file_or_a_damaged_header_is_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sqlite");
        assert_eq!(WalWatch::new(&path).stamp(), None);
        let mut words = [0u32; 12];
        assert_eq!(parse(&words), None, "not initialised");
        words[3] = u32::from_ne_bytes([1, 0, 0, 16]);
        words[2] = 7;
        let sum = checksum(&words[..10]);
        words[10] = sum[0];
        words[11] = sum[1];
        assert_eq!(parse(&words).unwrap().change, 7);
        words[4] ^= 1;
        assert_eq!(parse(&words), None, "checksum mismatch");
    }
}

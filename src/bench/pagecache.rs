//! The operating system's page cache, for measuring a first answer with the index's files
//! evicted: which files a database has, how much of each is resident, and dropping them.
//!
//! Eviction is best effort and Linux-only: each file is `fsync`ed (dirty pages cannot be
//! dropped), then `posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)` asks the kernel to drop its
//! clean cached pages. Pages another process holds mapped and locked may stay; that is why
//! [`resident_bytes`] (`mincore` over a fresh read-only map) reports what actually left. On
//! other systems both calls return an `Unsupported` I/O error and the harness reports that.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Every file of a database at `db`: the file itself, its `-wal`, `-shm` and `-journal`
/// when present, and every file under `<db>.vectors/` (recursively), sorted by path.
pub fn database_files(db: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let with_suffix = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = with_suffix(suffix);
        if p.is_file() {
            out.push(p);
        }
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    walk(&with_suffix(".vectors"), &mut out);
    out.sort();
    out
}

/// What eviction did to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evicted {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub bytes: u64,
    /// Bytes of it in the page cache before (`None` when `mincore` failed).
    pub resident_before: Option<u64>,
    /// Bytes of it in the page cache after (`None` when `mincore` failed).
    pub resident_after: Option<u64>,
    /// `None` when fsync and fadvise succeeded, else the error's text.
    pub error: Option<String>,
}

/// Syncs and evicts each of `files`, reporting residency before and after per file.
pub fn evict_all(files: &[PathBuf]) -> Vec<Evicted> {
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let resident_before = resident_bytes(path).ok();
            let error = evict(path).err().map(|e| e.to_string());
            Evicted {
                path: path.clone(),
                bytes,
                resident_before,
                resident_after: resident_bytes(path).ok(),
                error,
            }
        })
        .collect()
}

/// Syncs `path` to disk, then asks the kernel to drop its cached pages.
pub fn evict(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // fsync works on a read-only descriptor on Linux; dirty pages would otherwise stay.
    file.sync_all()?;
    fadvise_dontneed(&file)
}

#[cfg(target_os = "linux")]
fn fadvise_dontneed(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for the whole call (borrowed from `file`); offset 0 and
    // length 0 mean "the whole file"; the call reads no memory of ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    // posix_fadvise returns the error number instead of setting errno.
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

#[cfg(not(target_os = "linux"))]
fn fadvise_dontneed(_file: &File) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "page cache eviction is implemented for Linux only",
    ))
}

/// Bytes of `path` resident in the page cache, by `mincore` over a read-only map of it
/// (page-granular: the last partial page counts whole). An empty file has 0.
#[cfg(target_os = "linux")]
pub fn resident_bytes(path: &Path) -> io::Result<u64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: a read-only map that this function only hands to mincore (which reads page
    // tables, never the bytes), dropped before returning; a concurrent truncation cannot
    // make mincore fault.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096);
    let pages = usize::try_from(len.div_ceil(page))
        .map_err(|_| io::Error::other("file too large to map"))?;
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` is a live mapping of `map.len()` bytes starting at a page-aligned
    // address, and `vec` holds one byte per page of that length, as mincore requires.
    let rc = unsafe {
        libc::mincore(
            map.as_ptr() as *mut libc::c_void,
            map.len(),
            vec.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let resident = vec.iter().filter(|&&b| b & 1 == 1).count() as u64;
    Ok((resident * page).min(len))
}

/// Not implemented off Linux.
#[cfg(not(target_os = "linux"))]
pub fn resident_bytes(_path: &Path) -> io::Result<u64> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "page cache residency is implemented for Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn database_files_lists_the_sqlite_family_and_the_vector_folder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        std::fs::write(&db, b"x").unwrap();
        std::fs::write(dir.path().join("db.sqlite-wal"), b"w").unwrap();
        std::fs::create_dir_all(dir.path().join("db.sqlite.vectors/3")).unwrap();
        std::fs::write(dir.path().join("db.sqlite.vectors/3/seg-1.bin"), b"s").unwrap();
        std::fs::write(dir.path().join("other.sqlite"), b"o").unwrap();
        let names: Vec<String> = database_files(&db)
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "db.sqlite",
                "db.sqlite-wal",
                "db.sqlite.vectors/3/seg-1.bin"
            ]
        );
    }

    #[test]
    fn a_written_file_is_resident_and_eviction_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        // Just written, so its pages are cached (dirty or clean).
        let before = resident_bytes(&path).unwrap();
        assert!(before > 0 && before <= 1 << 20, "{before}");
        evict(&path).unwrap();
        // The kernel may keep pages (tmpfs keeps them all), so only the bound is certain.
        assert!(resident_bytes(&path).unwrap() <= before);
        let report = evict_all(std::slice::from_ref(&path));
        assert_eq!(report[0].bytes, 1 << 20);
        assert_eq!(report[0].error, None);
        assert_eq!(
            resident_bytes(&dir.path().join("missing")).map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn an_empty_file_has_no_resident_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(resident_bytes(&path).unwrap(), 0);
        evict(&path).unwrap();
    }
}

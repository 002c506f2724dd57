//! Where the master key comes from: the [`KeyProvider`] trait and its three providers
//! ([`EnvKey`], [`KeyFile`], [`EphemeralKey`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::envelope::{random_key, KeyBytes, KEY_BYTES, MASTER_ID_BYTES};
use super::error::KeyError;
use crate::error::{Error, Result};

/// The environment variable [`EnvKey`] reads.
pub const MASTER_KEY_ENV: &str = "D1VEC_MASTER_KEY";

/// The first line of a key file.
const KEY_FILE_HEADER: &str = "d1vec-master-keys 1";

/// The id of a master key: the first 8 bytes of SHA-256 over a label and the key. It names
/// the key that wrapped a data key without revealing anything usable about the key.
pub type MasterKeyId = [u8; MASTER_ID_BYTES];

/// One 256-bit master key and its id. `Debug` prints the id only; the key is zeroed on drop.
#[derive(Clone)]
pub struct MasterKey {
    id: MasterKeyId,
    key: KeyBytes,
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn new(key: [u8; KEY_BYTES]) -> MasterKey {
        let key = Zeroizing::new(key);
        let mut hash = sha2::Sha256::new();
        hash.update(b"d1vec master key id\0");
        hash.update(key.as_ref());
        let digest = hash.finalize();
        let mut id = [0u8; MASTER_ID_BYTES];
        id.copy_from_slice(&digest[..MASTER_ID_BYTES]);
        MasterKey { id, key }
    }

    /// A fresh random master key.
    pub fn generate() -> Result<MasterKey> {
        let key = random_key()?;
        Ok(MasterKey::new(*key))
    }

    /// The key's id.
    pub fn id(&self) -> MasterKeyId {
        self.id
    }

    /// The id as 16 hex digits, for messages and the key file.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.key
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({} [redacted])", self.id_hex())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The master keys a provider holds: the active one (which wraps new data keys) first,
/// then older ones still able to unwrap.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    keys: Vec<MasterKey>,
}

impl MasterKeys {
    /// A set with `active` first; refuses an empty list.
    pub fn new(keys: Vec<MasterKey>) -> Result<MasterKeys> {
        if keys.is_empty() {
            return Err(Error::invalid("master keys", "at least one is needed"));
        }
        Ok(MasterKeys { keys })
    }

    /// The key new data keys are wrapped under.
    pub fn active(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The key with id `id`.
    pub fn get(&self, id: &MasterKeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|k| &k.id == id)
    }

    /// Every key, the active one first.
    pub fn all(&self) -> &[MasterKey] {
        &self.keys
    }
}

/// A source of master keys. d1vec asks for them when a key is first needed, not when a
/// database opens, so a database that never seals a value needs none.
///
/// Rotating the master key (`Database::rotate_master_key`) calls [`KeyProvider::add_key`],
/// re-wraps every data key under the new active key in one transaction, and only after that
/// commits calls [`KeyProvider::retain`] to forget the old keys.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// Every master key, the active one first.
    fn load(&self) -> Result<MasterKeys>;

    /// Makes a new key the active one, durably, keeping the older keys; returns the new
    /// set. A provider that cannot create keys returns its keys as they are (the rotation
    /// then re-wraps under its current active key).
    fn add_key(&self) -> Result<MasterKeys>;

    /// Forgets every key whose id is not in `keep`. Called only once no stored data key
    /// refers to them. Default: keeps everything.
    fn retain(&self, keep: &[MasterKeyId]) -> Result<()> {
        let _ = keep;
        Ok(())
    }

    /// Checks, when the database opens, that using this provider later is safe (the key
    /// file's permissions). Default: nothing to check.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// Master keys from the `D1VEC_MASTER_KEY` environment variable: base64 (standard
/// alphabet, padded) of 32 bytes, or several such keys separated by commas, the active one
/// first (so that `rotate-master` can re-wrap from the older ones to the first). d1vec
/// cannot create keys here: [`KeyProvider::add_key`] returns the keys as they are.
#[derive(Clone)]
pub struct EnvKey {
    keys: MasterKeys,
}

impl std::fmt::Debug for EnvKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvKey").finish_non_exhaustive()
    }
}

impl EnvKey {
    /// Reads `D1VEC_MASTER_KEY`: `None` when it is not set.
    pub fn from_env() -> Result<Option<EnvKey>> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                EnvKey::parse(&value).map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::BadEnvKey {
                reason: "is not valid UTF-8",
            }
            .into()),
        }
    }

    /// Parses the variable's value.
    pub fn parse(value: &str) -> Result<EnvKey> {
        let mut keys = Vec::new();
        for part in value.split(',') {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(part.trim())
                    .map_err(|_| KeyError::BadEnvKey {
                        reason: "is not base64 (standard alphabet, padded)",
                    })?,
            );
            let key: [u8; KEY_BYTES] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::BadEnvKey {
                        reason: "does not decode to exactly 32 bytes",
                    })?;
            keys.push(MasterKey::new(key));
        }
        Ok(EnvKey {
            keys: MasterKeys::new(keys)?,
        })
    }
}

impl KeyProvider for EnvKey {
    fn load(&self) -> Result<MasterKeys> {
        Ok(self.keys.clone())
    }

    fn add_key(&self) -> Result<MasterKeys> {
        Ok(self.keys.clone())
    }
}

/// A random master key held in memory only: the default for in-memory databases, whose
/// data dies with the process anyway.
#[derive(Debug, Default)]
pub struct EphemeralKey {
    keys: Mutex<Vec<MasterKey>>,
}

impl EphemeralKey {
    /// A provider that makes its first key when first asked.
    pub fn new() -> EphemeralKey {
        EphemeralKey::default()
    }
}

impl KeyProvider for EphemeralKey {
    fn load(&self) -> Result<MasterKeys> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.is_empty() {
            keys.push(MasterKey::generate()?);
        }
        MasterKeys::new(keys.clone())
    }

    fn add_key(&self) -> Result<MasterKeys> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.insert(0, MasterKey::generate()?);
        MasterKeys::new(keys.clone())
    }

    fn retain(&self, keep: &[MasterKeyId]) -> Result<()> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|k| keep.contains(&k.id));
        Ok(())
    }
}

/// Master keys in a file, owner-only (mode 0600): the default for a file database, at
/// `<database file>.key`. Created on first use (a line on stderr says so, once per
/// process); a file that group or others may read is refused with
/// [`KeyError::KeyFilePermissions`].
///
/// The file is text: the line `d1vec-master-keys 1`, then one line per key,
/// `<id: 16 hex digits> <key: base64 of 32 bytes>`, the active key first (docs/format.md).
/// It is only ever replaced whole: written to `<file>.tmp` (mode 0600), flushed to disk,
/// renamed over the file, and the folder flushed, so a crash leaves the old file or the new
/// one, never a mix.
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    announced: AtomicBool,
}

impl KeyFile {
    /// The key file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> KeyFile {
        KeyFile {
            path: path.into(),
            announced: AtomicBool::new(false),
        }
    }

    /// The key file beside the database file `db`: `<db>.key`.
    pub fn beside(db: &Path) -> KeyFile {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".key");
        KeyFile::new(db.with_file_name(name))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        KeyError::BadKeyFile {
            path: self.path.clone(),
            reason: reason.into(),
        }
        .into()
    }

    fn check_mode(&self) -> Result<bool> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&self.path)(e)),
        };
        if !meta.is_file() {
            return Err(self.bad("is not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::KeyFilePermissions {
                    path: self.path.clone(),
                    mode,
                }
                .into());
            }
        }
        Ok(true)
    }

    fn read(&self) -> Result<MasterKeys> {
        let text =
            Zeroizing::new(std::fs::read_to_string(&self.path).map_err(Error::io(&self.path))?);
        self.parse(&text)
    }

    /// Parses the contents of a key file (errors name this file's path).
    pub(crate) fn parse(&self, text: &str) -> Result<MasterKeys> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(self.bad(format!("the first line is not `{KEY_FILE_HEADER}`")));
        }
        let mut keys = Vec::new();
        for (n, line) in lines.enumerate() {
            let line_no = n + 2;
            if line.trim().is_empty() {
                continue;
            }
            let (id, key) = line
                .split_once(' ')
                .ok_or_else(|| self.bad(format!("line {line_no} is not `<id> <key>`")))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(key.trim())
                    .map_err(|_| self.bad(format!("line {line_no}: the key is not base64")))?,
            );
            let bytes: [u8; KEY_BYTES] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| self.bad(format!("line {line_no}: the key is not 32 bytes")))?;
            let key = MasterKey::new(bytes);
            if key.id_hex() != id {
                return Err(self.bad(format!(
                    "line {line_no}: the id does not match the key (the file is damaged)"
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(self.bad("it holds no key"));
        }
        MasterKeys::new(keys)
    }

    /// Replaces the file with `keys`, atomically and durably (see the type's docs).
    fn write(&self, keys: &MasterKeys) -> Result<()> {
        let text = render_key_file(keys);
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&tmp)(e)),
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(Error::io(&tmp))?;
        file.write_all(text.as_bytes()).map_err(Error::io(&tmp))?;
        file.sync_all().map_err(Error::io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(Error::io(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Flushes the rename; not every platform can open a folder, hence `ok()`.
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all().map_err(Error::io(dir))?;
            }
        }
        Ok(())
    }
}

/// A key file's contents: the header, then `<id> <base64 key>` per key, the active first.
pub(crate) fn render_key_file(keys: &MasterKeys) -> Zeroizing<String> {
    let mut text = Zeroizing::new(format!("{KEY_FILE_HEADER}\n"));
    for key in keys.all() {
        text.push_str(&key.id_hex());
        text.push(' ');
        text.push_str(&base64::engine::general_purpose::STANDARD.encode(key.bytes()));
        text.push('\n');
    }
    text
}

impl KeyProvider for KeyFile {
    fn load(&self) -> Result<MasterKeys> {
        if self.check_mode()? {
            return self.read();
        }
        let keys = MasterKeys::new(vec![MasterKey::generate()?])?;
        self.write(&keys)?;
        if !self.announced.swap(true, Ordering::SeqCst) {
            eprintln!(
                "d1vec: created the master key file {} (mode 0600). Sealed fields cannot be opened without it: back it up, apart from the database.",
                self.path.display()
            );
        }
        Ok(keys)
    }

    fn add_key(&self) -> Result<MasterKeys> {
        let current = self.load()?;
        let mut keys = vec![MasterKey::generate()?];
        keys.extend(current.all().iter().cloned());
        let keys = MasterKeys::new(keys)?;
        self.write(&keys)?;
        Ok(keys)
    }

    fn retain(&self, keep: &[MasterKeyId]) -> Result<()> {
        let current = self.load()?;
        let kept: Vec<MasterKey> = current
            .all()
            .iter()
            .filter(|k| keep.contains(&k.id))
            .cloned()
            .collect();
        if kept.len() == current.all().len() || kept.is_empty() {
            return Ok(());
        }
        self.write(&MasterKeys::new(kept)?)
    }

    fn check(&self) -> Result<()> {
        self.check_mode().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_key_parses_and_refuses() {
        let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        let env = EnvKey::parse(&key).unwrap();
        assert_eq!(env.load().unwrap().all().len(), 1);
        let two = EnvKey::parse(&format!(
            "{}, {key}",
            base64::engine::general_purpose::STANDARD.encode([6u8; 32])
        ))
        .unwrap();
        assert_eq!(two.load().unwrap().all().len(), 2);
        assert_eq!(
            two.load().unwrap().active().id(),
            MasterKey::new([6u8; 32]).id()
        );
        for bad in [
            "",
            "not base64!",
            &base64::engine::general_purpose::STANDARD.encode([1u8; 31]),
        ] {
            let e = EnvKey::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Key(KeyError::BadEnvKey { .. })), "{e}");
        }
    }

    #[test]
    fn key_file_is_created_private_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::beside(&dir.path().join("db.sqlite"));
        assert_eq!(file.path(), dir.path().join("db.sqlite.key"));
        file.check().unwrap();
        let first = file.load().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(file.load().unwrap().active().id(), first.active().id());
        let rotated = file.add_key().unwrap();
        assert_eq!(rotated.all().len(), 2);
        assert_ne!(rotated.active().id(), first.active().id());
        assert!(rotated.get(&first.active().id()).is_some());
        file.retain(&[rotated.active().id()]).unwrap();
        let after = KeyFile::new(file.path()).load().unwrap();
        assert_eq!(after.all().len(), 1);
        assert_eq!(after.active().id(), rotated.active().id());
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("k.key"));
        file.load().unwrap();
        for mode in [0o640, 0o604, 0o644] {
            std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let e = file.load().unwrap_err();
            assert!(
                matches!(e, Error::Key(KeyError::KeyFilePermissions { .. })),
                "{e}"
            );
            assert!(file.check().is_err());
        }
    }

    #[test]
    fn damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("k.key"));
        let keys = file.load().unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        // Another key under the first key's id.
        let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let damaged = format!("{KEY_FILE_HEADER}\n{} {other}\n", keys.active().id_hex());
        write_private(file.path(), &damaged);
        let e = file.load().unwrap_err();
        assert!(matches!(e, Error::Key(KeyError::BadKeyFile { .. })), "{e}");
        assert!(!e.to_string().contains(&other));
        write_private(file.path(), &text.replace(KEY_FILE_HEADER, "nope"));
        let e = file.load().unwrap_err();
        assert!(matches!(e, Error::Key(KeyError::BadKeyFile { .. })), "{e}");
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

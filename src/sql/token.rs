//! Signed cursors: the per-database key, and the envelope every cursor travels in.
//!
//! Both kinds of cursor d1vec hands out — `list-vectors` cursors and `d1 page` cursors — are
//! base64url (no padding) of this byte string (layout in `docs/format.md`):
//!
//! ```text
//! offset  size  field
//!      0    32  tag      HMAC-SHA256(key, "d1vec-cursor\0" || bytes 32..)
//!     32     1  version  1
//!     33     1  kind     1 = list-vectors, 2 = d1 page
//!     34     8  expires  Unix seconds, u64 little-endian
//!     42    16  scope    HMAC-SHA256(key, "d1vec-scope\0" || kind || parts)[..16]
//!     58     …  body     list-vectors: snapshot (i64 LE) then the last id (UTF-8);
//!                        d1 page: the JSON array [sort key, id]
//! ```
//!
//! The key is 32 random bytes made once per database and kept in the table
//! [`KEY_TABLE`] (hidden from tenant sessions and left out of `d1 export`, as every
//! `d1vec_` table). The scope binds a cursor to what it pages — an index and the caller's
//! namespace, or a query, its order and the tenant — so a cursor from another index,
//! query, tenant or database fails here. [`CursorKey::open`] checks, in order: the length
//! (before decoding), base64, the tag (in constant time, before reading any other byte),
//! the version, the kind, the scope and the expiry; only then is the body read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rusqlite::OptionalExtension;
use serde_json::Value as Json;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The engine-owned table holding the database's cursor key (one row).
pub const KEY_TABLE: &str = "d1vec_cursor_key";
/// Bytes in a cursor key.
pub const KEY_BYTES: usize = 32;
/// Bytes of the scope digest a cursor carries.
pub const SCOPE_BYTES: usize = 16;
/// The envelope version this build writes and reads.
pub const VERSION: u8 = 1;

const TAG_BYTES: usize = 32;
/// Tag, version, kind, expires, scope: everything before the body.
const HEADER_BYTES: usize = TAG_BYTES + 1 + 1 + 8 + SCOPE_BYTES;
const TAG_DOMAIN: &[u8] = b"d1vec-cursor\0";
const SCOPE_DOMAIN: &[u8] = b"d1vec-scope\0";
/// The last second [`format_unix_seconds`] writes as RFC 3339 (9999-12-31T23:59:59Z).
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// Which call a cursor belongs to. Each kind has its own lifetime and length cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// Vectorize's list-vectors: lives an hour from the listing's first page.
    ListVectors,
    /// `d1 page` ([`crate::sql::cursor::page`]): lives a day from the page that issued it.
    Page,
}

impl CursorKind {
    /// The byte that names the kind inside a cursor.
    pub fn byte(self) -> u8 {
        match self {
            CursorKind::ListVectors => 1,
            CursorKind::Page => 2,
        }
    }

    /// How long a cursor of this kind stays valid, in seconds: 3,600 for list-vectors
    /// (as Vectorize), 86,400 for `d1 page`.
    pub const fn ttl_seconds(self) -> u64 {
        match self {
            CursorKind::ListVectors => 3600,
            CursorKind::Page => 86_400,
        }
    }

    /// The longest cursor of this kind accepted or issued, in characters: 512 for
    /// list-vectors (ids are at most 64 bytes), 8,192 for `d1 page` (the sort key and id
    /// of the page's last row travel in it).
    pub const fn max_chars(self) -> usize {
        match self {
            CursorKind::ListVectors => 512,
            CursorKind::Page => 8192,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CursorKind::ListVectors => "list-vectors",
            CursorKind::Page => "d1 page",
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        [CursorKind::ListVectors, CursorKind::Page]
            .into_iter()
            .find(|k| k.byte() == b)
    }
}

/// Why a cursor was refused. The `Display` text completes "invalid cursor: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// Longer than the kind's cap; refused before decoding.
    #[error("it is {got} characters long, the limit is {limit}")]
    TooLong {
        /// The cursor's length in characters (bytes of its text).
        got: usize,
        /// [`CursorKind::max_chars`].
        limit: usize,
    },
    /// Not unpadded base64url.
    #[error("it is not a cursor d1vec issued (not base64url)")]
    NotBase64,
    /// Shorter than the fixed header.
    #[error("it is not a cursor d1vec issued ({got} bytes, a cursor has at least {HEADER_BYTES})")]
    TooShort {
        /// The decoded length.
        got: usize,
    },
    /// The tag does not match: the cursor was altered, or made under another database's key.
    #[error("its signature does not match: it was altered, or issued by another database")]
    BadSignature,
    /// A format version this build does not read.
    #[error("format version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u8),
    /// A cursor of another kind (or an unknown kind byte).
    #[error("it is a {found} cursor, not a {expected} cursor")]
    WrongKind {
        /// The kind the cursor names.
        found: String,
        /// The kind the call expects.
        expected: &'static str,
    },
    /// Issued for another scope of the same database.
    #[error("it belongs to another {0}")]
    ForeignScope(&'static str),
    /// Past its expiry.
    #[error("it expired at {0}; start again without a cursor")]
    Expired(String),
    /// An expiry further ahead than the kind's lifetime: not one d1vec issued.
    #[error("its expiry {at} is more than {ttl} seconds ahead")]
    ExpiryTooFar {
        /// The expiry it carries.
        at: String,
        /// [`CursorKind::ttl_seconds`].
        ttl: u64,
    },
    /// A signed body that does not hold a position of its kind.
    #[error("its position is malformed: {0}")]
    BadPosition(&'static str),
}

/// What a cursor points at, after its envelope checked out.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// A list-vectors position: the snapshot's mutation sequence and the last id returned.
    List {
        /// The index's mutation sequence when the listing began.
        snapshot: i64,
        /// The last id of the previous page.
        after: String,
    },
    /// A `d1 page` position: the last row's sort key and id, as JSON scalars (or byte
    /// arrays, D1's BLOB shape).
    Page {
        /// The sort column's value.
        key: Json,
        /// The id column's value.
        id: Json,
    },
}

impl Position {
    /// The kind of cursor that carries this position.
    pub fn kind(&self) -> CursorKind {
        match self {
            Position::List { .. } => CursorKind::ListVectors,
            Position::Page { .. } => CursorKind::Page,
        }
    }

    /// The body bytes (layout in the module docs).
    pub fn body(&self) -> Vec<u8> {
        match self {
            Position::List { snapshot, after } => {
                let mut b = Vec::with_capacity(8 + after.len());
                b.extend_from_slice(&snapshot.to_le_bytes());
                b.extend_from_slice(after.as_bytes());
                b
            }
            Position::Page { key, id } => Json::Array(vec![key.clone(), id.clone()])
                .to_string()
                .into_bytes(),
        }
    }

    /// Reads a body of `kind`. Never panics; anything but a well-formed body is
    /// [`CursorError::BadPosition`].
    pub fn parse(kind: CursorKind, body: &[u8]) -> Result<Position, CursorError> {
        match kind {
            CursorKind::ListVectors => {
                let (snapshot, after) = body
                    .split_first_chunk::<8>()
                    .ok_or(CursorError::BadPosition("no snapshot"))?;
                let snapshot = i64::from_le_bytes(*snapshot);
                if snapshot < 0 {
                    return Err(CursorError::BadPosition("negative snapshot"));
                }
                let after = std::str::from_utf8(after)
                    .map_err(|_| CursorError::BadPosition("the id is not UTF-8"))?;
                Ok(Position::List {
                    snapshot,
                    after: after.to_owned(),
                })
            }
            CursorKind::Page => {
                let parts: Vec<Json> = serde_json::from_slice(body)
                    .map_err(|_| CursorError::BadPosition("not a JSON array"))?;
                let [key, id] = <[Json; 2]>::try_from(parts)
                    .map_err(|_| CursorError::BadPosition("not a [key, id] pair"))?;
                for v in [&key, &id] {
                    let scalar = match v {
                        Json::Null | Json::Object(_) => false,
                        Json::Array(items) => {
                            items.iter().all(|b| b.as_u64().is_some_and(|b| b <= 255))
                        }
                        _ => true,
                    };
                    if !scalar {
                        return Err(CursorError::BadPosition(
                            "the key and id must be non-NULL values",
                        ));
                    }
                }
                Ok(Position::Page { key, id })
            }
        }
    }
}

/// A cursor's fields before signing, for building any envelope at all (tests use it to
/// sign extreme values). [`CursorKey::seal`] signs it; [`CursorKey::open`] checks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The format version; d1vec writes [`VERSION`].
    pub version: u8,
    /// The kind byte ([`CursorKind::byte`]).
    pub kind: u8,
    /// Unix seconds after which the cursor is refused.
    pub expires: u64,
    /// The scope digest ([`CursorKey::scope`]).
    pub scope: [u8; SCOPE_BYTES],
    /// The position ([`Position::body`]).
    pub body: Vec<u8>,
}

/// What [`CursorKey::open`] requires of a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The kind the call pages.
    pub kind: CursorKind,
    /// The caller's scope digest.
    pub scope: [u8; SCOPE_BYTES],
    /// What the scope is, for the error: "index or tenant scope", "query, order or tenant".
    pub scope_name: &'static str,
    /// The current time, Unix seconds.
    pub now: u64,
}

/// A database's cursor key: 32 random bytes. Its `Debug` prints `[redacted]`, and it has
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct CursorKey([u8; KEY_BYTES]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey([redacted])")
    }
}

impl CursorKey {
    /// A key from its bytes (tests and fuzzing; a database makes its own).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        CursorKey(bytes)
    }

    /// A new key from the operating system's random source.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(CursorKey(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        match <HmacSha256 as Mac>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // RFC 2104: HMAC takes a key of any length; `hmac` never refuses one.
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    /// The scope digest of `parts` for `kind`: each part is length-prefixed, so no two lists
    /// of parts share a digest by concatenation.
    pub fn scope(&self, kind: CursorKind, parts: &[&[u8]]) -> [u8; SCOPE_BYTES] {
        let mut mac = self.mac();
        mac.update(SCOPE_DOMAIN);
        mac.update(&[kind.byte()]);
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; SCOPE_BYTES];
        out.copy_from_slice(&full[..SCOPE_BYTES]);
        out
    }

    /// Signs `envelope` and encodes it as a cursor.
    pub fn seal(&self, envelope: &Envelope) -> String {
        let mut bytes = vec![0u8; TAG_BYTES];
        bytes.push(envelope.version);
        bytes.push(envelope.kind);
        bytes.extend_from_slice(&envelope.expires.to_le_bytes());
        bytes.extend_from_slice(&envelope.scope);
        bytes.extend_from_slice(&envelope.body);
        let mut mac = self.mac();
        mac.update(TAG_DOMAIN);
        mac.update(&bytes[TAG_BYTES..]);
        bytes[..TAG_BYTES].copy_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Signs a position as a cursor of its kind, valid until `expires`; refuses a cursor
    /// longer than the kind's cap (a `d1 page` row whose key and id are too long).
    pub fn encode(
        &self,
        position: &Position,
        scope: [u8; SCOPE_BYTES],
        expires: u64,
    ) -> Result<String, CursorError> {
        let kind = position.kind();
        let cursor = self.seal(&Envelope {
            version: VERSION,
            kind: kind.byte(),
            expires,
            scope,
            body: position.body(),
        });
        if cursor.len() > kind.max_chars() {
            return Err(CursorError::TooLong {
                got: cursor.len(),
                limit: kind.max_chars(),
            });
        }
        Ok(cursor)
    }

    /// Checks a cursor against `expect` and returns its envelope (see the module docs for
    /// the order of the checks). Never panics, whatever `cursor` holds.
    pub fn open(&self, cursor: &str, expect: &Expect) -> Result<Envelope, CursorError> {
        let kind = expect.kind;
        if cursor.len() > kind.max_chars() {
            return Err(CursorError::TooLong {
                got: cursor.len(),
                limit: kind.max_chars(),
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::NotBase64)?;
        if bytes.len() < HEADER_BYTES {
            return Err(CursorError::TooShort { got: bytes.len() });
        }
        let (tag, signed) = bytes
            .split_at_checked(TAG_BYTES)
            .ok_or(CursorError::TooShort { got: bytes.len() })?;
        let mut mac = self.mac();
        mac.update(TAG_DOMAIN);
        mac.update(signed);
        mac.verify_slice(tag)
            .map_err(|_| CursorError::BadSignature)?;

        // Authentic from here on; still read with checks, never with indexing that can fail.
        let (header, body) = signed
            .split_at_checked(HEADER_BYTES - TAG_BYTES)
            .ok_or(CursorError::TooShort { got: bytes.len() })?;
        let (&[version, kind_byte], rest) = header
            .split_first_chunk::<2>()
            .ok_or(CursorError::TooShort { got: bytes.len() })?;
        let (expires, scope) = rest
            .split_first_chunk::<8>()
            .ok_or(CursorError::TooShort { got: bytes.len() })?;
        let expires = u64::from_le_bytes(*expires);
        let scope: [u8; SCOPE_BYTES] = scope
            .try_into()
            .map_err(|_| CursorError::TooShort { got: bytes.len() })?;
        if version != VERSION {
            return Err(CursorError::UnsupportedVersion(version));
        }
        if kind_byte != kind.byte() {
            return Err(CursorError::WrongKind {
                found: CursorKind::from_byte(kind_byte).map_or_else(
                    || format!("unknown (kind byte {kind_byte})"),
                    |k| k.name().to_owned(),
                ),
                expected: kind.name(),
            });
        }
        if scope != expect.scope {
            return Err(CursorError::ForeignScope(expect.scope_name));
        }
        if expires < expect.now {
            return Err(CursorError::Expired(format_unix_seconds(expires)));
        }
        // A far expiry is only a problem when now + ttl is representable and below it.
        if expect
            .now
            .checked_add(kind.ttl_seconds())
            .is_some_and(|latest| expires > latest)
        {
            return Err(CursorError::ExpiryTooFar {
                at: format_unix_seconds(expires),
                ttl: kind.ttl_seconds(),
            });
        }
        Ok(Envelope {
            version,
            kind: kind_byte,
            expires,
            scope,
            body: body.to_vec(),
        })
    }

    /// [`CursorKey::open`], then the body read as a position of `expect.kind`.
    pub fn decode(&self, cursor: &str, expect: &Expect) -> Result<(Position, u64), CursorError> {
        let envelope = self.open(cursor, expect)?;
        Ok((
            Position::parse(expect.kind, &envelope.body)?,
            envelope.expires,
        ))
    }
}

/// The current time in Unix seconds (0 if the clock reads before 1970).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as RFC 3339 (`2026-01-01T00:00:00Z`), or as `@<seconds>` past the year
/// 9999, which RFC 3339 cannot write. Never panics.
pub fn format_unix_seconds(secs: u64) -> String {
    if secs <= LAST_RFC3339_SECOND {
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
            return humantime::format_rfc3339_seconds(t).to_string();
        }
    }
    format!("@{secs}")
}

/// Reads the database's key, without writing: `None` when there is none yet.
pub(crate) fn read_key(conn: &rusqlite::Connection) -> crate::Result<Option<CursorKey>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [KEY_TABLE],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let stored: Option<Vec<u8>> = conn
        .query_row(
            &format!("SELECT key FROM {KEY_TABLE} WHERE id = 1"),
            [],
            |r| r.get(0),
        )
        .optional()?;
    stored.map(key_from_stored).transpose()
}

/// Creates the key table and the key where missing (`INSERT OR IGNORE`, so two processes
/// racing agree on one key), then reads it. Call inside a write transaction.
pub(crate) fn create_key(conn: &rusqlite::Connection) -> crate::Result<CursorKey> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {KEY_TABLE} (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             key BLOB NOT NULL CHECK (length(key) = {KEY_BYTES})
         )"
    ))?;
    let fresh =
        CursorKey::generate().map_err(|e| crate::Error::invalid("randomness", e.to_string()))?;
    conn.execute(
        &format!("INSERT OR IGNORE INTO {KEY_TABLE} (id, key) VALUES (1, ?1)"),
        [&fresh.0[..]],
    )?;
    read_key(conn)?.ok_or_else(|| {
        crate::Error::invalid(
            "cursor key",
            format!("{KEY_TABLE} holds no key after creating one"),
        )
    })
}

fn key_from_stored(stored: Vec<u8>) -> crate::Result<CursorKey> {
    let got = stored.len();
    <[u8; KEY_BYTES]>::try_from(stored)
        .map(CursorKey)
        .map_err(|_| {
            crate::Error::invalid(
                "cursor key",
                format!("{KEY_TABLE} holds {got} bytes, a key is {KEY_BYTES}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CursorKey {
        CursorKey::from_bytes([b; KEY_BYTES])
    }

    fn expect(k: &CursorKey, kind: CursorKind, now: u64) -> Expect {
        Expect {
            kind,
            scope: k.scope(kind, &[b"scope"]),
            scope_name: "scope",
            now,
        }
    }

    #[test]
    fn a_sealed_position_opens_under_its_key_and_scope_only() {
        let k = key(7);
        let pos = Position::List {
            snapshot: 42,
            after: "v9".into(),
        };
        let e = expect(&k, CursorKind::ListVectors, 1000);
        let c = k.encode(&pos, e.scope, 1000 + 3600).unwrap();
        assert_eq!(k.decode(&c, &e).unwrap(), (pos, 4600));
        assert_eq!(key(8).decode(&c, &e), Err(CursorError::BadSignature));
        let other = Expect {
            scope: k.scope(CursorKind::ListVectors, &[b"scop", b"e"]),
            ..e
        };
        assert_eq!(
            k.decode(&c, &other),
            Err(CursorError::ForeignScope("scope"))
        );
        let page = Expect {
            kind: CursorKind::Page,
            ..e
        };
        assert!(matches!(
            k.decode(&c, &page),
            Err(CursorError::WrongKind { .. })
        ));
    }

    #[test]
    fn expiry_is_checked_on_both_sides_without_overflow() {
        let k = key(1);
        let e = expect(&k, CursorKind::Page, 10_000);
        let at = |expires: u64| {
            let c = k.seal(&Envelope {
                version: VERSION,
                kind: CursorKind::Page.byte(),
                expires,
                scope: e.scope,
                body: b"[1,2]".to_vec(),
            });
            k.decode(&c, &e)
        };
        assert!(at(10_000).is_ok());
        assert!(at(10_000 + 86_400).is_ok());
        assert!(matches!(at(9_999), Err(CursorError::Expired(_))));
        assert!(matches!(at(0), Err(CursorError::Expired(_))));
        for far in [10_000 + 86_401, 253_402_300_800, u64::MAX] {
            assert!(
                matches!(at(far), Err(CursorError::ExpiryTooFar { .. })),
                "{far}"
            );
        }
        // A clock at the end of time cannot overflow either.
        let late = Expect { now: u64::MAX, ..e };
        let sealed = k.seal(&Envelope {
            version: VERSION,
            kind: CursorKind::Page.byte(),
            expires: u64::MAX,
            scope: e.scope,
            body: b"[1,2]".to_vec(),
        });
        assert!(k.decode(&sealed, &late).is_ok());
    }

    #[test]
    fn timestamps_past_year_9999_are_written_without_panicking() {
        assert_eq!(format_unix_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_unix_seconds(LAST_RFC3339_SECOND),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(format_unix_seconds(253_402_300_800), "@253402300800");
        assert_eq!(format_unix_seconds(u64::MAX), format!("@{}", u64::MAX));
    }

    #[test]
    fn bodies_round_trip_and_malformed_ones_are_typed_errors() {
        for pos in [
            Position::List {
                snapshot: 0,
                after: String::new(),
            },
            Position::List {
                snapshot: i64::MAX,
                after: "é".into(),
            },
            Position::Page {
                key: Json::from("2026"),
                id: Json::from(7),
            },
            Position::Page {
                key: serde_json::json!([0, 255]),
                id: Json::from(1.5),
            },
        ] {
            assert_eq!(Position::parse(pos.kind(), &pos.body()).unwrap(), pos);
        }
        let list = |b: &[u8]| Position::parse(CursorKind::ListVectors, b);
        let page = |b: &[u8]| Position::parse(CursorKind::Page, b);
        assert!(list(b"1234567").is_err());
        assert!(list(&(-1i64).to_le_bytes()).is_err());
        assert!(list(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
        for bad in [
            &b""[..],
            b"[1]",
            b"[1,2,3]",
            b"{}",
            b"[null,1]",
            b"[1,{}]",
            b"[[256],1]",
            b"[[[1]],1]",
        ] {
            assert!(
                matches!(page(bad), Err(CursorError::BadPosition(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

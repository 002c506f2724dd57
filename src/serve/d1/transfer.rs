//! Import and export as wrangler 4.85.0 calls them, and [`TransferStore`], the bounded,
//! expiring byte store behind their upload and download URLs.
//!
//! `wrangler d1 execute DB --remote --file x.sql`:
//! 1. `POST …/import {"action": "init", "etag": md5}` → `{"upload_url", "filename"}`;
//! 2. `PUT upload_url` with the file; wrangler requires status 200 and an `ETag` header
//!    equal to the file's md5 ([`TransferStore::put`] returns it);
//! 3. `POST …/import {"action": "ingest", "etag", "filename"}` → the file runs as one
//!    script, all or nothing (D1's import is), and the answer is already
//!    `{"success", "status": "complete", "at_bookmark", "messages", "result":
//!    {"num_queries", "final_bookmark", "meta"}}`;
//! 4. `POST …/import {"action": "poll", "current_bookmark"}` returns that answer again
//!    (wrangler polls only while the status is not complete).
//!
//! `wrangler d1 export DB --remote --output f.sql`: `POST …/export {"output_format":
//! "polling", "dump_options": {"no_data", "no_schema", "tables"}}` → `{"status":
//! "complete", "result": {"signed_url", "filename"}}`, then `GET signed_url`.
//!
//! Hosted D1 hands out presigned R2 URLs; here both URLs are
//! `<base_url>/d1vec/transfer/<key>` on the server itself, where `<key>` is 128 random bits:
//! like a presigned URL, knowing it is the permission (wrangler sends no token with the
//! upload or the download), and it expires with its object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde_json::{json, Map, Value as Json};

use super::D1Target;
use crate::error::{Error, Result};
use crate::sql::export::ExportOptions;
use crate::sql::{D1Result, SessionConstraint};

/// The path, after the server's base URL (`http://host:port/client/v4`), under which
/// upload and download URLs live: `<base_url>/d1vec/transfer/<key>`. The server routes
/// `PUT` there to [`TransferStore::put`] and `GET` to [`TransferStore::get`].
pub const TRANSFER_PATH: &str = "/d1vec/transfer/";

/// Bounds of a [`TransferStore`].
#[derive(Debug, Clone)]
pub struct TransferLimits {
    /// The largest upload or export, in bytes. Default 256 MiB.
    pub max_object_bytes: usize,
    /// The most bytes held at once, over every upload and export. Default 512 MiB.
    pub max_total_bytes: usize,
    /// The most uploads, exports and finished imports remembered at once. Default 256.
    pub max_entries: usize,
    /// How long an upload URL, a download URL or an import's answer stays valid. Default
    /// one hour, as Cloudflare's export URL.
    pub ttl: Duration,
}

impl Default for TransferLimits {
    fn default() -> Self {
        TransferLimits {
            max_object_bytes: 256 << 20,
            max_total_bytes: 512 << 20,
            max_entries: 256,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// What a key of the store holds.
#[derive(Debug)]
enum Object {
    /// An upload URL handed out by `init` for the file whose md5 is `etag`; `bytes` once
    /// the file was put.
    Upload {
        db: String,
        filename: String,
        etag: String,
        bytes: Option<Arc<Vec<u8>>>,
    },
    /// An export, ready for download.
    Download { bytes: Arc<Vec<u8>> },
}

#[derive(Debug)]
struct Slot {
    object: Object,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<String, Slot>,
    /// Finished imports' answers, by (database uuid, bookmark), for `poll`.
    imports: HashMap<(String, String), (Json, Instant)>,
}

impl Inner {
    fn purge(&mut self, now: Instant) {
        self.objects.retain(|_, s| s.expires > now);
        self.imports.retain(|_, (_, expires)| *expires > now);
    }

    fn held_bytes(&self) -> usize {
        self.objects
            .values()
            .map(|s| match &s.object {
                Object::Upload { bytes: Some(b), .. } => b.len(),
                Object::Upload { bytes: None, .. } => 0,
                Object::Download { bytes } => bytes.len(),
            })
            .sum()
    }

    fn entries(&self) -> usize {
        self.objects.len() + self.imports.len()
    }
}

/// The uploads waiting to be imported and the exports waiting to be downloaded, held in
/// memory within [`TransferLimits`]; every entry expires after [`TransferLimits::ttl`].
#[derive(Debug, Default)]
pub struct TransferStore {
    limits: TransferLimits,
    inner: Mutex<Inner>,
}

impl TransferStore {
    /// An empty store with these bounds.
    pub fn new(limits: TransferLimits) -> Self {
        TransferStore {
            limits,
            inner: Mutex::default(),
        }
    }

    /// Its bounds (the server reads at most [`TransferLimits::max_object_bytes`] of a PUT).
    pub fn limits(&self) -> &TransferLimits {
        &self.limits
    }

    /// Whether `key` is an upload URL still waiting for its file: checked before a body is
    /// read, so that a request to an unknown URL (which needs no token) costs no memory.
    pub fn awaits_upload(&self, key: &str) -> bool {
        let mut inner = self.lock();
        inner.purge(Instant::now());
        matches!(
            inner.objects.get(key),
            Some(Slot {
                object: Object::Upload { bytes: None, .. },
                ..
            })
        )
    }

    /// `PUT <upload_url>`: stores `body` as the file of the upload URL `key` and returns its
    /// md5 in hex, the `ETag` wrangler checks. Refused, storing nothing: an unknown or
    /// expired key, a download key, a key already used, a body past the limits, and a body
    /// whose md5 is not the one announced by `init` (so the URL takes only that file).
    pub fn put(&self, key: &str, body: Vec<u8>) -> Result<String> {
        if body.len() > self.limits.max_object_bytes {
            return Err(Error::LimitExceeded {
                what: "bytes in one upload",
                limit: self.limits.max_object_bytes,
                got: body.len(),
            });
        }
        let mut inner = self.lock();
        inner.purge(Instant::now());
        let held = inner.held_bytes();
        let slot = inner
            .objects
            .get_mut(key)
            .ok_or_else(|| Error::invalid("upload URL", "unknown or expired"))?;
        let Object::Upload { bytes, etag, .. } = &mut slot.object else {
            return Err(Error::invalid("upload URL", "unknown or expired"));
        };
        if bytes.is_some() {
            return Err(Error::invalid("upload URL", "already used"));
        }
        let total = held + body.len();
        if total > self.limits.max_total_bytes {
            return Err(Error::LimitExceeded {
                what: "bytes held for imports and exports",
                limit: self.limits.max_total_bytes,
                got: total,
            });
        }
        let got = md5_hex(&body);
        if got != *etag {
            return Err(Error::invalid(
                "upload",
                format!("the body's md5 is {got}, but the upload URL was made for {etag}"),
            ));
        }
        *bytes = Some(Arc::new(body));
        Ok(got)
    }

    /// `GET <signed_url>`: the export stored under `key`, until it expires.
    pub fn get(&self, key: &str) -> Result<Arc<Vec<u8>>> {
        let mut inner = self.lock();
        inner.purge(Instant::now());
        match inner.objects.get(key) {
            Some(Slot {
                object: Object::Download { bytes },
                ..
            }) => Ok(Arc::clone(bytes)),
            _ => Err(Error::invalid("download URL", "unknown or expired")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for one more entry (and `bytes` more bytes), or refuses.
    fn admit(&self, inner: &mut Inner, bytes: usize) -> Result<()> {
        inner.purge(Instant::now());
        if inner.entries() >= self.limits.max_entries {
            return Err(Error::LimitExceeded {
                what: "pending imports and exports",
                limit: self.limits.max_entries,
                got: inner.entries() + 1,
            });
        }
        let total = inner.held_bytes() + bytes;
        if total > self.limits.max_total_bytes {
            return Err(Error::LimitExceeded {
                what: "bytes held for imports and exports",
                limit: self.limits.max_total_bytes,
                got: total,
            });
        }
        Ok(())
    }
}

/// `POST …/d1/database/{id}/import` on `target`, the database whose uuid is `db_uuid`;
/// `base_url` is the server's (`http://127.0.0.1:8787/client/v4`), where the upload URL
/// points. Returns the envelope's `result` for `init`, `ingest` and `poll` (see the
/// [module documentation](self)). A failing script is an error and changes nothing.
pub fn import(
    target: &dyn D1Target,
    store: &TransferStore,
    db_uuid: &str,
    body: &Json,
    base_url: &str,
) -> Result<Json> {
    let body = body
        .as_object()
        .ok_or_else(|| Error::invalid("body", "expected a JSON object with `action`"))?;
    match string_field(body, "action")? {
        "init" => {
            let etag = etag_field(body)?;
            let filename = format!("{db_uuid}-{etag}.sql");
            let key = new_key()?;
            let mut inner = store.lock();
            store.admit(&mut inner, 0)?;
            inner.objects.insert(
                key.clone(),
                Slot {
                    object: Object::Upload {
                        db: db_uuid.to_owned(),
                        filename: filename.clone(),
                        etag,
                        bytes: None,
                    },
                    expires: Instant::now() + store.limits.ttl,
                },
            );
            Ok(json!({
                "success": true,
                "upload_url": transfer_url(base_url, &key),
                "filename": filename,
            }))
        }
        "ingest" => {
            let etag = etag_field(body)?;
            let filename = string_field(body, "filename")?;
            let script = take_upload(store, db_uuid, filename, &etag)?;
            let script = std::str::from_utf8(&script)
                .map_err(|e| Error::invalid("import file", format!("not UTF-8: {e}")))?;
            let results = target.execute(script)?;
            let bookmark = bookmark(target)?;
            let answer = json!({
                "success": true,
                "type": "import",
                "status": "complete",
                "at_bookmark": bookmark,
                "messages": [format!("Imported {} queries from {filename}", results.len())],
                "result": {
                    "final_bookmark": bookmark,
                    "num_queries": results.len(),
                    "meta": total_meta(&results)?,
                },
            });
            let mut inner = store.lock();
            // The answer is small; past the entry bound it is simply not kept for `poll`.
            if store.admit(&mut inner, 0).is_ok() {
                inner.imports.insert(
                    (db_uuid.to_owned(), bookmark),
                    (answer.clone(), Instant::now() + store.limits.ttl),
                );
            }
            Ok(answer)
        }
        "poll" => {
            let bookmark = string_field(body, "current_bookmark")?;
            let mut inner = store.lock();
            inner.purge(Instant::now());
            inner
                .imports
                .get(&(db_uuid.to_owned(), bookmark.to_owned()))
                .map(|(answer, _)| answer.clone())
                .ok_or_else(|| {
                    Error::invalid(
                        "current_bookmark",
                        "no finished import of this database has that bookmark",
                    )
                })
        }
        other => Err(Error::invalid(
            "action",
            format!("expected `init`, `ingest` or `poll`, got `{other}`"),
        )),
    }
}

/// `POST …/d1/database/{id}/export` on `target` (database `db_uuid`): writes the SQL dump
/// ([`crate::Database::export_sql`]) into `store` and returns the envelope's `result`,
/// already complete, with the download URL under `base_url`.
pub fn export(
    target: &dyn D1Target,
    store: &TransferStore,
    db_uuid: &str,
    body: &Json,
    base_url: &str,
) -> Result<Json> {
    let body = body
        .as_object()
        .ok_or_else(|| Error::invalid("body", "expected a JSON object"))?;
    match body.get("output_format") {
        Some(Json::String(s)) if s == "polling" => {}
        Some(other) => {
            return Err(Error::invalid(
                "output_format",
                format!("expected \"polling\", got {other}"),
            ))
        }
        None => return Err(Error::invalid("output_format", "missing")),
    }
    match body.get("current_bookmark") {
        None | Some(Json::Null) | Some(Json::String(_)) => {}
        Some(_) => return Err(Error::invalid("current_bookmark", "expected a string")),
    }
    let options = dump_options(body.get("dump_options"))?;
    let mut out = BoundedBuf {
        bytes: Vec::new(),
        limit: store.limits.max_object_bytes,
        overflow: false,
    };
    let written = target.export_sql(&options, &mut out);
    if out.overflow {
        return Err(Error::LimitExceeded {
            what: "bytes in one export",
            limit: store.limits.max_object_bytes,
            got: out.bytes.len() + 1,
        });
    }
    written?;
    let bookmark = bookmark(target)?;
    let filename = format!("{db_uuid}-{bookmark}.sql");
    let key = new_key()?;
    let mut inner = store.lock();
    store.admit(&mut inner, out.bytes.len())?;
    inner.objects.insert(
        key.clone(),
        Slot {
            object: Object::Download {
                bytes: Arc::new(out.bytes),
            },
            expires: Instant::now() + store.limits.ttl,
        },
    );
    Ok(json!({
        "success": true,
        "type": "export",
        "status": "complete",
        "at_bookmark": bookmark,
        "messages": [],
        "result": {
            "filename": filename,
            "signed_url": transfer_url(base_url, &key),
        },
    }))
}

/// Takes the uploaded file `filename` of database `db`, checking the md5 wrangler gives.
fn take_upload(
    store: &TransferStore,
    db: &str,
    filename: &str,
    etag: &str,
) -> Result<Arc<Vec<u8>>> {
    let mut inner = store.lock();
    inner.purge(Instant::now());
    let found = inner
        .objects
        .iter()
        .find_map(|(key, slot)| match &slot.object {
            Object::Upload {
                db: d,
                filename: f,
                etag: got,
                bytes: Some(bytes),
            } if d == db && f == filename => Some((key.clone(), Arc::clone(bytes), got.clone())),
            _ => None,
        });
    let Some((key, bytes, got)) = found else {
        return Err(Error::invalid(
            "filename",
            format!("no uploaded file `{filename}` for this database (upload it first, within the hour)"),
        ));
    };
    if got != etag {
        return Err(Error::invalid(
            "etag",
            format!("the uploaded file's md5 is {got}, not {etag}"),
        ));
    }
    inner.objects.remove(&key);
    Ok(bytes)
}

/// The bookmark of the database's latest commit as `target` sees it (D1's Sessions API).
fn bookmark(target: &dyn D1Target) -> Result<String> {
    let session = target.with_session(SessionConstraint::FirstPrimary)?;
    session.prepare("SELECT 1").all()?;
    session
        .get_bookmark()
        .ok_or_else(|| Error::invalid("bookmark", "the session reported none"))
}

/// One `meta` for a whole import: sums of the counters and durations, the last
/// statement's `last_row_id`, `size_after` and where it ran.
fn total_meta(results: &[D1Result]) -> Result<Json> {
    let Some(last) = results.last() else {
        return Err(Error::invalid("SQL", "No SQL statements detected."));
    };
    let mut meta = last.meta.clone();
    meta.duration = results.iter().map(|r| r.meta.duration).sum();
    meta.timings.sql_duration_ms = results.iter().map(|r| r.meta.timings.sql_duration_ms).sum();
    meta.changes = results.iter().map(|r| r.meta.changes).sum();
    meta.rows_read = results.iter().map(|r| r.meta.rows_read).sum();
    meta.rows_written = results.iter().map(|r| r.meta.rows_written).sum();
    meta.changed_db = results.iter().any(|r| r.meta.changed_db);
    meta.total_attempts = results
        .iter()
        .map(|r| r.meta.total_attempts)
        .max()
        .unwrap_or(1);
    Ok(serde_json::to_value(meta)?)
}

/// `dump_options` as [`ExportOptions`]; absent fields are false / every table.
fn dump_options(value: Option<&Json>) -> Result<ExportOptions> {
    let mut options = ExportOptions::default();
    let object = match value {
        None | Some(Json::Null) => return Ok(options),
        Some(Json::Object(o)) => o,
        Some(_) => return Err(Error::invalid("dump_options", "expected an object")),
    };
    let flag = |name: &'static str| match object.get(name) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::invalid(name, "expected true or false")),
    };
    options.no_data = flag("no_data")?;
    options.no_schema = flag("no_schema")?;
    options.tables = match object.get("tables") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::invalid("tables", "expected an array of table names"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::invalid("tables", "expected an array of table names")),
    };
    Ok(options)
}

fn string_field<'a>(body: &'a Map<String, Json>, name: &'static str) -> Result<&'a str> {
    match body.get(name) {
        Some(Json::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid(name, "expected a string")),
        None => Err(Error::invalid(name, "missing")),
    }
}

/// The `etag` field: an md5 in hex (wrangler's `md5-file`), returned in lower case.
fn etag_field(body: &Map<String, Json>) -> Result<String> {
    let etag = string_field(body, "etag")?;
    if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            "etag",
            "expected the file's md5 as 32 hex digits",
        ));
    }
    Ok(etag.to_ascii_lowercase())
}

fn transfer_url(base_url: &str, key: &str) -> String {
    format!("{}{TRANSFER_PATH}{key}", base_url.trim_end_matches('/'))
}

/// A new unguessable key: 128 random bits in hex.
fn new_key() -> Result<String> {
    crate::tenant::guard::new_secret().map_err(|e| Error::invalid("randomness", e.to_string()))
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `Write` into memory that refuses past `limit` bytes.
struct BoundedBuf {
    bytes: Vec<u8>,
    limit: usize,
    overflow: bool,
}

impl std::io::Write for BoundedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflow = true;
            return Err(std::io::Error::other("the export is larger than the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! Key status and rotation.
//!
//! Crash safety (a SIGKILL at any instant leaves every value readable with the key recorded
//! for it):
//!
//! - **Data key rotation** is one SQLite transaction: the new `tenant_keys` row, the old
//!   row marked `retired`, and every sealed field of the tenant re-encrypted under the new
//!   version. Before the commit is durable, the database still holds the old row and the
//!   old ciphertexts; after, the new ones. The retired row stays, so a value sealed under it
//!   elsewhere would still open.
//! - **Master key rotation** makes the new master key durable first ([`KeyProvider::add_key`]:
//!   the key file is rewritten atomically, holding the new key *and* the old ones), then
//!   re-wraps every data key in one transaction, and only after that commits forgets the
//!   old master keys ([`KeyProvider::retain`]). Each wrapped key names the master key that
//!   wrapped it, so at every instant each one is wrapped under a key the file holds.
//!
//! [`KeyProvider::add_key`]: super::KeyProvider::add_key
//! [`KeyProvider::retain`]: super::KeyProvider::retain

use rusqlite::{params, Connection, OptionalExtension};

use super::envelope::{self, FieldRef};
use super::fields::{COLUMNS, ROW_KEY, TABLE};
use super::provider::hex;
use super::KeyRing;
use crate::db::Shared;
use crate::error::{Error, Result};

/// How long a data key version stays active before it falls due, in days.
pub const ROTATION_DAYS: u32 = 90;

/// A tenant's active data key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    /// The tenant.
    pub tenant: String,
    /// The active version.
    pub active_version: u32,
    /// When it was created (ISO-8601 UTC).
    pub created_at: String,
    /// Its age in whole days.
    pub age_days: i64,
    /// When it falls due for rotation (created + 90 days).
    pub rotate_after: Option<String>,
    /// Whether it is due now.
    pub due: bool,
    /// How many older versions are kept (retired).
    pub retired_versions: u32,
}

/// What one data key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rotation {
    /// The tenant.
    pub tenant: String,
    /// The version retired (none when the tenant had no active key).
    pub from_version: Option<u32>,
    /// The new active version.
    pub to_version: u32,
    /// How many sealed values were re-encrypted (or sealed for the first time).
    pub fields_resealed: u64,
}

/// What a master key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MasterRotation {
    /// The id of the master key every data key is now wrapped under.
    pub master_key_id: String,
    /// How many data keys were re-wrapped.
    pub data_keys_rewrapped: u64,
    /// The ids of the master keys no data key needs any more (dropped from a key file;
    /// with `D1VEC_MASTER_KEY`, remove them from the variable yourself).
    pub retired_master_key_ids: Vec<String>,
}

fn has_key_tables(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT count(*) = 2 FROM sqlite_schema WHERE type = 'table' AND name IN ('tenant_keys', ?1)",
        [TABLE],
        |r| r.get(0),
    )?)
}

fn need_tables(conn: &Connection) -> Result<()> {
    if has_key_tables(conn)? {
        Ok(())
    } else {
        Err(Error::invalid(
            "database",
            "it has no `tenant_keys` or `platform_connections` table (apply the migrations first)",
        ))
    }
}

/// Every tenant with an active data key, by tenant.
pub(crate) fn status(shared: &Shared) -> Result<Vec<KeyStatus>> {
    shared.admin.internal_read_tx(|tx| {
        if !has_key_tables(tx)? {
            return Ok(Vec::new());
        }
        let mut stmt = tx.prepare(
            "SELECT k.tenant_id, k.version, k.created_at,
                    CAST(julianday('now') - julianday(k.created_at) AS INTEGER),
                    k.rotate_after,
                    k.rotate_after IS NOT NULL AND k.rotate_after <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                    (SELECT count(*) FROM tenant_keys r WHERE r.tenant_id = k.tenant_id AND r.status = 'retired')
             FROM tenant_keys k WHERE k.status = 'active' ORDER BY k.tenant_id, k.version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyStatus {
                tenant: r.get(0)?,
                active_version: r.get(1)?,
                created_at: r.get(2)?,
                age_days: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                rotate_after: r.get(4)?,
                due: r.get(5)?,
                retired_versions: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// Rotates `tenant`'s data key in one transaction (see the module docs).
pub(crate) fn rotate_tenant(shared: &Shared, tenant: &str) -> Result<Rotation> {
    crate::tenant::validate_tenant_id(tenant)?;
    let ring = &shared.keys;
    shared.admin.internal_tx(|tx| rotate_in(tx, ring, tenant))
}

fn rotate_in(tx: &Connection, ring: &KeyRing, tenant: &str) -> Result<Rotation> {
    need_tables(tx)?;
    let known: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = ?1)",
        [tenant],
        |r| r.get(0),
    )?;
    if !known {
        return Err(Error::invalid(
            "tenant id",
            format!("`{tenant}` is not a row of `tenants`"),
        ));
    }
    let from: Option<u32> = tx
        .query_row(
            "SELECT max(version) FROM tenant_keys WHERE tenant_id = ?1 AND status = 'active'",
            [tenant],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let newest: u32 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM tenant_keys WHERE tenant_id = ?1",
        [tenant],
        |r| r.get(0),
    )?;
    let to = newest
        .checked_add(1)
        .ok_or_else(|| Error::invalid("key version", "no version is left"))?;
    let wrapped = ring.wrap_new(tenant, to)?;
    tx.execute(
        "UPDATE tenant_keys SET status = 'retired', retired_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
         WHERE tenant_id = ?1 AND status = 'active'",
        [tenant],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO tenant_keys (key_id, tenant_id, version, wrapped_key, status, rotate_after)
             VALUES (lower(hex(randomblob(16))), ?1, ?2, ?3, 'active',
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+{ROTATION_DAYS} days'))"
        ),
        params![tenant, to, wrapped],
    )?;
    let rows: Vec<(String, [Option<rusqlite::types::Value>; 2])> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT {ROW_KEY}, {}, {} FROM {TABLE} WHERE tenant_id = ?1 ORDER BY rowid",
            COLUMNS[0], COLUMNS[1]
        ))?;
        let rows = stmt.query_map([tenant], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?])))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut resealed = 0u64;
    let mut update = tx.prepare(&format!(
        "UPDATE {TABLE} SET {} = ?1, {} = ?2, key_version = ?3 WHERE tenant_id = ?4 AND {ROW_KEY} = ?5",
        COLUMNS[0], COLUMNS[1]
    ))?;
    for (row_key, values) in rows {
        let mut out: [Option<Vec<u8>>; 2] = [None, None];
        for (i, value) in values.into_iter().enumerate() {
            let at = FieldRef {
                tenant,
                table: TABLE,
                column: COLUMNS[i],
                row_key: &row_key,
            };
            let plain = match value {
                None | Some(rusqlite::types::Value::Null) => continue,
                Some(rusqlite::types::Value::Blob(b)) if envelope::is_sealed_shape(&b) => {
                    super::access::open_stored(ring, tx, "main", &at, &b)?
                }
                // A plaintext written by another program: sealed now.
                Some(rusqlite::types::Value::Blob(b)) => zeroize::Zeroizing::new(b),
                Some(rusqlite::types::Value::Text(t)) => zeroize::Zeroizing::new(t.into_bytes()),
                Some(rusqlite::types::Value::Integer(n)) => {
                    zeroize::Zeroizing::new(n.to_string().into_bytes())
                }
                Some(rusqlite::types::Value::Real(f)) => {
                    zeroize::Zeroizing::new(f.to_string().into_bytes())
                }
            };
            out[i] = Some(ring.seal(&at, to, &wrapped, &plain)?);
            resealed += 1;
        }
        update.execute(params![out[0], out[1], to, tenant, row_key])?;
    }
    Ok(Rotation {
        tenant: tenant.to_owned(),
        from_version: from,
        to_version: to,
        fields_resealed: resealed,
    })
}

/// The tenants whose active key is due, or (`all`) every tenant with a key or a stored
/// token.
fn tenants(shared: &Shared, all: bool) -> Result<Vec<String>> {
    shared.admin.internal_read_tx(|tx| {
        if !has_key_tables(tx)? {
            return Ok(Vec::new());
        }
        let sql = if all {
            format!(
                "SELECT tenant_id FROM tenant_keys WHERE status = 'active'
                 UNION SELECT tenant_id FROM {TABLE} WHERE {} IS NOT NULL OR {} IS NOT NULL
                 ORDER BY 1",
                COLUMNS[0], COLUMNS[1]
            )
        } else {
            "SELECT tenant_id FROM tenant_keys WHERE status = 'active'
               AND rotate_after <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ORDER BY 1"
                .to_owned()
        };
        let mut stmt = tx.prepare(&sql)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })
}

/// Rotates every tenant whose key is due (`all`: every tenant with a key or a token),
/// each in its own transaction.
pub(crate) fn rotate_many(shared: &Shared, all: bool) -> Result<Vec<Rotation>> {
    tenants(shared, all)?
        .iter()
        .map(|t| rotate_tenant(shared, t))
        .collect()
}

/// Re-wraps every data key under a new master key (see the module docs).
pub(crate) fn rotate_master(shared: &Shared) -> Result<MasterRotation> {
    let ring = &shared.keys;
    let keys = ring.provider().add_key()?;
    let active = keys.active().id();
    let before: Vec<_> = keys.all().iter().map(|k| k.id()).collect();
    ring.set_masters(keys);
    let rewrapped = shared.admin.internal_tx(|tx| {
        if !has_key_tables(tx)? {
            return Ok(0u64);
        }
        let rows: Vec<(String, u32, Vec<u8>)> = {
            let mut stmt = tx.prepare(
                "SELECT tenant_id, version, wrapped_key FROM tenant_keys
                 WHERE wrapped_key IS NOT NULL AND status != 'destroyed' ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut update = tx.prepare(
            "UPDATE tenant_keys SET wrapped_key = ?1 WHERE tenant_id = ?2 AND version = ?3",
        )?;
        let mut n = 0u64;
        for (tenant, version, wrapped) in rows {
            let fresh = ring.rewrap(&tenant, version, &wrapped)?;
            update.execute(params![fresh, tenant, version])?;
            n += 1;
        }
        Ok(n)
    })?;
    ring.provider().retain(&[active])?;
    Ok(MasterRotation {
        master_key_id: hex(&active),
        data_keys_rewrapped: rewrapped,
        retired_master_key_ids: before
            .iter()
            .filter(|id| **id != active)
            .map(|id| hex(id))
            .collect(),
    })
}

//! Reading a sealed field back: [`open_stored`] (engine use) and [`open_secret`] (the
//! audited API behind `TenantSession::open_secret`), and the audit row it writes.

use rusqlite::{Connection, OptionalExtension};
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::envelope::{self, FieldRef};
use super::error::KeyError;
use super::{Field, KeyRing, Secret};
use crate::error::{Error, Result};
use crate::sql::quote_ident as ident;

/// The wrapped data key of version `version` of `tenant` in `schema`.
pub(crate) fn wrapped_key(
    conn: &Connection,
    schema: &str,
    tenant: &str,
    version: u32,
) -> Result<Vec<u8>> {
    let wrapped: Option<Option<Vec<u8>>> = conn
        .prepare_cached(&format!(
            "SELECT wrapped_key FROM {}.tenant_keys WHERE tenant_id = ?1 AND version = ?2 AND status != 'destroyed'",
            ident(schema)
        ))?
        .query_row(rusqlite::params![tenant, version], |r| r.get(0))
        .optional()?;
    wrapped.flatten().ok_or_else(|| {
        KeyError::MissingKey {
            what: format!("data key version {version} of tenant `{tenant}`"),
        }
        .into()
    })
}

/// Opens the sealed value `stored` of `field`, with the key version it names.
pub(crate) fn open_stored(
    ring: &KeyRing,
    conn: &Connection,
    schema: &str,
    field: &FieldRef<'_>,
    stored: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let version = envelope::sealed_version(stored).ok_or_else(|| KeyError::Tampered {
        location: envelope::location(field),
    })?;
    let wrapped = wrapped_key(conn, schema, field.tenant, version)?;
    let key = ring.data_key(field.tenant, version, &wrapped)?;
    Ok(envelope::open(&key, field, stored)?)
}

/// What a stored field holds, as read for opening.
enum Stored {
    Missing,
    Null,
    Sealed(Vec<u8>),
    NotSealed,
}

fn read_field(
    conn: &Connection,
    schema: &str,
    tenant: &str,
    connection_id: &str,
    field: Field,
) -> Result<Stored> {
    let sql = format!(
        "SELECT {col} FROM {s}.{t} WHERE tenant_id = ?1 AND {rk} = ?2",
        col = ident(field.column()),
        s = ident(schema),
        t = ident(super::fields::TABLE),
        rk = ident(super::fields::ROW_KEY),
    );
    let value = conn
        .prepare(&sql)?
        .query_row([tenant, connection_id], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Null => Stored::Null,
                rusqlite::types::ValueRef::Blob(b) => Stored::Sealed(b.to_vec()),
                _ => Stored::NotSealed,
            })
        })
        .optional()?;
    Ok(value.unwrap_or(Stored::Missing))
}

/// Opens `field` of connection `connection_id` of `tenant` and appends an audit row
/// (`connections.read_secret`, outcome `success` or `error`) in the same transaction.
/// The caller has checked the permission.
pub(crate) fn open_secret(
    conn: &crate::sql::conn::SqlConn,
    ring: &KeyRing,
    tenant: &str,
    actor: &str,
    connection_id: &str,
    field: Field,
) -> Result<Secret<String>> {
    let schema = conn.schema().to_owned();
    let outcome = conn.internal_tx(|tx| {
        let result = match read_field(tx, &schema, tenant, connection_id, field)? {
            Stored::Missing => Err(Error::invalid(
                "connection id",
                format!("tenant `{tenant}` has no connection `{connection_id}`"),
            )),
            Stored::Null => Err(Error::invalid(
                "connection field",
                format!("connection `{connection_id}` has no {}", field.column()),
            )),
            Stored::NotSealed => Err(KeyError::Tampered {
                location: format!(
                    "{}.{} of row `{connection_id}` (tenant `{tenant}`), which is not a sealed value,",
                    super::fields::TABLE,
                    field.column()
                ),
            }
            .into()),
            Stored::Sealed(bytes) => {
                let at = FieldRef {
                    tenant,
                    table: super::fields::TABLE,
                    column: field.column(),
                    row_key: connection_id,
                };
                open_stored(ring, tx, &schema, &at, &bytes).and_then(|plain| {
                    String::from_utf8(plain.to_vec())
                        .map(Secret::new)
                        .map_err(|e| {
                            let mut bytes = e.into_bytes();
                            zeroize::Zeroize::zeroize(&mut bytes);
                            Error::invalid("sealed value", "its plaintext is not UTF-8 text")
                        })
                })
            }
        };
        let details = serde_json::json!({ "field": field.column() }).to_string();
        append_audit(
            tx,
            &schema,
            &AuditEntry {
                tenant,
                actor,
                action: "connections.read_secret",
                resource_type: "platform_connection",
                resource_id: connection_id,
                outcome: if result.is_ok() { "success" } else { "error" },
                details: &details,
            },
        )?;
        Ok(result)
    })?;
    outcome
}

/// One row of `audit_logs`.
pub(crate) struct AuditEntry<'a> {
    pub tenant: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub outcome: &'a str,
    pub details: &'a str,
}

/// Appends `entry` to `audit_logs` in `schema`, chained to the tenant's previous row:
/// `hash` is SHA-256 (hex) over every field, each as a 4-byte little-endian length and its
/// bytes, in column order, ending with `prev_hash` (empty for the first row).
pub(crate) fn append_audit(conn: &Connection, schema: &str, entry: &AuditEntry<'_>) -> Result<()> {
    let s = ident(schema);
    let prev: Option<String> = conn
        .prepare_cached(&format!(
            "SELECT hash FROM {s}.audit_logs WHERE tenant_id = ?1 ORDER BY rowid DESC LIMIT 1"
        ))?
        .query_row([entry.tenant], |r| r.get(0))
        .optional()?;
    let audit_id = crate::tenant::guard::new_secret().map_err(|_| KeyError::Randomness)?;
    let created_at = crate::time::now_iso();
    let mut hash = sha2::Sha256::new();
    for part in [
        audit_id.as_str(),
        entry.tenant,
        entry.actor,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.outcome,
        entry.details,
        created_at.as_str(),
        prev.as_deref().unwrap_or(""),
    ] {
        hash.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let hash = super::provider::hex(&hash.finalize());
    conn.execute(
        &format!(
            "INSERT INTO {s}.audit_logs (audit_id, tenant_id, actor, action, resource_type, resource_id, outcome, details, created_at, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        rusqlite::params![
            audit_id,
            entry.tenant,
            entry.actor,
            entry.action,
            entry.resource_type,
            entry.resource_id,
            entry.outcome,
            entry.details,
            created_at,
            prev,
            hash
        ],
    )?;
    Ok(())
}

//! Per-tenant envelope encryption of secret fields (see ARCHITECTURE.md, "Keys").
//!
//! - A **master key** (256 bits) comes from a [`KeyProvider`]: `D1VEC_MASTER_KEY`
//!   ([`EnvKey`]), a key file beside the database ([`KeyFile`], the default for a file
//!   database) or memory ([`EphemeralKey`], the default for an in-memory database).
//! - Each tenant has a random 256-bit **data key** per version, stored in `tenant_keys`
//!   wrapped under the master key with AES-256-GCM, the tenant and version as associated
//!   data.
//! - Each secret **field** (`platform_connections.access_token_ct` and `refresh_token_ct`)
//!   is stored as `version || nonce || ciphertext+tag`, bound to tenant, table, column, row
//!   key and version ([`fields`] seals on every write path). It is read back only through
//!   [`crate::TenantSession::open_secret`], as a [`Secret`].
//! - [`rotate`]: a tenant's data key (every sealed field re-encrypted in one transaction)
//!   and the master key (every data key re-wrapped).

pub(crate) mod access;
pub(crate) mod envelope;
mod error;
pub(crate) mod fields;
pub(crate) mod provider;
pub(crate) mod rotate;
mod secret;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use error::KeyError;
pub use provider::{
    EnvKey, EphemeralKey, KeyFile, KeyProvider, MasterKey, MasterKeyId, MasterKeys, MASTER_KEY_ENV,
};
pub use rotate::{KeyStatus, MasterRotation, Rotation};
pub use secret::Secret;

use crate::error::Result;
use envelope::{FieldRef, KeyBytes};

/// A secret field of `platform_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `access_token_ct`.
    AccessToken,
    /// `refresh_token_ct`.
    RefreshToken,
}

impl Field {
    /// The column the field is stored in.
    pub fn column(self) -> &'static str {
        match self {
            Field::AccessToken => fields::COLUMNS[0],
            Field::RefreshToken => fields::COLUMNS[1],
        }
    }
}

/// The keys a database holds in memory: the provider's master keys (loaded on first use)
/// and the data keys unwrapped so far. Unwrapped keys live only here, zeroed when dropped;
/// each is cached under its tenant, version *and* wrapped bytes, so a re-wrapped or
/// replaced row is unwrapped afresh.
pub(crate) struct KeyRing {
    provider: Arc<dyn KeyProvider>,
    masters: Mutex<Option<MasterKeys>>,
    cache: Mutex<HashMap<(String, u32), CachedKey>>,
}

/// An unwrapped data key and the wrapped bytes it came from.
type CachedKey = (Vec<u8>, KeyBytes);

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    pub(crate) fn new(provider: Arc<dyn KeyProvider>) -> KeyRing {
        KeyRing {
            provider,
            masters: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn provider(&self) -> &dyn KeyProvider {
        self.provider.as_ref()
    }

    /// The active master key (loading the provider's keys on first use).
    fn active_master(&self) -> Result<MasterKey> {
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = masters.as_ref() {
            return Ok(m.active().clone());
        }
        let loaded = self.provider.load()?;
        let active = loaded.active().clone();
        *masters = Some(loaded);
        Ok(active)
    }

    /// The master key `id`; reloads the provider once when it is not known (another
    /// process may have rotated the master key).
    fn master(&self, id: &MasterKeyId) -> Result<MasterKey> {
        let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = masters.as_ref().and_then(|m| m.get(id)) {
            return Ok(key.clone());
        }
        let loaded = self.provider.load()?;
        let found = loaded.get(id).cloned();
        *masters = Some(loaded);
        found.ok_or_else(|| {
            KeyError::MissingKey {
                what: format!(
                    "master key {} (not held by the key provider)",
                    provider::hex(id)
                ),
            }
            .into()
        })
    }

    /// Replaces the master keys in memory (after a master rotation).
    pub(crate) fn set_masters(&self, keys: MasterKeys) {
        *self.masters.lock().unwrap_or_else(|e| e.into_inner()) = Some(keys);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// A fresh data key for version `version` of `tenant`, wrapped under the active master
    /// key; the unwrapped key goes to the cache.
    pub(crate) fn wrap_new(&self, tenant: &str, version: u32) -> Result<Vec<u8>> {
        let master = self.active_master()?;
        let key = envelope::random_key()?;
        let wrapped = envelope::wrap(master.bytes(), &master.id(), tenant, version, &key)?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((tenant.to_owned(), version), (wrapped.clone(), key));
        Ok(wrapped)
    }

    /// Re-wraps a data key under the active master key.
    pub(crate) fn rewrap(&self, tenant: &str, version: u32, wrapped: &[u8]) -> Result<Vec<u8>> {
        let key = self.data_key(tenant, version, wrapped)?;
        let master = self.active_master()?;
        Ok(envelope::wrap(
            master.bytes(),
            &master.id(),
            tenant,
            version,
            &key,
        )?)
    }

    /// The data key `wrapped` holds for version `version` of `tenant`.
    pub(crate) fn data_key(&self, tenant: &str, version: u32, wrapped: &[u8]) -> Result<KeyBytes> {
        let slot = (tenant.to_owned(), version);
        if let Some((w, key)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&slot)
        {
            if w.as_slice() == wrapped {
                return Ok(key.clone());
            }
        }
        let id = envelope::wrapped_master_id(wrapped).ok_or_else(|| KeyError::Tampered {
            location: format!("data key version {version} of tenant `{tenant}`"),
        })?;
        let master = self.master(&id)?;
        let key = envelope::unwrap(master.bytes(), tenant, version, wrapped)?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot, (wrapped.to_vec(), key.clone()));
        Ok(key)
    }

    /// Seals `plaintext` at `field` under data key version `version` (wrapped as `wrapped`).
    pub(crate) fn seal(
        &self,
        field: &FieldRef<'_>,
        version: u32,
        wrapped: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.data_key(field.tenant, version, wrapped)?;
        Ok(envelope::seal(&key, version, field, plaintext)?)
    }
}

impl From<KeyError> for crate::error::Error {
    fn from(e: KeyError) -> Self {
        crate::error::Error::Key(e)
    }
}

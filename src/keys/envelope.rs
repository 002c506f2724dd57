//! AES-256-GCM under associated data: wrapping a tenant's data key under a master key, and
//! sealing one field's value under a data key. The cipher is RustCrypto's `aes-gcm`; this
//! module only lays out bytes and associated data (docs/format.md draws both layouts).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::error::KeyError;

/// Bytes of a key (master or data): 256 bits.
pub const KEY_BYTES: usize = 32;
/// Bytes of a nonce: 96 bits, random per value.
pub const NONCE_BYTES: usize = 12;
/// Bytes of the GCM tag.
pub const TAG_BYTES: usize = 16;
/// Bytes of a master key id.
pub const MASTER_ID_BYTES: usize = 8;
/// Bytes of the key version that starts a sealed field.
pub const VERSION_BYTES: usize = 4;
/// The shortest sealed field: version, nonce and tag around an empty plaintext.
pub const MIN_SEALED_BYTES: usize = VERSION_BYTES + NONCE_BYTES + TAG_BYTES;
/// The length of a wrapped data key.
pub const WRAPPED_BYTES: usize = MASTER_ID_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES;

/// A 256-bit key, zeroed when dropped.
pub type KeyBytes = Zeroizing<[u8; KEY_BYTES]>;

/// What a sealed field is bound to: its place in the database and the key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef<'a> {
    /// The row's tenant.
    pub tenant: &'a str,
    /// The table.
    pub table: &'a str,
    /// The column.
    pub column: &'a str,
    /// The row's key (`connection_id` for `platform_connections`).
    pub row_key: &'a str,
}

/// Associated data: a domain label, then each part as a 4-byte little-endian length and
/// its bytes, so that no two different tuples encode alike.
fn associated_data(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn wrap_ad(tenant: &str, version: u32, master_id: &[u8; MASTER_ID_BYTES]) -> Vec<u8> {
    associated_data(
        "d1vec/tenant-key/1",
        &[tenant.as_bytes(), &version.to_be_bytes(), master_id],
    )
}

fn field_ad(field: &FieldRef<'_>, version: u32) -> Vec<u8> {
    associated_data(
        "d1vec/field/1",
        &[
            field.tenant.as_bytes(),
            field.table.as_bytes(),
            field.column.as_bytes(),
            field.row_key.as_bytes(),
            &version.to_be_bytes(),
        ],
    )
}

/// Fresh random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| KeyError::Randomness)?;
    Ok(out)
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<KeyBytes, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(key.as_mut()).map_err(|_| KeyError::Randomness)?;
    Ok(key)
}

fn encrypt(key: &[u8; KEY_BYTES], nonce: &[u8; NONCE_BYTES], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    // Encryption fails only for inputs longer than GCM's 64 GiB limit, which D1's value
    // limit rules out; an empty result then fails every later open instead of panicking.
    cipher
        .encrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .unwrap_or_default()
}

fn decrypt(
    key: &[u8; KEY_BYTES],
    nonce: &[u8],
    ct: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Wraps `data_key` (version `version` of `tenant`) under the master key `master`, whose
/// id is `master_id`: `master_id || nonce || ciphertext+tag`.
pub fn wrap(
    master: &[u8; KEY_BYTES],
    master_id: &[u8; MASTER_ID_BYTES],
    tenant: &str,
    version: u32,
    data_key: &[u8; KEY_BYTES],
) -> Result<Vec<u8>, KeyError> {
    let nonce: [u8; NONCE_BYTES] = random()?;
    let mut out = Vec::with_capacity(WRAPPED_BYTES);
    out.extend_from_slice(master_id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&encrypt(
        master,
        &nonce,
        data_key,
        &wrap_ad(tenant, version, master_id),
    ));
    Ok(out)
}

/// The master key id a wrapped data key names, or `None` when the bytes are not a wrapped
/// key's length.
pub fn wrapped_master_id(wrapped: &[u8]) -> Option<[u8; MASTER_ID_BYTES]> {
    if wrapped.len() != WRAPPED_BYTES {
        return None;
    }
    wrapped[..MASTER_ID_BYTES].try_into().ok()
}

/// Unwraps a data key wrapped by [`wrap`] for `tenant` and `version`.
pub fn unwrap(
    master: &[u8; KEY_BYTES],
    tenant: &str,
    version: u32,
    wrapped: &[u8],
) -> Result<KeyBytes, KeyError> {
    let bad = || KeyError::Tampered {
        location: format!("data key version {version} of tenant `{tenant}`"),
    };
    let master_id = wrapped_master_id(wrapped).ok_or_else(bad)?;
    let body = &wrapped[MASTER_ID_BYTES..];
    let plain = decrypt(
        master,
        &body[..NONCE_BYTES],
        &body[NONCE_BYTES..],
        &wrap_ad(tenant, version, &master_id),
    )
    .ok_or_else(bad)?;
    let bytes: [u8; KEY_BYTES] = plain.as_slice().try_into().map_err(|_| bad())?;
    Ok(Zeroizing::new(bytes))
}

/// Whether `value` has a sealed field's shape: long enough, and a key version of at least 1
/// in front. (Whether it opens is known only with its key.)
pub fn is_sealed_shape(value: &[u8]) -> bool {
    sealed_version(value).is_some()
}

/// The key version a sealed field names, if `value` has a sealed field's shape.
pub fn sealed_version(value: &[u8]) -> Option<u32> {
    if value.len() < MIN_SEALED_BYTES {
        return None;
    }
    let version = u32::from_be_bytes(value[..VERSION_BYTES].try_into().ok()?);
    (version >= 1).then_some(version)
}

/// Seals `plaintext` at `field` under `data_key` (version `version`):
/// `version (4 bytes, big-endian) || nonce || ciphertext+tag`.
pub fn seal(
    data_key: &[u8; KEY_BYTES],
    version: u32,
    field: &FieldRef<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let nonce: [u8; NONCE_BYTES] = random()?;
    let mut out = Vec::with_capacity(MIN_SEALED_BYTES + plaintext.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&encrypt(
        data_key,
        &nonce,
        plaintext,
        &field_ad(field, version),
    ));
    Ok(out)
}

/// Opens a value sealed by [`seal`]; fails with [`KeyError::Tampered`] when it was sealed
/// at another place, under another version or key, or changed in any bit.
pub fn open(
    data_key: &[u8; KEY_BYTES],
    field: &FieldRef<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bad = || KeyError::Tampered {
        location: location(field),
    };
    let version = sealed_version(sealed).ok_or_else(bad)?;
    let body = &sealed[VERSION_BYTES..];
    decrypt(
        data_key,
        &body[..NONCE_BYTES],
        &body[NONCE_BYTES..],
        &field_ad(field, version),
    )
    .ok_or_else(bad)
}

/// Where a field is, for messages (names only, never values).
pub fn location(field: &FieldRef<'_>) -> String {
    format!(
        "{}.{} of row `{}` (tenant `{}`)",
        field.table, field.column, field.row_key, field.tenant
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field<'a>(tenant: &'a str, row: &'a str) -> FieldRef<'a> {
        FieldRef {
            tenant,
            table: "platform_connections",
            column: "access_token_ct",
            row_key: row,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn seal_open_round_trip(
            key in any::<[u8; 32]>(),
            version in 1u32..=u32::MAX,
            tenant in "[a-z_:]{1,12}",
            row in "[a-z0-9]{0,12}",
            plain in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let f = field(&tenant, &row);
            let sealed = seal(&key, version, &f, &plain).unwrap();
            prop_assert_eq!(sealed.len(), MIN_SEALED_BYTES + plain.len());
            prop_assert_eq!(sealed_version(&sealed), Some(version));
            let opened = open(&key, &f, &sealed).unwrap();
            prop_assert_eq!(opened.as_slice(), plain.as_slice());
            // The same value at another row, or under another key, does not open.
            let other_row = format!("{row}x");
            prop_assert!(open(&key, &field(&tenant, &other_row), &sealed).is_err());
            let mut other_key = key;
            other_key[0] ^= 1;
            prop_assert!(open(&other_key, &f, &sealed).is_err());
        }

        #[test]
        fn any_flipped_bit_fails(
            key in any::<[u8; 32]>(),
            plain in proptest::collection::vec(any::<u8>(), 0..64),
            bit in any::<proptest::sample::Index>(),
        ) {
            let f = field("t", "r");
            let mut sealed = seal(&key, 1, &f, &plain).unwrap();
            let at = bit.index(sealed.len() * 8);
            sealed[at / 8] ^= 1 << (at % 8);
            prop_assert!(open(&key, &f, &sealed).is_err());
        }

        #[test]
        fn nonces_are_unique(
            key in any::<[u8; 32]>(),
            plain in proptest::collection::vec(any::<u8>(), 0..32),
            n in 2usize..200,
        ) {
            let f = field("t", "r");
            let mut nonces = std::collections::HashSet::new();
            let mut bodies = std::collections::HashSet::new();
            for _ in 0..n {
                let sealed = seal(&key, 1, &f, &plain).unwrap();
                prop_assert!(nonces.insert(sealed[VERSION_BYTES..VERSION_BYTES + NONCE_BYTES].to_vec()));
                prop_assert!(bodies.insert(sealed));
            }
        }

        #[test]
        fn wrap_unwrap_round_trip(
            master in any::<[u8; 32]>(),
            data in any::<[u8; 32]>(),
            version in 1u32..1000,
            tenant in "[a-z]{1,8}",
        ) {
            let id = [7u8; MASTER_ID_BYTES];
            let wrapped = wrap(&master, &id, &tenant, version, &data).unwrap();
            prop_assert_eq!(wrapped.len(), WRAPPED_BYTES);
            prop_assert_eq!(*unwrap(&master, &tenant, version, &wrapped).unwrap(), data);
            // Bound to tenant and version.
            let other = format!("{tenant}x");
            prop_assert!(unwrap(&master, &other, version, &wrapped).is_err());
            prop_assert!(unwrap(&master, &tenant, version + 1, &wrapped).is_err());
        }
    }

    #[test]
    fn associated_data_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must differ.
        assert_ne!(
            associated_data("x", &[b"ab", b"c"]),
            associated_data("x", &[b"a", b"bc"])
        );
    }

    #[test]
    fn short_or_version_zero_is_not_sealed() {
        assert!(!is_sealed_shape(&[0u8; 40]));
        assert!(!is_sealed_shape(&[0, 0, 0, 1, 0, 0]));
        let mut v = vec![0u8; MIN_SEALED_BYTES];
        v[3] = 1;
        assert!(is_sealed_shape(&v));
    }
}

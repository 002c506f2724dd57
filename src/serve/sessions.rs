//! A small pool of open [`TenantSession`]s per (database, tenant-bound token).
//!
//! Opening a session opens a SQLite connection and builds the tenant's views, which costs
//! far more than a query; so a session is kept after its request and reused by the next
//! request of the same token on the same database. A session is taken out of the pool for
//! the whole of one request, so two requests never share one; at most [`MAX_IDLE`] idle
//! sessions are kept per key, the rest are closed. Only sessions of tokens without a user
//! are kept (a user's role is read when its session opens).

use std::collections::HashMap;
use std::sync::Mutex;

use super::TenantToken;
use crate::error::Result;
use crate::{Database, TenantSession};

/// The most idle sessions kept per (database, token).
pub(crate) const MAX_IDLE: usize = 4;

/// Which sessions a key stands for: a database (by the server's id for it) and a token.
type Key = (String, usize);

/// Idle sessions by key.
#[derive(Default)]
pub(crate) struct Sessions {
    idle: Mutex<HashMap<Key, Vec<TenantSession>>>,
}

impl Sessions {
    /// An idle session of `token` (at position `at`) on `db`, or a new one. Blocking.
    pub(crate) fn take(
        &self,
        db: &Database,
        db_key: &str,
        at: usize,
        token: &TenantToken,
    ) -> Result<TenantSession> {
        let key = (db_key.to_owned(), at);
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key)
            .and_then(Vec::pop);
        if let Some(session) = idle {
            return Ok(session);
        }
        let session = db.tenant(&token.tenant)?;
        match &token.user {
            Some(user) => session.as_user(user),
            None => Ok(session),
        }
    }

    /// Returns a session taken with [`Sessions::take`] after its request. A session acting
    /// as a user is closed instead: its role and status were read when it opened, and a
    /// pooled one would keep them after the user is demoted or disabled.
    pub(crate) fn give(
        &self,
        db_key: &str,
        at: usize,
        token: &TenantToken,
        session: TenantSession,
    ) {
        if token.user.is_some() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry((db_key.to_owned(), at)).or_default();
        if list.len() < MAX_IDLE {
            list.push(session);
        }
    }

    /// Closes every idle session of the database `db_key` (it is being deleted).
    pub(crate) fn forget(&self, db_key: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(k, _), _| k != db_key);
    }
}

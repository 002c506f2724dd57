//! The D1 routes under `/accounts/{account_id}/d1/database`, wired to `crate::serve::d1`.
//!
//! STUB: until the D1 module lands, every D1 route answers 501 with a message saying so.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::error::ApiError;
use super::AppState;
use crate::error::Result;
use crate::Database;

/// The databases the server serves (stub: none beyond the primary).
pub(crate) struct D1;

impl D1 {
    /// The D1 state for the primary database `db`.
    pub(crate) fn open(_db: Arc<Database>) -> Result<D1> {
        Ok(D1)
    }
}

/// The D1 routes, relative to `/client/v4/accounts/{account_id}` (behind authentication).
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/d1/database", any(d1_not_wired))
        .route("/d1/database/{*rest}", any(d1_not_wired))
}

/// Routes that carry their own credential (signed transfer URLs); none in the stub.
pub(super) fn unauthenticated_routes() -> Router<Arc<AppState>> {
    Router::new()
}

async fn d1_not_wired() -> Response {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        501,
        "the D1 routes are not wired in this build of d1vec serve",
    )
    .into_response()
}

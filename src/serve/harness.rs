//! The server's router without a socket, for the `http_request` fuzz target and the
//! property tests (`crate::fuzzing::HttpHarness`): requests go through the same routes,
//! middleware and authentication as over TCP.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, Method};
use http_body_util::BodyExt;
use serde_json::Value as Json;
use tower_service::Service;

use super::auth::Auth;
use super::{new_state, router, ServeOptions, TenantToken};
use crate::error::{Error, Result};
use crate::Database;

/// The tenant-bound token of the harness (tenant `t1`).
pub const TENANT_TOKEN: &str = "fuzz-tenant-token";

/// The harness's admin token (tenant tokens need one: see `Auth::new`).
const ADMIN_TOKEN: &str = "fuzz-admin-token";

/// One route a fuzz input can reach: method, path under the account, content type.
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "vectorize/v2/indexes", "application/json"),
    (
        "POST",
        "vectorize/v2/indexes/v/insert",
        "application/x-ndjson",
    ),
    (
        "POST",
        "vectorize/v2/indexes/v/upsert",
        "application/x-ndjson",
    ),
    (
        "POST",
        "vectorize/v2/indexes/v/upsert",
        "multipart/form-data; boundary=b",
    ),
    ("POST", "vectorize/v2/indexes/v/upsert", "application/json"),
    (
        "POST",
        "vectorize/v2/indexes/p/upsert",
        "application/x-ndjson",
    ),
    ("POST", "vectorize/v2/indexes/v/query", "application/json"),
    ("POST", "vectorize/v2/indexes/p/query", "application/json"),
    (
        "POST",
        "vectorize/v2/indexes/v/get_by_ids",
        "application/json",
    ),
    (
        "POST",
        "vectorize/v2/indexes/v/delete_by_ids",
        "application/json",
    ),
    (
        "POST",
        "vectorize/v2/indexes/v/metadata_index/create",
        "application/json",
    ),
    (
        "POST",
        "vectorize/v2/indexes/v/metadata_index/delete",
        "application/json",
    ),
    ("POST", "d1/database", "application/json"),
    ("POST", "d1/database/memory/query", "application/json"),
    ("POST", "d1/database/memory/raw", "application/json"),
    ("POST", "d1/database/memory/import", "application/json"),
];

/// A server's router over an in-memory database holding two tenants (`t1`, `t2`), a
/// shared index `v` (3 dimensions, cosine) and a private index `p` (2, euclidean).
pub struct HttpHarness {
    db: Arc<Database>,
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

impl HttpHarness {
    /// A fresh harness.
    pub fn new() -> Result<HttpHarness> {
        let db = Database::open_in_memory()?;
        db.apply_migrations(&crate::sql::migrate::bundled())?;
        db.exec("INSERT INTO tenants (tenant_id, name) VALUES ('t1', 'One'), ('t2', 'Two')")?;
        db.create_index(&crate::vectorize::CreateIndex::new(
            "v",
            3,
            crate::index::Metric::Cosine,
        ))?;
        db.create_index(
            &crate::vectorize::CreateIndex::new("p", 2, crate::index::Metric::Euclidean)
                .scope(crate::vectorize::Scope::Private),
        )?;
        let db = Arc::new(db);
        let options = ServeOptions {
            listen: ([127, 0, 0, 1], 0).into(),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            tenant_tokens: vec![TenantToken {
                token: TENANT_TOKEN.to_owned(),
                tenant: "t1".to_owned(),
                user: None,
            }],
        };
        let auth = Auth::new(&options, options.listen)?;
        let state = new_state(Arc::clone(&db), &options, auth, options.listen)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("tokio runtime"))?;
        Ok(HttpHarness {
            db,
            runtime,
            router: router(state),
        })
    }

    /// The database behind the router.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// How many routes [`HttpHarness::request`] picks from.
    pub fn routes() -> usize {
        ROUTES.len()
    }

    /// Sends `body` to route `route % routes()` (as the tenant token when `tenant`, else as
    /// admin); returns the status and the body, parsed as JSON (`Json::Null` if it is not).
    pub fn request(&mut self, route: usize, tenant: bool, body: &[u8]) -> (u16, Json) {
        let (method, path, content_type) = ROUTES[route % ROUTES.len()];
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST))
            .uri(format!("/client/v4/accounts/fuzz/{path}"))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::HOST, "127.0.0.1");
        let token = if tenant { TENANT_TOKEN } else { ADMIN_TOKEN };
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        let Ok(request) = request.body(Body::from(body.to_vec())) else {
            return (0, Json::Null);
        };
        let router = &mut self.router;
        self.runtime.block_on(async move {
            let _ = std::future::poll_fn(|cx| {
                <axum::Router as Service<Request>>::poll_ready(router, cx)
            })
            .await;
            let Ok(response) = router.call(request).await;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (status, serde_json::from_slice(&bytes).unwrap_or(Json::Null))
        })
    }
}

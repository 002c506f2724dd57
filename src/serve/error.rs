//! The mapping from [`crate::Error`] to an HTTP status and a Cloudflare error code.
//!
//! The code is the one the command line prints ([`crate::Error::json_code`]): Vectorize's own
//! codes for Vectorize errors, else the HTTP-like [`crate::ErrorCode`]. The status follows
//! [`crate::Error::code`] (400, 403, 500), with the statuses Cloudflare uses for a missing
//! index (404) and rate limiting (429). On D1 routes, a SQL error that the caller can fix
//! carries D1's code 7500, as hosted D1 answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{D1Problem, Error, ErrorCode};
use crate::vectorize::error::codes;

use super::envelope;

/// Which API a route belongs to (the codes differ for the same kind of error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `vectorize/v2/...`
    Vectorize,
    /// `d1/database/...`
    D1,
}

/// D1's code for an error in the SQL a request ran (`SQLITE_ERROR` and the like).
pub(crate) const D1_QUERY_ERROR: u32 = 7500;
/// Cloudflare's code for a URL that matches no route.
pub(crate) const NO_ROUTE: u32 = 7003;
/// Cloudflare's code for a method the route does not take.
pub(crate) const METHOD_NOT_ALLOWED: u32 = 7001;
/// Cloudflare's code for a missing or wrong credential.
pub(crate) const AUTHENTICATION: u32 = 10000;
/// Cloudflare's code for a request body that is not valid JSON (outside Vectorize, which
/// has its own 40026).
pub(crate) const MALFORMED_JSON: u32 = 6007;
/// d1vec's code for a request body larger than the route takes.
pub(crate) const BODY_TOO_LARGE: u32 = 413;
/// d1vec's code for a request that ran out of time.
pub(crate) const TIMEOUT: u32 = 504;
/// d1vec's code for a failure inside the server.
pub(crate) const INTERNAL: u32 = 500;

/// An error as the server sends it: status, code and message, in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The Cloudflare (or d1vec) code in `errors[0].code`.
    pub code: u32,
    /// The message in `errors[0].message`.
    pub message: String,
}

impl ApiError {
    /// An error with these parts.
    pub(crate) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A library error, as a route of `api` answers it.
    pub(crate) fn from_error(e: &Error, api: Api) -> Self {
        if let Error::D1Database { problem, .. } = e {
            let status = match problem {
                D1Problem::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            return ApiError::new(status, problem.cloudflare_code(), e.to_string());
        }
        let code = e.json_code();
        let status = match (e, e.code()) {
            (Error::Vectorize(v), _) => match v.code {
                codes::INDEX_NOT_FOUND => StatusCode::NOT_FOUND,
                codes::TOO_MANY_REQUESTS => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            },
            (_, ErrorCode::Forbidden) => StatusCode::FORBIDDEN,
            (_, ErrorCode::Internal) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match api {
            Api::D1 if status == StatusCode::BAD_REQUEST => D1_QUERY_ERROR,
            _ => code,
        };
        ApiError::new(status, code, e.to_string())
    }

    /// A failure inside the server (a worker that panicked, a closed channel).
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, message)
    }

    /// A request body that is not JSON (or not the JSON the route takes), naming the problem.
    pub(crate) fn bad_json(api: Api, problem: impl std::fmt::Display) -> Self {
        match api {
            Api::Vectorize => ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST_BODY,
                format!("Failed to parse the request body as JSON: {problem}"),
            ),
            Api::D1 => ApiError::new(
                StatusCode::BAD_REQUEST,
                MALFORMED_JSON,
                format!("Malformed JSON in request body: {problem}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = envelope::failure(self.status, self.code, &self.message);
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectorize::VectorizeError;

    #[test]
    fn statuses_follow_the_cli_codes() {
        let cases: Vec<(Error, Api, StatusCode, u32)> = vec![
            (
                VectorizeError::index_not_found("x").into(),
                Api::Vectorize,
                StatusCode::NOT_FOUND,
                3000,
            ),
            (
                VectorizeError::duplicate_index_name("x").into(),
                Api::Vectorize,
                StatusCode::BAD_REQUEST,
                3002,
            ),
            (
                VectorizeError::new(codes::TOO_MANY_REQUESTS, "Too Many Requests").into(),
                Api::Vectorize,
                StatusCode::TOO_MANY_REQUESTS,
                40041,
            ),
            (
                Error::TenantViolation {
                    tenant: "t".into(),
                    object: "x".into(),
                },
                Api::D1,
                StatusCode::FORBIDDEN,
                403,
            ),
            (
                Error::NotAllowed("ATTACH".into()),
                Api::D1,
                StatusCode::BAD_REQUEST,
                D1_QUERY_ERROR,
            ),
            (
                Error::NotAllowed("ATTACH".into()),
                Api::Vectorize,
                StatusCode::BAD_REQUEST,
                400,
            ),
            (
                Error::D1Database {
                    database: "x".into(),
                    problem: D1Problem::NotFound,
                },
                Api::D1,
                StatusCode::NOT_FOUND,
                7404,
            ),
            (
                Error::D1Database {
                    database: "x".into(),
                    problem: D1Problem::NameTaken,
                },
                Api::D1,
                StatusCode::BAD_REQUEST,
                7502,
            ),
            (
                Error::Io {
                    path: "p".into(),
                    source: std::io::Error::other("disk"),
                },
                Api::D1,
                StatusCode::INTERNAL_SERVER_ERROR,
                500,
            ),
        ];
        for (e, api, status, code) in cases {
            let got = ApiError::from_error(&e, api);
            assert_eq!((got.status, got.code), (status, code), "{e}");
            assert_eq!(got.message, e.to_string());
        }
    }
}

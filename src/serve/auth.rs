//! Who a request acts as, from its bearer token.
//!
//! Tokens are kept only as SHA-256 digests, and a presented token is hashed and compared
//! with every known digest in constant time ([`subtle`]): neither the comparison's time nor
//! its length depends on how much of a token matches. A request is one of:
//! - [`Principal::Tenant`]: its token is a tenant-bound token; it runs in that tenant's
//!   session (as the token's user, when it names one) and nowhere else.
//! - [`Principal::Admin`]: its token is the admin token; or the server has no admin token,
//!   listens on loopback, and the token (or its absence) is not a tenant-bound token.
//!
//! Anything else is refused with Cloudflare's `Authentication error` (10000). Tenant tokens
//! are checked first, so that a tenant token is never taken for an admin one.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, AUTHENTICATION};
use super::{ServeOptions, TenantToken};
use crate::error::{Error, Result};

/// What a request may do, decided by [`Auth::authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Every database and index, unscoped.
    Admin,
    /// Only the session of the tenant-bound token at this position of
    /// [`ServeOptions::tenant_tokens`].
    Tenant(usize),
}

/// The server's tokens, as digests.
pub(crate) struct Auth {
    admin: Option<[u8; 32]>,
    tenants: Vec<[u8; 32]>,
    /// No admin token on a loopback address: any other bearer (or none) is admin.
    open: bool,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    /// The tokens of `options`, for a server bound to `listen`. Refuses a non-loopback
    /// address without an admin token (the server would otherwise admit anyone as admin),
    /// an empty token, and a token given twice.
    pub(crate) fn new(options: &ServeOptions, listen: SocketAddr) -> Result<Auth> {
        let admin = options.admin_token.as_deref();
        if admin.is_none() && !listen.ip().is_loopback() {
            return Err(Error::invalid(
                "--listen",
                format!(
                    "{} is not a loopback address: give an admin token (--token or \
                     D1VEC_SERVE_TOKEN) to listen on it",
                    listen.ip()
                ),
            ));
        }
        if admin.is_none() && !options.tenant_tokens.is_empty() {
            // Without an admin token every other bearer is admin: a tenant would only have
            // to send another token (or none) to leave its session.
            return Err(Error::invalid(
                "--tokens",
                "tenant-bound tokens need an admin token (--token or D1VEC_SERVE_TOKEN): \
                 without one, any other token is admitted as admin",
            ));
        }
        let all = admin
            .into_iter()
            .chain(options.tenant_tokens.iter().map(|t| t.token.as_str()));
        let mut seen = std::collections::HashSet::new();
        for (at, token) in all.enumerate() {
            if token.is_empty() {
                return Err(Error::invalid("token", format!("token #{at} is empty")));
            }
            if !seen.insert(digest(token.as_bytes())) {
                return Err(Error::invalid(
                    "token",
                    format!("token #{at} is given twice (each token names one principal)"),
                ));
            }
        }
        for t in &options.tenant_tokens {
            crate::tenant::validate_tenant_id(&t.tenant)?;
        }
        Ok(Auth {
            admin: admin.map(|t| digest(t.as_bytes())),
            tenants: options
                .tenant_tokens
                .iter()
                .map(|t: &TenantToken| digest(t.token.as_bytes()))
                .collect(),
            open: admin.is_none(),
        })
    }

    /// The principal of a request with these headers (`Authorization: Bearer <token>`).
    ///
    /// Without an admin token (loopback only) every caller is admin, so the server must
    /// also be sure the caller is a program on this machine and not a web page the user
    /// has open: a browser adds `Origin` to every cross-origin request (even one it sends
    /// without a preflight), and a page reaching the server through DNS rebinding sends
    /// its own host name. Such requests are refused; wrangler, the SDK and other
    /// programs send neither.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> std::result::Result<Principal, ApiError> {
        if self.open && (headers.contains_key(header::ORIGIN) || !loopback_host(headers)) {
            return Err(refused());
        }
        let token = bearer(headers);
        let presented = digest(token.unwrap_or_default());
        let mut tenant = None;
        for (at, known) in self.tenants.iter().enumerate() {
            if bool::from(known.ct_eq(&presented)) && token.is_some() {
                tenant = Some(at);
            }
        }
        if let Some(at) = tenant {
            return Ok(Principal::Tenant(at));
        }
        match &self.admin {
            Some(admin) if token.is_some() && bool::from(admin.ct_eq(&presented)) => {
                Ok(Principal::Admin)
            }
            None if self.open => Ok(Principal::Admin),
            _ => Err(refused()),
        }
    }
}

/// Whether the `Host` header names this machine (`localhost`, `127.0.0.1`, `[::1]`, with
/// any port), or is absent (HTTP/1.0 clients).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The token of `Authorization: Bearer <token>`, if the header has that form.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The refusal for a missing or unknown token (it never repeats the token).
pub(crate) fn refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        AUTHENTICATION,
        "Authentication error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn options(admin: Option<&str>, tenants: &[(&str, &str)]) -> ServeOptions {
        ServeOptions {
            admin_token: admin.map(str::to_owned),
            tenant_tokens: tenants
                .iter()
                .map(|(token, tenant)| TenantToken {
                    token: (*token).to_owned(),
                    tenant: (*tenant).to_owned(),
                    user: None,
                })
                .collect(),
            ..ServeOptions::default()
        }
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    const LOOPBACK: &str = "127.0.0.1:8787";

    #[test]
    fn the_table_of_principals() {
        let lo: SocketAddr = LOOPBACK.parse().unwrap();
        let closed = Auth::new(&options(Some("adm"), &[("tt", "t1"), ("uu", "t2")]), lo).unwrap();
        let open = Auth::new(&options(None, &[]), lo).unwrap();
        // Tenant tokens without an admin token would make every other token admin.
        assert!(Auth::new(&options(None, &[("tt", "t1")]), lo).is_err());
        let cases = [
            (&closed, Some("Bearer adm"), Some(Principal::Admin)),
            (&closed, Some("bearer  adm "), Some(Principal::Admin)),
            (&closed, Some("Bearer tt"), Some(Principal::Tenant(0))),
            (&closed, Some("Bearer uu"), Some(Principal::Tenant(1))),
            (&closed, Some("Bearer ad"), None),
            (&closed, Some("Bearer admx"), None),
            (&closed, Some("Basic adm"), None),
            (&closed, Some("Bearer "), None),
            (&closed, None, None),
            (&open, Some("Bearer anything"), Some(Principal::Admin)),
            (&open, None, Some(Principal::Admin)),
        ];
        for (auth, header, want) in cases {
            let got = auth.authenticate(&headers(header)).ok();
            assert_eq!(got, want, "{header:?}");
        }
        assert_eq!(closed.authenticate(&headers(None)).unwrap_err(), refused());
    }

    #[test]
    fn open_mode_refuses_browsers_and_foreign_hosts() {
        let lo: SocketAddr = "127.0.0.1:8787".parse().unwrap();
        let open = Auth::new(&options(None, &[]), lo).unwrap();
        let closed = Auth::new(&options(Some("adm"), &[]), lo).unwrap();
        let with = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = headers(Some("Bearer adm"));
            for (name, value) in pairs {
                h.insert(name.clone(), value.parse().unwrap());
            }
            h
        };
        for (pairs, open_ok) in [
            (vec![], true),
            (vec![(header::HOST, "127.0.0.1:8787")], true),
            (vec![(header::HOST, "localhost")], true),
            (vec![(header::HOST, "[::1]:8787")], true),
            (vec![(header::HOST, "127.0.0.2:80")], true),
            (vec![(header::HOST, "evil.example:8787")], false),
            (vec![(header::HOST, "127.0.0.1.evil.example")], false),
            (vec![(header::HOST, "[::1]evil")], true),
            (vec![(header::ORIGIN, "https://evil.example")], false),
            (vec![(header::ORIGIN, "null")], false),
        ] {
            let h = with(&pairs);
            assert_eq!(open.authenticate(&h).is_ok(), open_ok, "{pairs:?}");
            // With an admin token the token decides; hosts and origins do not matter.
            assert_eq!(
                closed.authenticate(&h).ok(),
                Some(Principal::Admin),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn non_loopback_needs_an_admin_token() {
        let any: SocketAddr = "0.0.0.0:8787".parse().unwrap();
        let e = Auth::new(&options(None, &[("tt", "t1")]), any)
            .err()
            .unwrap();
        assert!(e.to_string().contains("--token"), "{e}");
        assert!(Auth::new(&options(Some("adm"), &[]), any).is_ok());
        let v6: SocketAddr = "[::1]:8787".parse().unwrap();
        assert!(Auth::new(&options(None, &[]), v6).is_ok());
    }

    #[test]
    fn duplicate_or_empty_tokens_are_refused() {
        let lo: SocketAddr = LOOPBACK.parse().unwrap();
        assert!(Auth::new(&options(Some("a"), &[("a", "t1")]), lo).is_err());
        assert!(Auth::new(&options(None, &[("b", "t1"), ("b", "t2")]), lo).is_err());
        assert!(Auth::new(&options(Some(""), &[]), lo).is_err());
        assert!(Auth::new(&options(None, &[("c", "t\u{1}")]), lo).is_err());
    }
}

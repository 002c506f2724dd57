//! `d1vec serve`: Cloudflare's D1 and Vectorize REST API on a local address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::error::{Error, Result};
use crate::serve::{ServeOptions, TenantToken};
use crate::Database;

/// `serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// The admin token (full access). Without it, on loopback, any bearer token is admitted
    /// as admin.
    #[arg(long, env = "D1VEC_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file of tenant-bound tokens, one `<token> <tenant> [user]` per line (`#` starts a
    /// comment). It must not be readable by group or others (mode 0600).
    #[arg(long)]
    pub tokens: Option<PathBuf>,
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(db: Database, tenant_given: bool, args: ServeArgs) -> Result<()> {
    if tenant_given {
        return Err(Error::invalid(
            "arguments",
            "serve takes no --tenant or --user: bind a token to a tenant with --tokens",
        ));
    }
    let tenant_tokens = match &args.tokens {
        Some(path) => read_tokens(path)?,
        None => Vec::new(),
    };
    let options = ServeOptions {
        listen: args.listen,
        admin_token: args.token,
        tenant_tokens,
    };
    let admin = options.admin_token.is_some();
    crate::serve::run_until_signal(Arc::new(db), options, |addr| {
        let token = if admin { "<your --token>" } else { "any-value" };
        eprintln!(
            "d1vec serve: listening on http://{addr}/client/v4; for wrangler set \
             CLOUDFLARE_API_BASE_URL=http://{addr}/client/v4 CLOUDFLARE_API_TOKEN={token} \
             CLOUDFLARE_ACCOUNT_ID=local WRANGLER_SEND_METRICS=false"
        );
    })
}

/// Reads a tokens file: `<token> <tenant> [user]` per line; blank lines and `#` comments
/// skipped. Errors name the line, never its token.
pub fn read_tokens(path: &Path) -> Result<Vec<TenantToken>> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    parse_tokens(&text)
}

/// Parses the text of a tokens file (see [`read_tokens`]).
pub fn parse_tokens(text: &str) -> Result<Vec<TenantToken>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (token, tenant, user) = match fields.as_slice() {
            [token, tenant] => (token, tenant, None),
            [token, tenant, user] => (token, tenant, Some((*user).to_owned())),
            _ => {
                return Err(Error::invalid(
                    "tokens file",
                    format!(
                        "line {}: expected `<token> <tenant> [user]`, got {} fields",
                        n + 1,
                        fields.len()
                    ),
                ))
            }
        };
        out.push(TenantToken {
            token: (*token).to_owned(),
            tenant: (*tenant).to_owned(),
            user,
        });
    }
    Ok(out)
}

/// Refuses a tokens file that group or others may read or write.
fn check_private(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    if !meta.is_file() {
        return Err(Error::invalid(
            "tokens file",
            format!("{} is not a regular file", path.display()),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::invalid(
                "tokens file",
                format!(
                    "{} has mode {mode:o}: group and others must have no access (chmod 600)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_lines() {
        let t = parse_tokens("# comment\n\nabc t1\n  def t2 u9  \n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].token.as_str(), t[0].tenant.as_str(), &t[0].user),
            ("abc", "t1", &None)
        );
        assert_eq!((t[1].token.as_str(), t[1].tenant.as_str()), ("def", "t2"));
        assert_eq!(t[1].user.as_deref(), Some("u9"));
        let e = parse_tokens("ok t1\nsecret-token-only\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("secret-token-only"), "{e}");
        assert!(parse_tokens("a b c d").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn tokens_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "abc t1\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_tokens(&path).is_err(), "mode {mode:o}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_tokens(&path).unwrap().len(), 1);
    }
}

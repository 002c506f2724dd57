//! `wrangler.json` / `wrangler.jsonc` / `wrangler.toml`: found and read as wrangler does.
//!
//! - **Finding** (wrangler's `findWranglerConfig`): `wrangler.json` in the current folder or
//!   the nearest parent that has one; if none, `wrangler.jsonc` the same way; if none,
//!   `wrangler.toml`. (So a `wrangler.json` in a parent wins over a `wrangler.toml` here,
//!   exactly as in wrangler.)
//! - **Reading**: TOML with the `toml` crate; JSON and JSONC (comments, trailing commas)
//!   with `jsonc-parser`. Only the keys d1vec uses are read; others are ignored.
//! - **Environments**: with `--env NAME`, the bindings are those of `env.NAME` (wrangler
//!   does not inherit `d1_databases` or `vectorize` into an environment).
//! - **`DB` arguments** match an entry's `database_name` or `binding`, first entry first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The names wrangler looks for, in its order.
pub const FILE_NAMES: [&str; 3] = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];

/// wrangler's default `migrations_dir`.
pub const DEFAULT_MIGRATIONS_DIR: &str = "migrations";

/// wrangler's default `migrations_table`.
pub const DEFAULT_MIGRATIONS_TABLE: &str = "d1_migrations";

/// A `d1_databases` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct D1Database {
    /// The name the Worker sees (`env.DB`).
    pub binding: String,
    /// The database's name on Cloudflare.
    #[serde(default)]
    pub database_name: Option<String>,
    /// The database's id on Cloudflare.
    #[serde(default)]
    pub database_id: Option<String>,
    /// The id `wrangler dev` uses instead of `database_id` when set.
    #[serde(default)]
    pub preview_database_id: Option<String>,
    /// The migrations folder, relative to the config file (default `migrations`).
    #[serde(default)]
    pub migrations_dir: Option<String>,
    /// The bookkeeping table (default `d1_migrations`).
    #[serde(default)]
    pub migrations_table: Option<String>,
    /// A glob, relative to the config file, naming the migration files (default
    /// `<migrations_dir>/*.sql`).
    #[serde(default)]
    pub migrations_pattern: Option<String>,
}

impl D1Database {
    /// The id wrangler's local mode names the database by: `preview_database_id`, else
    /// `database_id`, else the binding.
    pub fn local_id(&self) -> &str {
        self.preview_database_id
            .as_deref()
            .or(self.database_id.as_deref())
            .unwrap_or(&self.binding)
    }

    /// `migrations_dir`, or its default (an empty value counts as unset, as in wrangler).
    pub fn migrations_dir(&self) -> &str {
        self.migrations_dir
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_MIGRATIONS_DIR)
    }

    /// `migrations_table`, or its default (an empty value counts as unset, as in wrangler).
    pub fn migrations_table(&self) -> &str {
        self.migrations_table
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(DEFAULT_MIGRATIONS_TABLE)
    }
}

/// A `vectorize` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VectorizeBinding {
    /// The name the Worker sees (`env.VECTORIZE`).
    pub binding: String,
    /// The index's name.
    pub index_name: String,
}

#[derive(Debug, Default, Deserialize)]
struct Bindings {
    #[serde(default)]
    d1_databases: Vec<D1Database>,
    #[serde(default)]
    vectorize: Vec<VectorizeBinding>,
}

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    #[serde(flatten)]
    top: Bindings,
    #[serde(default)]
    env: BTreeMap<String, Bindings>,
}

/// A parsed wrangler configuration, for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WranglerConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// Its `d1_databases` (of the chosen environment).
    pub d1_databases: Vec<D1Database>,
    /// Its `vectorize` bindings (of the chosen environment).
    pub vectorize: Vec<VectorizeBinding>,
}

/// The wrangler config file that governs `start`, searched as wrangler does (see the
/// module docs), or `None`.
pub fn find(start: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().find_map(|name| {
        start
            .ancestors()
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

impl WranglerConfig {
    /// Reads the config file at `path`; `env` picks `env.<name>`'s bindings.
    pub fn load(path: &Path, env: Option<&str>) -> Result<WranglerConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(path, &text, env)
    }

    /// Parses `text` as the config file `path` (its extension picks TOML or JSONC).
    pub fn parse(path: &Path, text: &str, env: Option<&str>) -> Result<WranglerConfig> {
        let bad = |reason: String| Error::WranglerConfig {
            path: path.to_path_buf(),
            reason,
        };
        let raw: RawConfig = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(text).map_err(|e| bad(e.to_string()))?
        } else {
            // JSONC as wrangler accepts it: JSON plus comments and trailing commas.
            let options = jsonc_parser::ParseOptions {
                allow_comments: true,
                allow_trailing_commas: true,
                allow_loose_object_property_names: false,
                allow_missing_commas: false,
                allow_single_quoted_strings: false,
                allow_hexadecimal_numbers: false,
                allow_unary_plus_numbers: false,
                ..Default::default()
            };
            jsonc_parser::parse_to_serde_value::<Option<RawConfig>>(text, &options)
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or_default()
        };
        let RawConfig { top, env: mut envs } = raw;
        let bindings = match env {
            None => top,
            Some(name) => envs
                .remove(name)
                .ok_or_else(|| bad(format!("no environment `{name}` (no [env.{name}] section)")))?,
        };
        Ok(WranglerConfig {
            path: path.to_path_buf(),
            d1_databases: bindings.d1_databases,
            vectorize: bindings.vectorize,
        })
    }

    /// Finds the config for `cwd` and reads it; `None` when there is none.
    pub fn discover(cwd: &Path, env: Option<&str>) -> Result<Option<WranglerConfig>> {
        find(cwd).map(|p| Self::load(&p, env)).transpose()
    }

    /// The folder the config file is in (paths in it are relative to this).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The `d1_databases` entry whose `database_name` or `binding` is `name`.
    pub fn database(&self, name: &str) -> Result<&D1Database> {
        self.d1_databases
            .iter()
            .find(|d| d.database_name.as_deref() == Some(name) || d.binding == name)
            .ok_or_else(|| Error::WranglerConfig {
                path: self.path.clone(),
                reason: format!(
                    "no d1_databases entry has database_name or binding `{name}` (known: {})",
                    self.d1_databases
                        .iter()
                        .map(|d| d.binding.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The index name a `vectorize` binding or index name stands for: the `index_name` of
    /// the binding called `name`, else `name` itself.
    pub fn index_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.vectorize
            .iter()
            .find(|v| v.binding == name)
            .map_or(name, |v| v.index_name.as_str())
    }

    /// The migration files of `db`: those matching `migrations_pattern` (relative to the
    /// config's folder; default `<migrations_dir>/*.sql`), each named by its path relative
    /// to `migrations_dir`, as wrangler records them.
    pub fn migrations(&self, db: &D1Database) -> Result<Vec<crate::sql::migrate::Migration>> {
        let dir = self.dir().join(db.migrations_dir());
        let pattern = db
            .migrations_pattern
            .clone()
            .unwrap_or_else(|| format!("{}/*.sql", db.migrations_dir()));
        let mut out = Vec::new();
        for path in glob(self.dir(), &pattern)? {
            let name = path
                .strip_prefix(&dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let sql = std::fs::read_to_string(&path).map_err(Error::io(&path))?;
            out.push(crate::sql::migrate::Migration { name, sql });
        }
        crate::sql::migrate::sort(&mut out);
        Ok(out)
    }
}

/// The files under `base` matching `pattern`: `/`-separated segments, where `*` matches any
/// run of characters within one segment, `?` one character, and a `**` segment any number
/// of folders (including none). Hidden entries are matched only by a segment that names them.
fn glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let segments: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let mut found = Vec::new();
    walk(base, &segments, &mut found)?;
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, segments: &[&str], found: &mut Vec<PathBuf>) -> Result<()> {
    let Some((&head, rest)) = segments.split_first() else {
        return Ok(());
    };
    if head == "**" {
        walk(dir, rest, found)?;
    }
    if !head.contains(['*', '?']) {
        let next = dir.join(head);
        if rest.is_empty() {
            if next.is_file() {
                found.push(next);
            }
        } else if next.is_dir() {
            walk(&next, rest, found)?;
        }
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if head == "**" {
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, segments, found)?;
            }
            continue;
        }
        if !wildcard(head, &name) || (name.starts_with('.') && !head.starts_with('.')) {
            continue;
        }
        if rest.is_empty() {
            if path.is_file() {
                found.push(path);
            }
        } else if path.is_dir() {
            walk(&path, rest, found)?;
        }
    }
    Ok(())
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character).
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic two-pointer match with backtracking to the last `*`: O(|p|·|n|) at worst.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_like_a_shell() {
        for (p, n, want) in [
            ("*.sql", "0001_a.sql", true),
            ("*.sql", "0001_a.sql.bak", false),
            ("0?01_*", "0001_x", true),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("migration.sql", "migration.sql", true),
        ] {
            assert_eq!(wildcard(p, n), want, "{p} vs {n}");
        }
    }
}

//! `d1vec keys …`: data key status and rotation, master key rotation.

use clap::{Args, Subcommand};
use serde_json::{json, Value as Json};

use crate::error::{Error, Result};
use crate::Database;

/// `keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Each tenant's active data key: version, age in days, and when it falls due
    /// (created + 90 days). `--tenant T` shows one tenant.
    Status,
    /// Re-encrypt every sealed field of a tenant under a new data key version, in one
    /// transaction, and retire the old version. Give `--tenant T`, `--due` or `--all`.
    Rotate(RotateArgs),
    /// Re-wrap every data key under a new master key. With the key file, the new key is
    /// written (beside the old ones) before anything is re-wrapped, and the old keys are
    /// dropped once the re-wrap has committed. With D1VEC_MASTER_KEY (`new,old,...`),
    /// everything is re-wrapped under the first key.
    RotateMaster,
}

/// `keys rotate`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Every tenant whose active key is past its due date.
    #[arg(long, conflicts_with = "all")]
    pub due: bool,
    /// Every tenant that has a data key or a stored token.
    #[arg(long)]
    pub all: bool,
}

/// Runs a `keys` command; `tenant` is the global `--tenant`.
pub fn run(db: &Database, tenant: Option<&str>, command: KeysCommand) -> Result<(Json, String)> {
    match command {
        KeysCommand::Status => {
            let rows: Vec<_> = db
                .key_status()?
                .into_iter()
                .filter(|s| tenant.is_none_or(|t| s.tenant == t))
                .collect();
            let text = crate::cli::output::table(
                &[
                    "tenant".into(),
                    "active_version".into(),
                    "age_days".into(),
                    "rotate_after".into(),
                    "due".into(),
                ],
                &rows
                    .iter()
                    .map(|s| {
                        vec![
                            json!(s.tenant),
                            json!(s.active_version),
                            json!(s.age_days),
                            json!(s.rotate_after),
                            json!(s.due),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            Ok((serde_json::to_value(&rows)?, text))
        }
        KeysCommand::Rotate(a) => {
            let rotations = match (tenant, a.due, a.all) {
                (Some(t), false, false) => vec![db.rotate_tenant_key(t)?],
                (None, true, false) => db.rotate_due_keys(false)?,
                (None, false, true) => db.rotate_due_keys(true)?,
                _ => {
                    return Err(Error::invalid(
                        "arguments",
                        "give exactly one of --tenant T, --due or --all",
                    ))
                }
            };
            let text = if rotations.is_empty() {
                "No key was due.".to_owned()
            } else {
                rotations
                    .iter()
                    .map(|r| {
                        format!(
                            "tenant {}: version {} -> {} ({} field(s) re-encrypted)",
                            r.tenant,
                            r.from_version.map_or("none".into(), |v| v.to_string()),
                            r.to_version,
                            r.fields_resealed
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok((serde_json::to_value(&rotations)?, text))
        }
        KeysCommand::RotateMaster => {
            if tenant.is_some() {
                return Err(Error::invalid(
                    "arguments",
                    "rotate-master covers every tenant; drop --tenant",
                ));
            }
            let r = db.rotate_master_key()?;
            let text = format!(
                "Re-wrapped {} data key(s) under master key {}.",
                r.data_keys_rewrapped, r.master_key_id
            );
            Ok((serde_json::to_value(&r)?, text))
        }
    }
}

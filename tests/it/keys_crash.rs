//! Key rotation under SIGKILL: the `d1vec` binary runs `keys rotate --all` (a data key
//! rotation per tenant, each one transaction) or `keys rotate-master` (new master key made
//! durable in the key file, every data key re-wrapped in one transaction, old master key
//! dropped), and is killed at a random instant, at least 30 times.
//!
//! Oracle, after every kill, on a fresh `Database` over the same files: every sealed value
//! opens (with the key version its bytes name, and the master key its wrapped key names)
//! to exactly the plaintext written at the start; each tenant has exactly one active
//! version, and its version numbers never go back; the key file is still owner-only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use d1vec::keys::Field;
use d1vec::Database;

const TENANTS: usize = 6;
const CONNECTIONS: usize = 20;
const MIN_KILLS: usize = 30;

fn token(t: usize, c: usize, kind: &str) -> String {
    format!("tok-{t}-{c}-{kind}")
}

fn rotate(db: &Path, master: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_d1vec"));
    cmd.env_remove("D1VEC_MASTER_KEY")
        .env_remove("D1VEC_TENANT")
        .arg("--db")
        .arg(db)
        .arg("keys");
    if master {
        cmd.arg("rotate-master");
    } else {
        cmd.args(["rotate", "--all"]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Checks the oracle; returns each tenant's active version.
fn check(path: &Path, floor: &[u32]) -> Vec<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = path.with_file_name("crash.sqlite.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let db = Database::open(path).unwrap();
    let mut active = Vec::new();
    for (t, low) in floor.iter().enumerate() {
        let tenant = format!("t{t}");
        let versions = db
            .prepare("SELECT version FROM tenant_keys WHERE tenant_id = ?1 AND status = 'active'")
            .bind([tenant.as_str()])
            .raw(false)
            .unwrap();
        assert_eq!(versions.len(), 1, "{tenant}: active versions {versions:?}");
        let v = u32::try_from(versions[0][0].as_u64().unwrap()).unwrap();
        assert!(v >= *low, "{tenant}: version went back from {low} to {v}");
        active.push(v);
        let session = db.tenant(&tenant).unwrap();
        for c in 0..CONNECTIONS {
            let id = format!("c{t}_{c}");
            for (field, kind) in [(Field::AccessToken, "a"), (Field::RefreshToken, "r")] {
                let got = session
                    .open_secret(&id, field)
                    .unwrap_or_else(|e| panic!("{tenant}/{id}/{kind}: {e}"));
                assert_eq!(got.expose(), &token(t, c, kind));
            }
        }
    }
    active
}

#[test]
fn rotation_survives_sigkill_at_any_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.sqlite");
    {
        let db = Database::open(&path).unwrap();
        db.apply_migrations(&d1vec::sql::migrate::bundled())
            .unwrap();
        for t in 0..TENANTS {
            db.prepare(
                "INSERT INTO tenants (tenant_id, name, plan, region) VALUES (?1, ?1, 'pro', 'eu')",
            )
            .bind([format!("t{t}")])
            .run()
            .unwrap();
            for c in 0..CONNECTIONS {
                db.prepare("INSERT INTO platform_connections (connection_id, tenant_id, platform, handle, access_token_ct, refresh_token_ct) VALUES (?1, ?2, 'linkedin', ?1, ?3, ?4)")
                    .bind([format!("c{t}_{c}"), format!("t{t}"), token(t, c, "a"), token(t, c, "r")])
                    .run()
                    .unwrap();
            }
        }
    }
    let mut floor = check(&path, &[0; TENANTS]);
    // How long an unkilled run takes (start-up included), to spread the kills over it.
    let mut longest = Duration::ZERO;
    for master in [false, true] {
        let started = Instant::now();
        assert!(rotate(&path, master).status().unwrap().success());
        longest = longest.max(started.elapsed());
    }
    floor = check(&path, &floor);
    let seed = std::env::var("D1VEC_KEYS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let window = u64::try_from(longest.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let (mut kills, mut finished, mut rounds) = (0usize, 0usize, 0usize);
    let budget = Instant::now();
    while kills < MIN_KILLS {
        rounds += 1;
        assert!(
            rounds < 400,
            "seed {seed}: only {kills} kills landed in {rounds} rounds"
        );
        let master = next() % 3 == 0;
        let delay = Duration::from_micros(next() % window);
        let mut child = rotate(&path, master).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            finished += 1;
        } else {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt as _;
                if status.signal() == Some(9) {
                    kills += 1;
                } else {
                    finished += 1;
                }
            }
            #[cfg(not(unix))]
            {
                let _ = status;
                kills += 1;
            }
        }
        floor = check(&path, &floor);
    }
    eprintln!(
        "keys_crash: seed {seed}, {kills} kills, {finished} runs finished, {:?}",
        budget.elapsed()
    );
    // Rotations did happen in between (versions moved on).
    assert!(floor.iter().all(|v| *v >= 2), "seed {seed}: {floor:?}");
}

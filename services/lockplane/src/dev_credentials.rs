//! The credentials `lockplane dev` and `lockplane cluster up` keep in their data directory,
//! so that restarts reuse them: the cluster's admin token (`admin-token`, created at the
//! first start, when the cluster is bootstrapped) and the `dev` tenant's API key
//! (`dev-api-key`). A restart adds no key: the recorded one is reused, or, when `--api-key`
//! names another, the recorded one is revoked and replaced, so the tenant keeps one key
//! from these commands. Both files are readable by their owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lockplane_node::membership::Admin;
use lockplane_proto::Dialer;
use lockplane_proto::lock::ErrorCode;

use crate::failure::failed;

/// The dev tenant's name.
pub const DEV_TENANT: &str = "dev";

/// The file the admin token is kept in, under the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// The file the dev tenant's API key is kept in, under the data directory.
pub const DEV_KEY_FILE: &str = "dev-api-key";

/// What a start found or created.
pub struct DevCredentials {
    /// The cluster's admin token.
    pub admin_token: String,
    /// True when this start created the admin token.
    pub new_admin_token: bool,
    /// The dev tenant's API key.
    pub api_key: String,
    /// Where the admin token is kept.
    pub admin_token_path: PathBuf,
}

/// Makes sure the cluster reached at `endpoint` through `dialer` has the admin token
/// recorded in `dir` (bootstrapping it on a new cluster) and that the dev tenant's key is
/// `chosen`, else the recorded one, else a new one.
pub async fn ensure(
    dir: &Path,
    dialer: Dialer,
    endpoint: &str,
    chosen: Option<&str>,
) -> anyhow::Result<DevCredentials> {
    let admin_token_path = dir.join(ADMIN_TOKEN_FILE);
    let recorded_token = read(&admin_token_path)?;
    let new_admin_token = recorded_token.is_none();
    let admin_token = match recorded_token {
        Some(token) => token,
        None => crate::keys::new_admin_token()?,
    };
    // Kept before the cluster knows it: a crash in between must not leave a token that
    // works nowhere recorded, or one that works recorded nowhere.
    write(&admin_token_path, &admin_token)?;
    let admin = Admin::new(dialer.with_admin_token(Some(admin_token.clone())), endpoint);
    admin
        .set_admin_token(shard_map::key_hash(&admin_token), true)
        .await
        .map_err(|e| {
            let hint = if e.code() == ErrorCode::PermissionDenied {
                format!(
                    " ({} does not hold this cluster's admin token)",
                    admin_token_path.display()
                )
            } else {
                String::new()
            };
            failed(&format!("cannot set up the admin token{hint}"), endpoint, e)
        })?;
    let key_path = dir.join(DEV_KEY_FILE);
    let recorded_key = read(&key_path)?;
    let api_key = match chosen.map(str::to_string).or_else(|| recorded_key.clone()) {
        Some(key) => key,
        None => crate::keys::new_api_key()?,
    };
    if let Some(old) = recorded_key.as_deref().filter(|old| *old != api_key) {
        match admin
            .revoke_tenant_key(DEV_TENANT, shard_map::key_hash(old))
            .await
        {
            Ok(()) => {}
            Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidArgument) => {}
            Err(e) => {
                return Err(failed(
                    "cannot revoke the previous dev API key",
                    endpoint,
                    e,
                ));
            }
        }
    }
    admin
        .add_tenant_key(DEV_TENANT, shard_map::key_hash(&api_key))
        .await
        .map_err(|e| failed("cannot record the dev API key", endpoint, e))?;
    write(&key_path, &api_key)?;
    Ok(DevCredentials {
        admin_token,
        new_admin_token,
        api_key,
        admin_token_path,
    })
}

fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `secret` to `path`, readable by its owner only: a new file next to it, renamed
/// over it once written.
fn write(path: &Path, secret: &str) -> anyhow::Result<()> {
    let fresh = path.with_extension("new");
    let failed = || format!("cannot write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&fresh)
        .with_context(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(failed)?;
    writeln!(file, "{secret}").with_context(failed)?;
    file.sync_all().with_context(failed)?;
    std::fs::rename(&fresh, path).with_context(failed)
}

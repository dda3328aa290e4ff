//! The master key: decoding it (32 bytes in base64url), and the key file `data_dir/keyward.secret`, read, or
//! generated on first start and linked into place so that two processes starting together agree on one key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::ExposeSecret;

use super::Config;

/// Decodes a master key: 32 bytes, base64url without padding (as `keyward.secret` holds it).
pub fn decode_master_key(text: &str) -> Result<[u8; 32], String> {
    B64.decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| "expected 32 bytes in base64url without padding (43 characters)".to_owned())
}

impl Config {
    /// Creates `data_dir` when missing: SQLite creates its file but not the directory it lives in.
    pub fn create_data_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", self.data_dir.display()))
    }

    /// The master key: configured, or read from (or, on first start, generated into) `data_dir/keyward.secret`.
    /// Returns whether it was generated now.
    pub fn master_key(&self) -> anyhow::Result<([u8; 32], bool)> {
        if let Some(k) = &self.master_key {
            return Ok((*k.expose_secret(), false));
        }
        let path = self.data_dir.join("keyward.secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_master_key(&text)
                    .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
                Ok((key, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)?;
                let key = crate::crypto::random::<32>();
                // Written aside then linked into place: linking fails if the name exists, so when two processes
                // start together exactly one key wins and the other reads it.
                let tmp = self
                    .data_dir
                    .join(format!(".keyward.secret.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                write_private(&tmp, &B64.encode(key))?;
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok((key, true)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.master_key(),
                    Err(e) => Err(anyhow::anyhow!("cannot write {}: {e}", path.display())),
                }
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

//! Self-signed certificate generation, so a demo or a fresh setup needs no
//! openssl. Runs in the CLI only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes a self-signed certificate for `names` (first one is the subject) and
/// its key; the key file is created 0600 and never overwritten.
pub fn write_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), String> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot generate certificate: {e}"))?;
    let write = |path: &Path, text: &str, mode: u32| -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write(key, &generated.signing_key.serialize_pem(), 0o600)?;
    write(cert, &generated.cert.pem(), 0o644)?;
    Ok(())
}

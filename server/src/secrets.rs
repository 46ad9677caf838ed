//! Loads the key that encrypts credentials at rest: from `security.encryption_key`, else from
//! the key file, which is created on first start.

use std::path::Path;

use anyhow::Context;
use store::cipher::SecretBox;

use crate::config::SecurityConfig;

pub fn load_secret_box(security: &SecurityConfig) -> anyhow::Result<SecretBox> {
    if !security.encryption_key.is_empty() {
        return SecretBox::from_key_text(&security.encryption_key).context("security.encryption_key");
    }
    let path = Path::new(&security.encryption_key_file);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return SecretBox::from_key_text(&text)
            .with_context(|| format!("security.encryption_key_file {}", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = SecretBox::generate_key_text();
    write_private(path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(
        file = %path.display(),
        "generated a new encryption key for stored credentials; back it up, and set \
         security.encryption_key to the same value on every instance that shares the database"
    );
    SecretBox::from_key_text(&key).context("generated key")
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/encryption.key");
        let cfg = SecurityConfig { encryption_key: String::new(), encryption_key_file: file.display().to_string() };
        let first = load_secret_box(&cfg).unwrap();
        let sealed = first.seal_str("secret");
        let again = load_secret_box(&cfg).unwrap();
        assert_eq!(again.open_string(&sealed).unwrap(), "secret", "the same key is read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_wins() {
        let cfg = SecurityConfig { encryption_key: "ab".repeat(32), encryption_key_file: "/nonexistent/x".into() };
        assert!(load_secret_box(&cfg).is_ok());
    }
}

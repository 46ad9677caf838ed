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

const KEY_CHECK_SETTING: &str = "encryption_key_check";
const KEY_CHECK_PLAINTEXT: &str = "sub2api encryption key check";

/// Makes sure `secrets` is the key this database's credentials were sealed with. The first
/// start stores a sealed marker; later starts must be able to open it. A lost key file or an
/// instance started without the shared key then stops at once instead of writing credentials
/// that no other instance can read.
pub async fn verify_key_matches(store: &store::Store, secrets: &SecretBox) -> anyhow::Result<()> {
    match store.get_setting(KEY_CHECK_SETTING).await? {
        Some(sealed) => match secrets.open_string(&sealed) {
            Ok(text) if text == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => anyhow::bail!(
                "security.encryption_key: this database was set up with a different encryption key; \
                 configure the original key (security.encryption_key or its key file)"
            ),
        },
        None => {
            store.put_setting(KEY_CHECK_SETTING, &secrets.seal_str(KEY_CHECK_PLAINTEXT)).await?;
            Ok(())
        }
    }
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

    #[tokio::test]
    async fn a_different_key_is_refused() {
        let db = store::testing::TestDb::sqlite().await;
        let first = SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
        verify_key_matches(&db.store, &first).await.unwrap();
        verify_key_matches(&db.store, &first).await.unwrap();
        let other = SecretBox::from_key_text(&"cd".repeat(32)).unwrap();
        let err = verify_key_matches(&db.store, &other).await.err().unwrap().to_string();
        assert!(err.contains("security.encryption_key"), "{err}");
    }

    #[test]
    fn configured_key_wins() {
        let cfg = SecurityConfig { encryption_key: "ab".repeat(32), encryption_key_file: "/nonexistent/x".into() };
        assert!(load_secret_box(&cfg).is_ok());
    }
}

//! Throw-away databases for tests: a SQLite file in a temporary folder, or a fresh
//! PostgreSQL database created from `TEST_DATABASE_URL` and dropped when the guard goes away
//! (also when the test panics).

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::Store;

/// A migrated store plus whatever must be removed afterwards.
pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with (for starting a server on the same database).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(#[expect(dead_code, reason = "held only so the folder lives as long as the database")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A migrated SQLite database in its own temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let store = Store::connect(&url, 4).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("migrate sqlite: {e}"));
        TestDb { store, url, cleanup: Cleanup::Folder(dir) }
    }

    /// A migrated, freshly created PostgreSQL database, or `None` when `TEST_DATABASE_URL`
    /// is not set. A set but unreachable URL fails the test: CI must never skip silently.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
        let name = format!("sub2api_test_{}", crate::secret::random_token(8));
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"));
        // The name is generated above from hex digits only, so quoting it is safe.
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let _ = conn.close().await;
        let url = replace_db_name(&admin_url, &name);
        let store = Store::connect(&url, 4).await.unwrap_or_else(|e| panic!("open {name}: {e}"));
        store.migrate().await.unwrap_or_else(|e| panic!("migrate postgres: {e}"));
        Some(TestDb { store, url, cleanup: Cleanup::Postgres { admin_url, name } })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs on the test's runtime thread, which must not be blocked on: use a thread and
        // runtime of its own. The pool's connections belong to the test's runtime, so they are
        // not closed politely; `WITH (FORCE)` ends them.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await?;
                conn.close().await?;
                Ok::<_, sqlx::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!("could not drop a test database");
        }
    }
}

/// `postgres://u@h:p/olddb?x` → `postgres://u@h:p/<name>?x`.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let root = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_swapped() {
        assert_eq!(
            super::replace_db_name("postgres://p@127.0.0.1:5432/postgres", "x"),
            "postgres://p@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_db_name("postgres://p@h/db?sslmode=disable", "x"),
            "postgres://p@h/x?sslmode=disable"
        );
        assert_eq!(super::replace_db_name("postgres://p@h", "x"), "postgres://p@h/x");
    }
}

//! A `tower_sessions::SessionStore` over the `sessions` table, for either backend. Records
//! are JSON; expiry is enforced on load and by a periodic purge.

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

use crate::Store;

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Deletes expired sessions; run it periodically.
    pub async fn purge_expired(&self) -> crate::StoreResult<u64> {
        self.store.delete_expired_sessions(OffsetDateTime::now_utc()).await
    }
}

fn backend(err: crate::StoreError) -> Error {
    Error::Backend(err.to_string())
}

fn encode(record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Encode(e.to_string()))
}

#[async_trait]
impl tower_sessions::SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // Ids are 128 random bits; a collision is astronomically unlikely but cheap to handle.
        loop {
            let data = encode(record)?;
            if self.store.insert_session(&record.id.to_string(), &data, record.expiry_date).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let data = encode(record)?;
        self.store.upsert_session(&record.id.to_string(), &data, record.expiry_date).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let data = self.store.load_session(&id.to_string(), OffsetDateTime::now_utc()).await.map_err(backend)?;
        data.map(|bytes| serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))).transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store.delete_session(&id.to_string()).await.map_err(backend)
    }
}

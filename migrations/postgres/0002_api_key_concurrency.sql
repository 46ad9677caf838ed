-- Per-key concurrency limit (in-flight gateway requests); 0 or less means unlimited.
ALTER TABLE api_keys ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 0;

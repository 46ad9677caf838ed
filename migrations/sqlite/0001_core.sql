-- Core schema: people, keys, groups, upstream accounts, proxies, settings, usage and sessions.
-- Forward-only: never edit a released migration, add a new one.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user',
    username      TEXT NOT NULL DEFAULT '',
    notes         TEXT NOT NULL DEFAULT '',
    balance       REAL NOT NULL DEFAULT 0,
    concurrency   INTEGER NOT NULL DEFAULT 5,
    status        TEXT NOT NULL DEFAULT 'active',
    last_login_at TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE groups (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    platform        TEXT NOT NULL,
    rate_multiplier REAL NOT NULL DEFAULT 1.0,
    status          TEXT NOT NULL DEFAULT 'active',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE proxies (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL,
    protocol           TEXT NOT NULL,
    host               TEXT NOT NULL,
    port               INTEGER NOT NULL,
    username           TEXT NOT NULL DEFAULT '',
    password_encrypted TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT 'active',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    name         TEXT NOT NULL,
    group_id     INTEGER REFERENCES groups(id) ON DELETE SET NULL,
    status       TEXT NOT NULL DEFAULT 'active',
    expires_at   TEXT,
    last_used_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX api_keys_user_id ON api_keys(user_id);

CREATE TABLE accounts (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    name                   TEXT NOT NULL,
    notes                  TEXT NOT NULL DEFAULT '',
    platform               TEXT NOT NULL,
    type                   TEXT NOT NULL,
    credentials_encrypted  TEXT NOT NULL,
    extra                  TEXT NOT NULL DEFAULT '{}',
    model_mapping          TEXT NOT NULL DEFAULT '{}',
    proxy_id               INTEGER REFERENCES proxies(id) ON DELETE SET NULL,
    concurrency            INTEGER NOT NULL DEFAULT 3,
    priority               INTEGER NOT NULL DEFAULT 50,
    status                 TEXT NOT NULL DEFAULT 'active',
    error_message          TEXT NOT NULL DEFAULT '',
    schedulable            INTEGER NOT NULL DEFAULT 1,
    rate_limited_at        TEXT,
    rate_limit_reset_at    TEXT,
    overload_until         TEXT,
    last_used_at           TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX accounts_platform_status ON accounts(platform, status);

CREATE TABLE account_groups (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    priority   INTEGER NOT NULL DEFAULT 50,
    created_at TEXT NOT NULL,
    PRIMARY KEY (account_id, group_id)
);
CREATE INDEX account_groups_group_id ON account_groups(group_id);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Append-only; account/key/user ids are kept even after those rows are deleted.
CREATE TABLE usage_logs (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id                  TEXT NOT NULL,
    user_id                     INTEGER,
    api_key_id                  INTEGER,
    account_id                  INTEGER,
    group_id                    INTEGER,
    requested_model             TEXT NOT NULL DEFAULT '',
    upstream_model              TEXT NOT NULL DEFAULT '',
    input_tokens                INTEGER NOT NULL DEFAULT 0,
    output_tokens               INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_creation_5m_tokens    INTEGER NOT NULL DEFAULT 0,
    cache_creation_1h_tokens    INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens           INTEGER NOT NULL DEFAULT 0,
    input_cost                  REAL NOT NULL DEFAULT 0,
    output_cost                 REAL NOT NULL DEFAULT 0,
    cache_creation_cost         REAL NOT NULL DEFAULT 0,
    cache_read_cost             REAL NOT NULL DEFAULT 0,
    total_cost                  REAL NOT NULL DEFAULT 0,
    actual_cost                 REAL NOT NULL DEFAULT 0,
    rate_multiplier             REAL NOT NULL DEFAULT 1,
    stream                      INTEGER NOT NULL DEFAULT 0,
    status_code                 INTEGER NOT NULL DEFAULT 200,
    error_message               TEXT NOT NULL DEFAULT '',
    duration_ms                 INTEGER NOT NULL DEFAULT 0,
    first_token_ms              INTEGER,
    user_agent                  TEXT NOT NULL DEFAULT '',
    created_at                  TEXT NOT NULL
);
CREATE INDEX usage_logs_created_at ON usage_logs(created_at);
CREATE INDEX usage_logs_user_created ON usage_logs(user_id, created_at);
CREATE INDEX usage_logs_key_created ON usage_logs(api_key_id, created_at);
CREATE INDEX usage_logs_account_created ON usage_logs(account_id, created_at);
CREATE INDEX usage_logs_model ON usage_logs(requested_model);
CREATE INDEX usage_logs_request_id ON usage_logs(request_id);

-- Admin UI sign-in sessions (tower-sessions records, JSON encoded).
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    data        BLOB NOT NULL,
    expiry_date TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expiry_date);

-- API keys: several per account, each with a name, maybe read-only, rotated and revoked one by one.
-- `id` is the key's public id (never the secret); `secret_hash` is the SHA-256 of the secret, as
-- accounts.api_key_hash was; `prefix` is the secret's first characters, to tell keys apart (NULL
-- for the keys moved here below, whose secrets were never kept).
CREATE TABLE api_keys (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    read_only INTEGER NOT NULL CHECK (read_only IN (0, 1)),
    secret_hash TEXT NOT NULL UNIQUE,
    prefix TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, pk);

-- An account keeps a full-access key: without one, nobody could make or revoke its keys again.
CREATE TRIGGER api_keys_keep_one_full_access BEFORE DELETE ON api_keys
WHEN old.read_only = 0 AND NOT EXISTS (
    SELECT 1 FROM api_keys WHERE account_id = old.account_id AND read_only = 0 AND pk <> old.pk
)
BEGIN
    SELECT RAISE(ABORT, 'the last full-access key of an account');
END;

-- Every account's key, as it is: the same secret goes on working.
INSERT INTO api_keys (id, account_id, name, read_only, secret_hash, prefix, created_at)
SELECT lower(hex(randomblob(16))), id, 'default', 0, api_key_hash, NULL, created_at FROM accounts;

-- accounts without api_key_hash: SQLite cannot drop a UNIQUE column, so the table is made anew
-- (foreign keys are off while migrations run; see database._migrate).
CREATE TABLE accounts_new (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO accounts_new (id, name, created_at) SELECT id, name, created_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;

-- The web page's sessions. The cookie holds a random session id and this table its SHA-256, so
-- signing out ends a session on every API process at once. A session names the key it was signed
-- in with: revoking the key deletes its sessions with it; rotating it deletes them too (store).
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    key_pk INTEGER NOT NULL REFERENCES api_keys (pk) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_by_key ON web_sessions (key_pk);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);

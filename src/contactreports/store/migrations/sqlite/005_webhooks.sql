-- Webhooks: a provider posts to /webhooks/{provider}/{token}, where the token names the account.
-- It is not the API key: it sits in the provider's dashboard, and rotating it must not break the
-- API. One token per account, kept as a SHA-256 hash like API keys (shown once, when made).
CREATE TABLE webhook_tokens (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Each provider's secret for the account, in clear, unlike tokens and keys: checking a delivery
-- needs the secret itself (an HMAC key to sign the body again, a password to compare, a public
-- key or topic ARN to check against); a hash of it could do none of these.
CREATE TABLE webhook_secrets (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    provider TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, provider)
) WITHOUT ROWID;

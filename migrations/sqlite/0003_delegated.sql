-- Delegated access: accounts (the people who own data), their login sessions, the apps they authorized
-- (consents), and what each authorization issued (grants: a refresh-token family), authorization codes.
-- Secrets, session ids, codes and refresh tokens are stored as digests, never in clear.

-- Apps are clients with redirect URIs, a description for the consent page, and a cap on their grants' lifetime.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN refresh_token_ttl BIGINT;

-- What each scope means for people (JSON: scope -> {description, category, access}).
ALTER TABLE resources ADD COLUMN scope_details TEXT NOT NULL DEFAULT '{}';

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    partner_id    TEXT UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest     BLOB PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE consents (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id, resource)
);
CREATE INDEX consents_by_client ON consents (client_id);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_by_account ON grants (account_id, client_id);
CREATE INDEX grants_by_client ON grants (client_id);
CREATE INDEX grants_by_expiry ON grants (expires_at);

-- One row per refresh token of a grant; `access_jti` is the access token issued with it, so revoking the family
-- can denylist every access token it issued.
CREATE TABLE refresh_tokens (
    digest            BLOB PRIMARY KEY,
    grant_id          TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    created_at        BIGINT NOT NULL,
    used_at           BIGINT,
    access_jti        TEXT NOT NULL,
    access_expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);

CREATE TABLE auth_codes (
    digest         BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    resource       TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT
);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

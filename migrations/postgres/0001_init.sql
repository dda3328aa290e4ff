-- Keyward schema, PostgreSQL. Times are Unix seconds; lists of scope-like tokens are space-delimited text.
CREATE TABLE resources (
    id               TEXT PRIMARY KEY,
    identifier       TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    access_token_ttl BIGINT NOT NULL,
    signing_alg      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE clients (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    grant_types      TEXT NOT NULL,
    auth_methods     TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    default_resource TEXT,
    serves_resources TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE client_resources (
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    resource   TEXT NOT NULL REFERENCES resources (identifier),
    PRIMARY KEY (client_id, resource)
);
CREATE INDEX client_resources_by_resource ON client_resources (resource);

CREATE TABLE client_secrets (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    digest       BYTEA NOT NULL,
    hint         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX client_secrets_by_client ON client_secrets (client_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_jwk   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    activates_at BIGINT NOT NULL
);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);

CREATE TABLE changes (
    seq  BIGSERIAL PRIMARY KEY,
    at   BIGINT NOT NULL,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Hardening: a client's instance (random per creation), so that nothing a deleted client left behind belongs to
-- a client created later with the same id; refresh tokens that need no row each (a grant holds its current
-- generation, and the access tokens its family issued are kept only while they live); the last use of a grant, for
-- the refresh-token idle timeout.

-- Random per creation; codes, grants, token ids, usage and limits carry it. Existing clients get one now.
ALTER TABLE clients ADD COLUMN instance BIGINT NOT NULL DEFAULT 0;
UPDATE clients SET instance = random();

ALTER TABLE auth_codes ADD COLUMN client_instance BIGINT NOT NULL DEFAULT 0;
UPDATE auth_codes SET client_instance = COALESCE((SELECT instance FROM clients WHERE clients.id = auth_codes.client_id), 0);
CREATE INDEX auth_codes_by_client ON auth_codes (client_id);

-- `refresh_gen`: the generation of the family's one live refresh token (tokens are derived from the grant's id and
-- the generation, so a spent one is recognised without a row). `refreshed_at`: the family's last use.
ALTER TABLE grants ADD COLUMN client_instance BIGINT NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN refresh_gen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN refreshed_at BIGINT NOT NULL DEFAULT 0;
UPDATE grants SET
    client_instance = COALESCE((SELECT instance FROM clients WHERE clients.id = grants.client_id), 0),
    refreshed_at = COALESCE((SELECT MAX(created_at) FROM refresh_tokens r WHERE r.grant_id = grants.id), created_at);

-- The access tokens a family issued, while they live (purged at `expires_at`): revoking the family denylists them.
CREATE TABLE grant_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX grant_tokens_by_grant ON grant_tokens (grant_id);
CREATE INDEX grant_tokens_by_expiry ON grant_tokens (expires_at);

-- Usage counts per instance: a client created again with the same id starts from nothing.
CREATE TABLE token_usage_by_instance (
    client_id       TEXT NOT NULL,
    client_instance BIGINT NOT NULL,
    hour            BIGINT NOT NULL,
    tokens          BIGINT NOT NULL,
    PRIMARY KEY (client_id, client_instance, hour)
);
INSERT INTO token_usage_by_instance (client_id, client_instance, hour, tokens)
    SELECT u.client_id, COALESCE(c.instance, 0), u.hour, u.tokens
    FROM token_usage u LEFT JOIN clients c ON c.id = u.client_id;
DROP TABLE token_usage;
ALTER TABLE token_usage_by_instance RENAME TO token_usage;
CREATE INDEX token_usage_by_hour ON token_usage (hour);

-- Hardening: a client's instance (random per creation), so that nothing a deleted client left behind belongs to
-- a client created later with the same id; refresh tokens that need no row each (a grant holds its current
-- generation, and the access tokens its family issued are kept only while they live); the last use of a grant, for
-- the refresh-token idle timeout.

-- Random per creation; codes, grants, token ids, usage and limits carry it. Existing clients get one now.
ALTER TABLE clients ADD COLUMN instance BIGINT NOT NULL DEFAULT 0;
UPDATE clients SET instance = ('x' || substr(md5(random()::text || id), 1, 16))::bit(64)::bigint;

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
ALTER TABLE token_usage ADD COLUMN client_instance BIGINT NOT NULL DEFAULT 0;
UPDATE token_usage SET client_instance = COALESCE((SELECT instance FROM clients WHERE clients.id = token_usage.client_id), 0);
ALTER TABLE token_usage DROP CONSTRAINT token_usage_pkey;
ALTER TABLE token_usage ADD PRIMARY KEY (client_id, client_instance, hour);

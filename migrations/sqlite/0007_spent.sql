-- Single-use ids (issue 22): a client assertion's `jti` (RFC 7523 §3), and later a federated token's or a DPoP
-- proof's, each spent once across the cluster until `expires_at`, when the purge removes it. `key` is a digest of
-- what the id is for, who issued it and the id itself, so an id of any length from any issuer takes one short row.
CREATE TABLE spent_ids (
    key        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_ids_by_expiry ON spent_ids (expires_at);

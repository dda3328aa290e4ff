-- Keys without shared secrets (issue 22). `key_settings` is a client's JSON document of what it proves itself with
-- besides secrets (`keyward_core::registration::KeySettings`): its public keys (`jwks`, RFC 7591 §2) or where
-- they are published (`jwks_uri`), the external issuers whose tokens it accepts (`federated`), and whether its
-- access tokens must be bound to a DPoP key (`dpop_bound_access_tokens`, RFC 9449 §5.2). `{}` is none of them.
ALTER TABLE clients ADD COLUMN key_settings TEXT NOT NULL DEFAULT '{}';
-- A resource whose tokens must all be DPoP-bound (RFC 9449 §7.1).
ALTER TABLE resources ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
-- The thumbprint of the DPoP key a public client's grant is bound to (RFC 9449 §5): its refresh token works only
-- with a proof by that key.
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT;

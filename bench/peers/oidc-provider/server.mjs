// node-oidc-provider as a peer target of Keyward's benchmark (bench/src/peers.rs starts it): one confidential
// client issuing ES256 JWT access tokens for client_credentials, configured like the benchmark's Keyward target.
// env: PORT (default 3000), NODE_ENV (default production). Listens on 127.0.0.1 only; keys are generated at start.

// Set before oidc-provider (and Koa under it) is loaded: both read NODE_ENV when loaded and constructed.
process.env.NODE_ENV ??= 'production';

const { default: Provider, errors } = await import('oidc-provider');
const jose = await import('jose');

const PORT = Number(process.env.PORT || 3000);
const ISSUER = `http://127.0.0.1:${PORT}`;
// Keyward's benchmark resource: its identifier is the audience, its tokens are ES256 JWTs valid for 900 s.
const RESOURCE = 'https://bench.api';
const TTL = 900;

const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
const signing = { ...(await jose.exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const configuration = {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    // The keystore holds only the ES256 key, so the (unused) ID token default moves off RS256 too.
    id_token_signed_response_alg: 'ES256',
  }],
  // JWT access tokens are not stored: the in-memory adapter the provider warns about holds nothing per token.
  jwks: { keys: [signing] },
  // Unused by client_credentials (no cookies are set); given anyway, as a deployment would.
  cookies: { keys: [jose.base64url.encode(crypto.getRandomValues(new Uint8Array(32)))] },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token request without `resource` gets the benchmark resource, as Keyward's does for its only resource.
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: '',
          audience: RESOURCE,
          accessTokenTTL: TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: TTL },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.listen(PORT, '127.0.0.1', () => {
  console.error(`oidc-provider listening on ${ISSUER} (pid ${process.pid}, NODE_ENV=${process.env.NODE_ENV})`);
});

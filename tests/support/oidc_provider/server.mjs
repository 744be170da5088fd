// A real OpenID Provider (panva's certified `oidc-provider`) for the gateway's tests.
//
// Usage: node server.mjs <config.json>. The config names the port, the issuer, the
// clients (client_credentials; each with the alg its access tokens are signed with and
// extra claims to put in them) and one or more key sets. The provider for key set N is
// built up front; POST /__test/rotate switches to the next one, which is how a test
// makes the provider sign with a new `kid` and publish a new JWKS without a restart.
// GET /__test/counts tells how often discovery and the JWKS were fetched.
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(process.env.OIDC_PROVIDER_MODULES + '/');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const counts = { discovery: 0, jwks: 0, token: 0 };
const clientsById = Object.fromEntries(config.clients.map((c) => [c.client_id, c]));

function build(keys) {
  const provider = new Provider(config.issuer, {
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.default_audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: 'api:read',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: clientsById[client.clientId].alg } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => clientsById[token.clientId]?.claims ?? {},
    ttl: { ClientCredentials: 300 },
  });
  provider.proxy = false;
  provider.use(async (ctx, next) => {
    if (ctx.path === '/.well-known/openid-configuration') counts.discovery += 1;
    if (ctx.path === '/jwks') counts.jwks += 1;
    if (ctx.path === '/token') counts.token += 1;
    await next();
  });
  return provider.callback();
}

const handlers = config.keysets.map(build);
let current = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/__test/counts') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...counts, keyset: current }));
    return;
  }
  if (req.url === '/__test/rotate' && req.method === 'POST') {
    current = Math.min(current + 1, handlers.length - 1);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keyset: current }));
    return;
  }
  handlers[current](req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${config.port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

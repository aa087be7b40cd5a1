// A certified OpenID Provider (panva/oidc-provider) for the login tests, run as a child process
// with plain Node (the package is ESM-only). Listens on 127.0.0.1 (port from argv, 0 = any),
// prints `READY <issuer> <kid>` on stdout, and on a `rotate` line from stdin replaces its
// signing key (new kid published, old one withdrawn) without changing the issuer or port, then
// prints `ROTATED <kid>`. Interactions finish automatically: login as the account named by
// the `login_hint` parameter, consent to `openid email`.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import readline from 'node:readline';
import Provider from 'oidc-provider';

const CLIENT = {
  client_id: 'fleet-test-client',
  client_secret: 'fleet-test-secret-0123456789abcdef',
  redirect_uris: ['http://127.0.0.1/cb'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
};

function newJwk() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function build(issuer, jwk) {
  const provider = new Provider(issuer, {
    clients: [CLIENT],
    jwks: { keys: [jwk] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'email'],
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => false },
    conformIdTokenClaims: false,
    cookies: { keys: ['fleet-test-cookie-key-0123456789'] },
    async findAccount(_ctx, id) {
      return { accountId: id, claims: async () => ({ sub: `oidc|${id}`, email: id, email_verified: true }) };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  provider.proxy = false;
  return provider;
}

async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: String(details.params.login_hint) } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  grant.addOIDCScope('openid email');
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const port = Number(process.argv[2] ?? 0);
let current = null;
let kid = null;
const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/interaction/')) {
    interaction(current, req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err?.message ?? err));
    });
    return;
  }
  current.callback()(req, res);
});
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const jwk = newJwk();
  kid = jwk.kid;
  current = build(issuer, jwk);
  process.stdout.write(`READY ${issuer} ${kid}\n`);
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() !== 'rotate') return;
    const next = newJwk();
    current = build(issuer, next);
    kid = next.kid;
    process.stdout.write(`ROTATED ${kid}\n`);
  });
});
process.stdin.on('end', () => process.exit(0));

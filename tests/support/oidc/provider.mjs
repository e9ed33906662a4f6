// A real OpenID Connect provider (panva's oidc-provider) for auditrelay's SSO tests.
//
//   OIDC_PROVIDER_CONFIG='{"client": {...}, "accounts": [...]}' node provider.mjs [--port N]
//   node provider.mjs --config FILE.json [--port N] [--exit-with-stdin]
//
// It binds 127.0.0.1 only. --port (or OIDC_PROVIDER_PORT, or "port" in the config) picks the
// port; 0, the default, lets the OS choose. When it is serving it prints one line to stdout,
// `READY http://127.0.0.1:PORT`, which is also its issuer; nothing else goes to stdout (logs go
// to stderr). It exits on SIGTERM/SIGINT, and with --exit-with-stdin also when its stdin
// closes (so it cannot outlive a parent that holds the other end of the pipe).
//
// Config (JSON):
//   client:   {client_id, client_secret, redirect_uris: [...], token_endpoint_auth_method?}
//             one confidential client for the code flow; it authenticates at the token
//             endpoint with client_secret_basic unless token_endpoint_auth_method says otherwise;
//             PKCE (S256) is accepted, not required.
//   accounts: [{sub, email, email_verified, name, auditrelay_roles: [...]}, ...]
//   roles_scope (optional, default "profile"): the scope that releases `auditrelay_roles`.
//
// Claims: scope `email` releases email and email_verified, scope `profile` releases name and
// auditrelay_roles (unless roles_scope names another scope, which is then also offered).
// `conformIdTokenClaims: false` makes the provider put these scope-released claims in the ID
// token of the code flow too, not only at the userinfo endpoint (OIDC Core 5.4's default).
//
// Interactions (no dev interactions): GET /interaction/:uid shows a login form (one field,
// `login`: an account's sub or email, no password); POST /interaction/:uid/login signs that
// account in (401 with the form again for an unknown login); the consent prompt that follows
// is granted at once, for exactly what was asked, by a redirect from GET /interaction/:uid.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const INTERACTION = /^\/interaction\/([^/]+)(\/login|\/abort)?$/;

function fail(message) {
  console.error(`provider.mjs: ${message}`);
  process.exit(2);
}

function loadConfig() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      'exit-with-stdin': { type: 'boolean' },
    },
    strict: true,
  });
  let raw = process.env.OIDC_PROVIDER_CONFIG;
  if (values.config) raw = readFileSync(values.config, 'utf8');
  if (!raw) fail('no configuration: set OIDC_PROVIDER_CONFIG or pass --config FILE');
  let config;
  try {
    config = JSON.parse(raw);
  } catch (err) {
    fail(`the configuration is not JSON: ${err.message}`);
  }
  const port = Number(values.port ?? process.env.OIDC_PROVIDER_PORT ?? config.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${port}`);
  const { client, accounts } = config;
  if (!client?.client_id || !client?.client_secret || !Array.isArray(client?.redirect_uris)) {
    fail('config.client needs client_id, client_secret and redirect_uris');
  }
  if (!Array.isArray(accounts) || accounts.some((a) => typeof a?.sub !== 'string')) {
    fail('config.accounts must be a list of objects, each with a string sub');
  }
  return {
    port,
    client,
    accounts,
    rolesScope: config.roles_scope ?? 'profile',
    exitWithStdin: values['exit-with-stdin'] ?? false,
  };
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, error) {
  const message = error ? `<p class="error">${escapeHtml(error)}</p>` : '';
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head>
<body>
<h1>Sign-in</h1>
${message}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input type="text" name="login" autofocus>
<button type="submit">Sign in</button>
</form>
</body></html>
`;
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function main() {
  const { port, client, accounts, rolesScope, exitWithStdin } = loadConfig();

  const bySub = new Map(accounts.map((a) => [a.sub, a]));
  const findLogin = (login) => bySub.get(login) ?? accounts.find((a) => a.email === login);

  const server = http.createServer();
  server.listen(port, '127.0.0.1', () => {
    const issuer = `http://127.0.0.1:${server.address().port}`;

    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

    const claims = {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    };
    (claims[rolesScope] ??= []).push('auditrelay_roles');

    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: client.client_id,
          client_secret: client.client_secret,
          redirect_uris: client.redirect_uris,
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: client.token_endpoint_auth_method ?? 'client_secret_basic',
        },
      ],
      claims,
      scopes: ['openid', 'offline_access', ...Object.keys(claims).filter((s) => s !== 'openid')],
      conformIdTokenClaims: false,
      async findAccount(_ctx, sub) {
        const account = bySub.get(sub);
        if (!account) return undefined;
        return {
          accountId: sub,
          async claims() {
            return {
              sub,
              email: account.email,
              email_verified: account.email_verified,
              name: account.name,
              auditrelay_roles: account.auditrelay_roles ?? [],
            };
          },
        };
      },
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      pkce: { methods: ['S256'], required: () => false },
      jwks: { keys: [signingKey] },
      cookies: {
        keys: [randomBytes(32).toString('base64url')],
        long: { httpOnly: true, sameSite: 'lax', signed: true },
        short: { httpOnly: true, sameSite: 'lax', signed: true },
      },
      ttl: {
        AccessToken: 3600,
        AuthorizationCode: 60,
        ClientCredentials: 600,
        Grant: 3600,
        IdToken: 3600,
        Interaction: 600,
        Session: 3600,
      },
    });

    for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
      provider.on(event, (_ctx, err) => console.error(`${event}: ${err?.message} ${err?.error_description ?? ''}`));
    }

    async function interaction(req, res, uid, action) {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== uid) return send(res, 400, 'interaction mismatch\n', 'text/plain');
      const { prompt, params, session, grantId } = details;

      if (action === '/abort') {
        const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
        return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
      }

      if (prompt.name === 'login') {
        if (req.method === 'GET' && !action) return send(res, 200, loginPage(uid));
        if (req.method === 'POST' && action === '/login') {
          const login = (await readForm(req)).get('login') ?? '';
          const account = findLogin(login);
          if (!account) return send(res, 401, loginPage(uid, `no account "${login}"`));
          return provider.interactionFinished(
            req,
            res,
            { login: { accountId: account.sub } },
            { mergeWithLastSubmission: false },
          );
        }
      }

      if (prompt.name === 'consent' && req.method === 'GET' && !action) {
        // Grant exactly what is missing, as a user clicking "Allow" would.
        const grant = grantId
          ? await provider.Grant.find(grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        const { details: missing } = prompt;
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
        const result = { consent: { grantId: await grant.save() } };
        return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
      }

      return send(res, 400, `unexpected ${req.method} for prompt ${prompt.name}\n`, 'text/plain');
    }

    const callback = provider.callback();
    server.on('request', (req, res) => {
      const match = INTERACTION.exec(new URL(req.url, issuer).pathname);
      if (!match) return callback(req, res);
      return interaction(req, res, match[1], match[2]).catch((err) => {
        console.error(`interaction: ${err.stack ?? err}`);
        if (!res.headersSent) send(res, 400, `interaction failed: ${err.message}\n`, 'text/plain');
      });
    });

    process.stdout.write(`READY ${issuer}\n`);
  });
  server.on('error', (err) => fail(`cannot listen: ${err.message}`));

  // All state is in memory: there is nothing to flush, so stopping is exiting.
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (exitWithStdin) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}

main();

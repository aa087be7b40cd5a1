/**
 * npm run dev:token -- --email E [--name N]
 * Development only: prints an ID token signed by the built-in development issuer, valid for
 * 10 minutes, usable at POST /api/v1/security/login. Refused in production and whenever a real
 * identity provider is configured.
 */
import { systemClock } from '../lib/clock';
import { processEnv } from '../config';
import { loadOrCreateDevIssuerKey, signDevIdToken } from '../services/auth/dev-issuer';
import { normalizeEmail, UserInputError } from '../services/auth/users';
import { parseOptions, runCli, usageError } from './args';
import { cliConfig } from './boot';

const USAGE = `Usage: npm run -s dev:token -- --email EMAIL [--name "Display Name"]

Development only. Prints an ID token from the built-in development issuer (valid 10 minutes)
for any e-mail address; POST /login accepts it only for a provisioned, active user, so
provision the user first: npm run user:add -- --email EMAIL --role admin --tenant demo`;

runCli('dev:token', async () => {
  let values;
  try {
    values = parseOptions({
      email: { type: 'string' },
      name: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
  } catch (err) {
    usageError(USAGE, (err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Said first and plainly: production configuration problems are beside the point here.
  if (processEnv().NODE_ENV?.trim() === 'production') {
    process.stderr.write(
      'dev:token: development only; refused with NODE_ENV=production (log in through the identity provider).\n',
    );
    process.exit(1);
  }
  const config = cliConfig();
  if (!config.idp.devIssuer) {
    process.stderr.write(
      'dev:token: the development issuer is not enabled: an identity provider is configured (AUTH0_DOMAIN / AUTH0_ISSUER_BASE_URL), or NODE_ENV is test without FLEET_DEV_ISSUER=true.\n',
    );
    process.exit(1);
  }
  if (!values.email) usageError(USAGE, 'dev:token needs --email');
  let email: string;
  try {
    email = normalizeEmail(values.email);
  } catch (err) {
    if (err instanceof UserInputError) usageError(USAGE, err.message);
    throw err;
  }
  const key = loadOrCreateDevIssuerKey(config.dataDir);
  process.stdout.write(`${signDevIdToken(key, { email, name: values.name, clock: systemClock })}\n`);
});

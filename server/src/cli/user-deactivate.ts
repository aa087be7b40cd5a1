/**
 * npm run user:deactivate -- --email E --tenant T [--reason R]
 * Deactivates the user and revokes every session at once (their access and refresh tokens stop
 * working on the next request). Audited: user.deactivated, session.revoked.bulk.
 * Reactivate with npm run user:add.
 */
import { UserInputError, validateDeactivateInput } from '../services/auth/users';
import { parseOptions, runCli, usageError } from './args';
import { operatorName, withCliServices } from './services';

const USAGE = `Usage: npm run user:deactivate -- --email EMAIL --tenant TENANT [--reason "why"]

Deactivates the user and ends all of their sessions immediately. Reactivate with npm run user:add.`;

runCli('user:deactivate', async () => {
  let values;
  try {
    values = parseOptions({
      email: { type: 'string' },
      tenant: { type: 'string' },
      reason: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
  } catch (err) {
    usageError(USAGE, (err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!values.email || !values.tenant) usageError(USAGE, 'user:deactivate needs --email and --tenant');
  const { email, tenant, reason } = values;
  try {
    validateDeactivateInput({ email, tenantId: tenant, reason }); // before connecting
  } catch (err) {
    if (err instanceof UserInputError) usageError(USAGE, err.message);
    throw err;
  }
  try {
    await withCliServices(async (c) => {
      const r = await c.services.users.deactivate(
        { email, tenantId: tenant, reason: reason ?? null },
        { source: 'cli:user:deactivate', operator: operatorName() },
      );
      process.stdout.write(
        `${r.outcome === 'deactivated' ? 'deactivated' : 'already inactive'}: ${r.user.email} in tenant ${r.user.tenantId}; sessions revoked: ${r.sessionsRevoked}\n`,
      );
      if (r.events.length > 0) process.stdout.write(`audit: ${r.events.join(', ')}\n`);
    });
  } catch (err) {
    if (err instanceof UserInputError) usageError(USAGE, err.message);
    throw err;
  }
});

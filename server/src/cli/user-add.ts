/**
 * npm run user:add -- --email E --role admin|user|viewer --tenant T [--name N]
 * Creates the user, or updates the role / display name, or reactivates a deactivated user.
 * Audited: user.created, user.role_changed, user.reactivated, user.updated (display name).
 */
import { UserInputError, validateProvisionInput } from '../services/auth/users';
import { parseOptions, runCli, usageError } from './args';
import { operatorName, withCliServices } from './services';

const USAGE = `Usage: npm run user:add -- --email EMAIL --role admin|user|viewer --tenant TENANT [--name "Display Name"]

Provisions a user who may then log in through the identity provider (or the development
issuer). Run again to change the role or display name, or to reactivate a deactivated user.`;

runCli('user:add', async () => {
  let values;
  try {
    values = parseOptions({
      email: { type: 'string' },
      role: { type: 'string' },
      tenant: { type: 'string' },
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
  if (!values.email || !values.role || !values.tenant) usageError(USAGE, 'user:add needs --email, --role and --tenant');
  const { email, role, tenant, name } = values;
  try {
    validateProvisionInput({ email, role, tenantId: tenant, displayName: name }); // before connecting
  } catch (err) {
    if (err instanceof UserInputError) usageError(USAGE, err.message);
    throw err;
  }
  try {
    await withCliServices(async (c) => {
      const r = await c.services.users.provision(
        { email, role, tenantId: tenant, displayName: name },
        { source: 'cli:user:add', operator: operatorName() },
      );
      const u = r.user;
      const what = r.outcome === 'created' ? 'created' : r.outcome === 'updated' ? 'updated' : 'unchanged';
      process.stdout.write(
        `${what}: ${u.email} in tenant ${u.tenantId}, role ${u.role}${u.displayName ? `, name "${u.displayName}"` : ''} (id ${u.id})\n`,
      );
      if (r.events.length > 0) process.stdout.write(`audit: ${r.events.join(', ')}\n`);
      if (r.activeElsewhere > 0) {
        process.stderr.write(
          `warning: ${u.email} is also active in ${r.activeElsewhere} other tenant(s); logins name no tenant, so logins for this e-mail are refused as ambiguous until only one tenant has it active (npm run user:deactivate).\n`,
        );
      }
    });
  } catch (err) {
    if (err instanceof UserInputError) usageError(USAGE, err.message);
    throw err;
  }
});

/**
 * Builds every service once from ready infrastructure. Used by index.ts (the composition
 * root) and by the tests, so both run the same wiring.
 */
import type { Store } from 'express-rate-limit';
import type { Registry } from 'prom-client';
import type { Config } from './config';
import type { Pool } from './db/pool';
import type { Clock } from './lib/clock';
import type { Logger } from './lib/logger';
import { databaseCheck, type ReadinessCheck } from './lib/readiness';
import type { RequestHandler } from 'express';
import { createApiKeyAuth } from './middleware/api-key-auth';
import { createRequireAuth } from './middleware/auth';
import { createRequireStepUp } from './middleware/step-up';
import { createMfaService, type MfaService } from './services/auth/mfa';
import { createRequirePlatformAdmin } from './middleware/platform';
import { createRequirePermission } from './middleware/rbac';
import { createAuditSealer, type AuditSealer } from './services/audit/sealer';
import { buildCheckpointService } from './services/audit/checkpoint-setup';
import type { CheckpointService } from './services/audit/checkpoints';
import { createAuditProofs, type AuditProofs } from './services/audit/proofs';
import { createAuditService, type AuditService } from './services/audit/service';
import { createAuditTrail, type AuditTrail } from './services/audit/trail';
import type { Permission } from './services/auth/rbac';
import { createSessionService, type SessionService } from './services/auth/sessions';
import { createTokenService, type TokenService } from './services/auth/tokens';
import { recordAsymmetricSince } from './services/auth/signing-state';
import { createApiKeyService, type ApiKeyService } from './services/auth/api-keys';
import { createAuthService, type AuthService } from './services/auth/auth-service';
import { createDevKeyResolver } from './services/auth/dev-issuer';
import { createFailureAggregator, type FailureAggregator } from './services/audit/failure-aggregator';
import {
  createIdTokenVerifier,
  createRemoteKeyResolver,
  type IdTokenVerifier,
  type KeyResolver,
} from './services/auth/oidc';
import { createOAuthService, type OAuthService } from './services/auth/oauth';
import { createUserService, type UserService } from './services/auth/users';
import { buildEncryption, type EncryptionService, type KeyVaultDeps, type SecretStore } from './services/encryption';
import { createMasterKeyAdmin, type MasterKeyAdmin } from './services/encryption/master-key-admin';
import { buildSecurityMonitoring, type SecurityMonitoring } from './services/siem';
import { createIdempotencyService, type IdempotencyService } from './services/idempotency/service';

export interface CoreDeps {
  config: Config;
  logger: Logger;
  pool: Pool;
  clock: Clock;
  /** Store factory for rate limits (Redis when REDIS_URL is set); memory when absent. */
  makeRateLimitStore?: (prefix: string) => Store;
  /** Key Vault credential/SDK options (tests: a local vault); default DefaultAzureCredential. */
  keyVault?: KeyVaultDeps;
}

export interface Services {
  audit: AuditService;
  /** Seals committed audit rows into the per-tenant hash chain in the background. */
  auditSealer: AuditSealer;
  tokens: TokenService;
  sessions: SessionService;
  users: UserService;
  /** ID-token verification for /login; null when no identity provider is configured. */
  idTokens: IdTokenVerifier | null;
  auth: AuthService;
  encryption: EncryptionService;
  /** Encrypted per-tenant secrets (integration credentials); see docs/ENCRYPTION.md. */
  secrets: SecretStore;
  /** SIEM forwarding (outbox + worker), alerting rules, immutable audit archive. */
  monitoring: SecurityMonitoring;
  /** Idempotency-Key for POST routes that create something (contract §6). */
  idempotency: IdempotencyService;
  /** Aggregates repeated unauthenticated failures into one row per window and source. */
  failureAudit: FailureAggregator;
  /** Signed checkpoints of the audit Merkle trees (docs/AUDIT.md). */
  checkpoints: CheckpointService;
  /** Service API keys (CONTRACT §11). */
  apiKeys: ApiKeyService;
  /** TOTP enrollment and step-up (CONTRACT §11). */
  mfa: MfaService;
  /** Token introspection and revocation (RFC 7662, RFC 7009). */
  oauth: OAuthService;
  /** Reading and rotating the master key, audited (CONTRACT §3, §9). */
  masterKeys: MasterKeyAdmin;
  /** The audit trail as callers ask for it: the events they may read, verification with its row. */
  auditTrail: AuditTrail;
  /** RFC 9162 inclusion and consistency proofs of the audit trees. */
  auditProofs: AuditProofs;
}

/** Route guards built once from the services. */
export interface Guards {
  /** Bearer token + live session + per-user rate limit. */
  requireAuth: RequestHandler[];
  requirePermission: (p: Permission) => RequestHandler;
  /** requireAuth, or a service API key (`Bearer fsk_…`) with its per-key limit and use audit. */
  requireAuthOrApiKey: RequestHandler[];
  /** A service API key only (POST /oauth/introspect). */
  requireApiKey: RequestHandler;
  /** After requireAuth + requirePermission on routes marked step-up (CONTRACT §11). */
  requireStepUp: RequestHandler;
  /** After requirePermission: only admins of the platform tenant (CONTRACT §9). */
  requirePlatformAdmin: RequestHandler;
}

export interface Composition extends CoreDeps {
  services: Services;
  guards: Guards;
  readinessChecks: ReadinessCheck[];
  /** prom-client registries of services, exposed at GET /metrics beside the HTTP metrics. */
  metricRegistries: Registry[];
  /** Starts background work (workers, timers). Not called by tests that do not need it. */
  start(): Promise<void>;
  /** Stops background work; the caller closes the pool afterwards. */
  stop(): Promise<void>;
}

export async function buildServices(core: CoreDeps): Promise<Composition> {
  if (core.config.scope !== 'all') throw new Error('buildServices needs the whole configuration checked (scope "all")');
  const audit = createAuditService({ pool: core.pool, logger: core.logger });
  const auditSealer = createAuditSealer({ pool: core.pool, logger: core.logger });
  // When the database is down at build time the HS256 path stays closed until start() reads it.
  const readSince = () => recordAsymmetricSince(core.pool, new Date(core.clock.now()));
  const legacyHs256Since = await readSince().catch((err: Error) => {
    core.logger.warn('access-token switch time not read; pre-upgrade HS256 tokens are refused until it is', {
      reason: err.message,
    });
    return null;
  });
  const tokens = createTokenService(core.config, core.clock, { legacyHs256Since });
  const sessions = createSessionService({ pool: core.pool, config: core.config, clock: core.clock, audit });
  const users = createUserService({ pool: core.pool, audit, clock: core.clock });
  const idp = core.config.idp;
  let keyResolver: KeyResolver | null = null;
  if (idp.issuerUrl && idp.clientId) {
    keyResolver = createRemoteKeyResolver({
      issuerUrl: idp.issuerUrl,
      clientId: idp.clientId,
      timeoutMs: idp.timeoutMs,
      cacheMaxAgeMs: idp.jwksCacheTtlMs,
      production: core.config.isProduction,
      clock: core.clock,
      logger: core.logger,
    });
  } else if (idp.devIssuer) {
    keyResolver = createDevKeyResolver(core.config.dataDir);
  }
  const idTokens = keyResolver
    ? createIdTokenVerifier({ resolver: keyResolver, clock: core.clock, clockToleranceSec: idp.clockToleranceSec })
    : null;
  const failureAudit = createFailureAggregator({ audit, clock: core.clock, logger: core.logger });
  const enc = buildEncryption({
    config: core.config,
    logger: core.logger,
    clock: core.clock,
    pool: core.pool,
    audit,
    keyVault: core.keyVault,
  });
  const auth = createAuthService({
    pool: core.pool,
    config: core.config,
    clock: core.clock,
    logger: core.logger,
    audit,
    tokens,
    sessions,
    idTokens,
    failures: failureAudit,
    encryption: enc.encryption,
  });
  const requireAuth = createRequireAuth({
    tokens,
    sessions,
    audit,
    failures: failureAudit,
    rateLimit: core.config.rateLimit,
    makeRateLimitStore: core.makeRateLimitStore,
  });
  const apiKeys = createApiKeyService({ pool: core.pool, clock: core.clock, audit, encryption: enc.encryption });
  const mfa = createMfaService({ pool: core.pool, clock: core.clock, audit, encryption: enc.encryption, tokens });
  const keyAuth = createApiKeyAuth({
    apiKeys,
    audit,
    requireAuth,
    rateLimit: core.config.rateLimit,
    makeRateLimitStore: core.makeRateLimitStore,
  });
  const guards: Guards = {
    requireAuth,
    requirePermission: createRequirePermission(audit),
    requireAuthOrApiKey: keyAuth.requireAuthOrApiKey,
    requireApiKey: keyAuth.requireApiKey,
    requireStepUp: createRequireStepUp({
      mfa,
      audit,
      clock: core.clock,
      mfaRequiredForAdmins: core.config.identity.mfaRequiredForAdmins,
    }),
    requirePlatformAdmin: createRequirePlatformAdmin(audit, core.config.platformTenant),
  };
  const monitoring = buildSecurityMonitoring({
    config: core.config,
    pool: core.pool,
    logger: core.logger,
    clock: core.clock,
    audit,
    encryption: enc.encryption,
  });
  const checkpoints = buildCheckpointService({ ...core, siem: monitoring.siem });
  const readinessChecks: ReadinessCheck[] = [
    databaseCheck(core.pool),
    ...enc.readinessChecks,
    ...monitoring.readinessChecks,
  ];
  const starters: Array<() => Promise<void>> = [enc.start];
  if (legacyHs256Since === null)
    starters.push(
      async () =>
        void (await readSince().then(
          (ms) => tokens.setLegacyHs256Since(ms),
          () => undefined,
        )),
    );
  if (keyResolver) {
    const resolver = keyResolver;
    // Not critical: sessions keep working while the IdP is down; only new logins wait for it.
    readinessChecks.push({ name: 'identity-provider', critical: false, check: () => resolver.warm() });
    starters.push(async () => {
      await resolver.warm().catch(
        (err: Error) =>
          void core.logger.warn('identity provider not reachable at start-up; login retries on demand', {
            reason: err.message,
          }),
      );
    });
  }
  const stoppers: Array<() => Promise<void>> = [() => failureAudit.stop()];
  starters.push(async () => failureAudit.start());
  starters.push(() => auditSealer.start());
  stoppers.push(() => auditSealer.stop());
  starters.push(() => monitoring.start());
  stoppers.push(() => monitoring.stop());
  const idempotency = createIdempotencyService({ pool: core.pool, clock: core.clock, logger: core.logger });
  starters.push(() => idempotency.start());
  stoppers.push(() => idempotency.stop());
  starters.push(() => checkpoints.start());
  stoppers.push(() => checkpoints.stop());
  return {
    ...core,
    services: {
      audit,
      auditSealer,
      tokens,
      sessions,
      users,
      idTokens,
      auth,
      encryption: enc.encryption,
      secrets: enc.secrets,
      monitoring,
      idempotency,
      failureAudit,
      checkpoints,
      apiKeys,
      mfa,
      oauth: createOAuthService({
        pool: core.pool,
        clock: core.clock,
        audit,
        tokens,
        sessions,
        issuer: core.config.jwt.issuer,
        audience: core.config.jwt.audience,
      }),
      masterKeys: createMasterKeyAdmin({
        pool: core.pool,
        clock: core.clock,
        logger: core.logger,
        audit,
        encryption: enc.encryption,
        platformTenant: core.config.platformTenant,
      }),
      auditTrail: createAuditTrail({ audit, checkpoints }),
      auditProofs: createAuditProofs({ pool: core.pool }),
    },
    guards,
    readinessChecks,
    metricRegistries: [monitoring.metrics.registry],
    async start() {
      for (const s of starters) await s();
    },
    async stop() {
      for (const s of [...stoppers].reverse())
        await s().catch((err: Error) => core.logger.warn('stop failed', { err: err.message }));
    },
  };
}

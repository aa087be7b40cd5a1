/**
 * Security monitoring, wired once by the composition root: SIEM forwarding (durable outbox +
 * worker), the alerting rules and the immutable audit archive, with their metrics.
 */
import type { Config } from '../../config';
import type { Pool } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import type { ReadinessCheck } from '../../lib/readiness';
import { createBlobStore, type BlobStore } from '../archive/blob-store';
import type { ChainHeadReader } from '../archive/chain-head';
import { createArchiveService, type ArchiveService } from '../archive/service';
import type { AuditService } from '../audit/service';
import { createAlertRules, type AlertRules, type AlertRulesOptions } from './alerts';
import { createSiemMetrics, type SiemMetrics } from './metrics';
import { createSiemService, type SiemService } from './service';
import { createAuditStreams, type AuditStreams } from './streams/service';
import { createStreamWorker, type StreamWorker, type StreamWorkerDeps } from './streams/worker';
import type { EncryptionService } from '../encryption/service';
import type { SiemConnector } from './types';

const PRUNE_INTERVAL_MS = 10 * 60_000;

export interface SecurityMonitoring {
  siem: SiemService;
  alerts: AlertRules;
  archive: ArchiveService;
  metrics: SiemMetrics;
  /** Tenant audit streams; null without an encryption service (credentials are encrypted). */
  streams: AuditStreams | null;
  streamWorker: StreamWorker | null;
  readinessChecks: ReadinessCheck[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SecurityMonitoringDeps {
  config: Config;
  pool: Pool;
  logger: Logger;
  clock: Clock;
  audit: AuditService;
  /** Overrides (tests, benchmarks); defaults come from config. */
  connector?: SiemConnector | null;
  connectorTimeoutMs?: number;
  blobStore?: BlobStore | null;
  chainHead?: ChainHeadReader;
  alertRules?: Partial<AlertRulesOptions>;
  leaseMs?: number;
  random?: () => number;
  instanceId?: string;
  /** Encrypts tenant stream credentials; without it there are no tenant streams. */
  encryption?: EncryptionService;
  /** Stream worker overrides (tests, benchmarks). */
  streamWorker?: Partial<Omit<StreamWorkerDeps, 'pool' | 'config' | 'logger' | 'clock' | 'audit' | 'streams'>>;
  /** DNS resolver of the stream destination check (tests). */
  resolveDestination?: (host: string) => Promise<string[]>;
}

export function buildSecurityMonitoring(deps: SecurityMonitoringDeps): SecurityMonitoring {
  const { config, pool, logger, clock, audit } = deps;
  const metrics = createSiemMetrics();
  const siem = createSiemService({
    pool,
    config,
    logger,
    clock,
    audit,
    metrics,
    connector: deps.connector,
    connectorTimeoutMs: deps.connectorTimeoutMs,
    leaseMs: deps.leaseMs,
    random: deps.random,
    instanceId: deps.instanceId,
  });
  const alerts = createAlertRules({
    siem,
    clock,
    logger,
    metrics,
    pool,
    options: {
      bruteForce: deps.alertRules?.bruteForce ?? {
        threshold: config.login.maxFailures,
        windowMs: config.login.lockoutWindowMs,
      },
      ...(deps.alertRules?.deniedBurst ? { deniedBurst: deps.alertRules.deniedBurst } : {}),
    },
  });
  // High/critical rows reach the outbox through the audit_logs trigger (migration 040), so the
  // only hook is the rules', and only for the actions it watches: every other audit write keeps
  // the audit service's single-statement fast path.
  audit.addHook(alerts.hook, { when: (e) => alerts.watches(e.action) });
  const blobStore = deps.blobStore !== undefined ? deps.blobStore : createBlobStore(config.archive);
  const archive = createArchiveService({
    pool,
    config,
    logger,
    clock,
    audit,
    metrics,
    blobStore,
    chainHead: deps.chainHead,
  });

  const streams = deps.encryption
    ? createAuditStreams({ pool, config, clock, audit, encryption: deps.encryption, resolve: deps.resolveDestination })
    : null;
  const streamWorker = streams
    ? createStreamWorker({
        pool,
        config,
        logger,
        clock,
        audit,
        streams,
        connectorTimeoutMs: deps.connectorTimeoutMs,
        ...deps.streamWorker,
      })
    : null;
  const readinessChecks: ReadinessCheck[] = [];
  if (siem.enabled) {
    readinessChecks.push({
      name: 'siem',
      critical: false,
      async check() {
        const s = await siem.getQueueStatus(null);
        if (!s.healthy) throw new Error(s.lastError ?? 'SIEM forwarding unhealthy');
      },
    });
  }

  const alertPrune = periodic(() => alerts.prune(), {
    intervalMs: PRUNE_INTERVAL_MS,
    onError: (err) => logger.warn('alert data pruning failed', { err: (err as Error).message }),
  });
  return {
    siem,
    alerts,
    archive,
    metrics,
    streams,
    streamWorker,
    readinessChecks,
    async start() {
      await siem.start();
      streamWorker?.start();
      await archive.start();
      alertPrune.start();
    },
    async stop() {
      await alertPrune.stop();
      await archive.stop();
      await streamWorker?.stop();
      await siem.stop();
    },
  };
}

/**
 * What the parts of the SIEM forwarder share (enqueue.ts, delivery.ts, scheduler.ts,
 * status.ts): its dependencies and settings, resolved once by createSiemService.
 */
import type { Config } from '../../config';
import type { Pool } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import type { AuditService } from '../audit/service';
import type { SiemMetrics } from './metrics';
import type { SiemConnector } from './types';

export interface SiemContext {
  pool: Pool;
  config: Config;
  clock: Clock;
  audit: AuditService;
  metrics: SiemMetrics;
  connector: SiemConnector | null;
  enabled: boolean;
  provider: string | null;
  batchSize: number;
  maxQueue: number;
  leaseMs: number;
  random: () => number;
  instanceId: string;
  log: Logger;
  now(): Date;
  /** The outbox depth as last seen (every part updates it). */
  state: { depthEstimate: number };
}

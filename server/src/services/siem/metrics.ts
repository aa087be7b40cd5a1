/** Prometheus metrics of SIEM forwarding, alerting and the archive, on a registry of their own. */
import client from 'prom-client';

export interface SiemMetrics {
  registry: client.Registry;
  enqueued: client.Counter<'origin'>;
  delivered: client.Counter;
  retried: client.Counter;
  deadLettered: client.Counter<'reason'>;
  flushDuration: client.Histogram;
  queueDepth: client.Gauge;
  alerts: client.Counter<'rule'>;
  archiveExports: client.Counter<'result'>;
}

export function createSiemMetrics(registry: client.Registry = new client.Registry()): SiemMetrics {
  const registers = [registry];
  return {
    registry,
    enqueued: new client.Counter({
      name: 'fleet_siem_events_enqueued_total',
      help: 'Events put in the SIEM outbox',
      labelNames: ['origin'] as const,
      registers,
    }),
    delivered: new client.Counter({
      name: 'fleet_siem_events_delivered_total',
      help: 'Events the SIEM accepted',
      registers,
    }),
    retried: new client.Counter({
      name: 'fleet_siem_events_retried_total',
      help: 'Event deliveries that failed and were rescheduled',
      registers,
    }),
    deadLettered: new client.Counter({
      name: 'fleet_siem_events_dead_lettered_total',
      help: 'Events moved to the dead letter',
      labelNames: ['reason'] as const,
      registers,
    }),
    flushDuration: new client.Histogram({
      name: 'fleet_siem_flush_duration_seconds',
      help: 'Time to deliver one claimed batch',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    queueDepth: new client.Gauge({
      name: 'fleet_siem_queue_depth',
      help: 'Events waiting in the outbox (as last counted by this instance)',
      registers,
    }),
    alerts: new client.Counter({
      name: 'fleet_security_alerts_total',
      help: 'Security alerts raised by the alerting rules',
      labelNames: ['rule'] as const,
      registers,
    }),
    archiveExports: new client.Counter({
      name: 'fleet_audit_archive_exports_total',
      help: 'Audit archive exports',
      labelNames: ['result'] as const,
      registers,
    }),
  };
}

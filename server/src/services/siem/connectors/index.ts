import type { Config } from '../../../config';
import type { SiemConnector } from '../types';
import { createDatadogConnector } from './datadog';
import { createElasticConnector } from './elastic';
import { createSentinelConnector } from './sentinel';
import { createSplunkConnector } from './splunk';
import { createSyslogConnector } from './syslog';
import { createWebhookConnector } from './webhook';

export interface ConnectorOptions {
  timeoutMs?: number;
  hostname?: string;
}

/** The connector SIEM_PROVIDER names, or null when no SIEM is configured. */
export function createConnector(config: Config, opts: ConnectorOptions = {}): SiemConnector | null {
  const { provider, endpointUrl, apiKey, tlsCaFile } = config.siem;
  if (!provider || !endpointUrl) return null;
  const common = {
    endpointUrl,
    apiKey,
    tlsCaFile,
    timeoutMs: opts.timeoutMs,
    hostname: opts.hostname,
    environment: config.env,
    schema: config.siem.eventSchema,
  };
  switch (provider) {
    case 'splunk':
      return createSplunkConnector({
        ...common,
        ...(config.siem.splunkAck ? { ack: { timeoutMs: config.siem.splunkAckTimeoutMs } } : {}),
      });
    case 'datadog':
      return createDatadogConnector(common);
    case 'elastic':
      return createElasticConnector(common);
    case 'webhook':
      return createWebhookConnector(common);
    case 'sentinel':
      return createSentinelConnector({
        endpointUrl,
        dcrId: config.siem.sentinel.dcrId ?? '',
        streamName: config.siem.sentinel.streamName ?? '',
        azure: config.siem.sentinel,
        schema: config.siem.eventSchema,
        tlsCaFile,
        timeoutMs: opts.timeoutMs,
      });
    case 'syslog':
      return createSyslogConnector({ endpointUrl, tlsCaFile, timeoutMs: opts.timeoutMs, hostname: opts.hostname });
  }
}

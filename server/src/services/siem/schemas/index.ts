/** The event schemas a SIEM destination can receive (SIEM_EVENT_SCHEMA, per-stream `schema`). */
import type { SiemEvent } from '../types';
import { toEcs } from './ecs';
import { toOcsf, toOcsfJson } from './ocsf';

export const EVENT_SCHEMAS = ['native', 'ocsf', 'ecs'] as const;
export type EventSchema = (typeof EVENT_SCHEMAS)[number];

/** The event as a destination of `schema` receives it (native: the event itself). */
export function shapeEvent(e: SiemEvent, schema: EventSchema, host?: string): Record<string, unknown> | SiemEvent {
  if (schema === 'ocsf') return toOcsf(e);
  if (schema === 'ecs') return toEcs(e, host);
  return e;
}

/** shapeEvent serialized (OCSF through its faster serializer: the same JSON). */
export function shapeEventJson(e: SiemEvent, schema: EventSchema, host?: string): string {
  if (schema === 'ocsf') return toOcsfJson(e);
  return JSON.stringify(schema === 'ecs' ? toEcs(e, host) : e);
}

export { toEcs, toOcsf, toOcsfJson };

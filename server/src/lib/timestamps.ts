import { z } from 'zod';

const ISO_DATE_TIME = z.iso.datetime({ offset: true });
const OFFSET = /([+-])(\d{2}):(\d{2})$/;

/**
 * An ISO 8601 date-time that PostgreSQL's timestamptz accepts as written: a real calendar
 * date and time (zod's check), a year from 0001 (there is no year 0 in PostgreSQL) and a
 * UTC offset within ±15:59 (PostgreSQL refuses larger ones). Anything else would reach the
 * database only to fail there.
 */
export function isStorableTimestamp(text: string): boolean {
  if (!ISO_DATE_TIME.safeParse(text).success) return false;
  if (text.startsWith('0000')) return false;
  const offset = OFFSET.exec(text);
  return !offset || Number(offset[2]) <= 15;
}

const STORABLE_TIMESTAMP_MESSAGE =
  'must be an ISO 8601 date-time with an offset (years 0001-9999, offset within ±15:59)';

/** Largest value of a PostgreSQL bigint (audit ids). */
const INT8_MAX = 9223372036854775807n;

/** A decimal string that fits a PostgreSQL bigint and is positive. */
export function isBigintId(text: string): boolean {
  return /^[1-9]\d{0,18}$/.test(text) && BigInt(text) <= INT8_MAX;
}

/** Request field: an ISO 8601 date-time with an offset that PostgreSQL can store (see isStorableTimestamp). */
export const storableTimestamp = z.string().max(64).refine(isStorableTimestamp, STORABLE_TIMESTAMP_MESSAGE);

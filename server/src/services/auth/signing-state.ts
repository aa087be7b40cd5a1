/** The one-row record of when access tokens became asymmetric (migrations/070). */
import type { Queryable } from '../../db/pool';

const RECORD_ASYMMETRIC_SINCE = `
WITH ins AS (
  INSERT INTO auth_token_upgrade (id, asymmetric_since) VALUES (1, $1)
  ON CONFLICT (id) DO NOTHING
  RETURNING asymmetric_since
)
SELECT asymmetric_since FROM ins
UNION ALL
SELECT asymmetric_since FROM auth_token_upgrade WHERE id = 1
LIMIT 1`;

/** Records `now` as the switch time unless one is recorded; returns the recorded time (ms). */
export async function recordAsymmetricSince(q: Queryable, now: Date): Promise<number> {
  const r = await q.query<{ asymmetric_since: Date }>(RECORD_ASYMMETRIC_SINCE, [now]);
  const row = r.rows[0];
  if (!row) throw new Error('auth_token_upgrade: no row after insert');
  return row.asymmetric_since.getTime();
}

-- Fleet Security API — audit trail queries for incident response.
--
-- Run with psql as the database owner (DATABASE_URL), read-only:
--
--   psql "$DATABASE_URL" -X -f docs/AUDIT_QUERIES.sql                       # every query, last 24 h, all tenants
--   psql "$DATABASE_URL" -X -v query=failed_logins -v since=2026-01-01T00:00:00Z -f docs/AUDIT_QUERIES.sql
--   psql "$DATABASE_URL" -X -v query=user_activity -v email=eve@example.com -v tenant=acme -f docs/AUDIT_QUERIES.sql
--
-- Variables (all optional):
--   query    one of: all (default), last, failed_logins, user_activity, admin_actions, key_access,
--            security_events, denied, chain_status, chain_check, late_sealed
--   tenant   restrict to one tenant (default: every tenant)
--   since    ISO 8601 start of the window (default: 24 hours ago)
--   until    ISO 8601 end of the window (default: now)
--   limit    rows for "last" (default 50)
--   email    user_activity / failed_logins: the user's e-mail
--   user_id  user_activity: the user's id (instead of email)
--   ip       failed_logins: one client address
--   min_failures  failed_logins: only sources with at least this many failures (default 1)
--
-- Every variable is quoted where it is used (:'name', cast after quoting), so a value can
-- never become SQL. An unknown query, a limit or min_failures that is not a whole number, or
-- a query run without its required variable (user_activity: email or user_id; chain_check:
-- tenant) stops with a message on stderr and exit status 3 (ON_ERROR_STOP).
--
-- Row-level security: audit tables are forced to row-level security, so the owner sees rows
-- only after `app.audit_scope = 'all'` (set below, inside this read-only transaction).
-- The queries never modify anything.

\set ON_ERROR_STOP on
\set QUIET on
\pset null '∅'
\if :{?query}
\else
  \set query all
\endif
\if :{?tenant}
\else
  \set tenant ''
\endif
\if :{?since}
\else
  \set since ''
\endif
\if :{?until}
\else
  \set until ''
\endif
\if :{?limit}
\else
  \set limit 50
\endif
\if :{?email}
\else
  \set email ''
\endif
\if :{?user_id}
\else
  \set user_id ''
\endif
\if :{?ip}
\else
  \set ip ''
\endif
\if :{?min_failures}
\else
  \set min_failures 1
\endif

BEGIN READ ONLY;
SELECT set_config('app.audit_scope', 'all', true) AS scope \gset
-- The window and filters, once, with their defaults.
SELECT coalesce(nullif(:'since', '')::timestamptz, now() - interval '24 hours') AS w_since,
       coalesce(nullif(:'until', '')::timestamptz, now()) AS w_until,
       nullif(:'tenant', '') IS NULL AS all_tenants,
       :'query' IN ('all', 'last') AS run_last,
       :'query' IN ('all', 'failed_logins') AS run_failed_logins,
       :'query' IN ('all', 'user_activity') AND (:'email' <> '' OR :'user_id' <> '') AS run_user_activity,
       :'query' IN ('all', 'admin_actions') AS run_admin_actions,
       :'query' IN ('all', 'key_access') AS run_key_access,
       :'query' IN ('all', 'security_events') AS run_security_events,
       :'query' IN ('all', 'denied') AS run_denied,
       :'query' IN ('all', 'chain_status') AS run_chain_status,
       :'query' IN ('all', 'chain_check') AND :'tenant' <> '' AS run_chain_check,
       :'query' IN ('all', 'late_sealed') AS run_late_sealed,
       :'query' IN ('all', 'last', 'failed_logins', 'user_activity', 'admin_actions', 'key_access',
                    'security_events', 'denied', 'chain_status', 'chain_check', 'late_sealed') AS known_query,
       :'limit' ~ '^[0-9]{1,6}$' AS limit_ok,
       :'min_failures' ~ '^[0-9]{1,6}$' AS min_failures_ok,
       NOT (:'query' = 'user_activity' AND :'email' = '' AND :'user_id' = '') AS user_activity_ok,
       NOT (:'query' = 'chain_check' AND :'tenant' = '') AS chain_check_ok
\gset

-- Refusals: a message on stderr, then a deliberate error (ON_ERROR_STOP: psql exits 3).
\set stop 'DO $stop$ BEGIN RAISE EXCEPTION ''audit queries stopped: see the message above''; END $stop$;'
\if :known_query
\else
  \warn 'unknown query' :'query' '- use one of: all last failed_logins user_activity admin_actions key_access security_events denied chain_status chain_check late_sealed'
  :stop
\endif
\if :limit_ok
\else
  \warn 'limit must be a whole number (0-999999)'
  :stop
\endif
\if :min_failures_ok
\else
  \warn 'min_failures must be a whole number (0-999999)'
  :stop
\endif
\if :user_activity_ok
\else
  \warn 'query=user_activity needs -v email=... or -v user_id=...'
  :stop
\endif
\if :chain_check_ok
\else
  \warn 'query=chain_check needs -v tenant=...'
  :stop
\endif
\echo window: :'w_since' .. :'w_until'  tenant: :'tenant'

-- 1. The last N events (newest first).
\if :run_last
\echo '== last' :limit 'events'
SELECT id, created_at, tenant_id, user_id, action, resource_type, resource_id, result, severity,
       host(ip_address) AS ip, left(error_message, 80) AS error, request_id
  FROM audit_logs
 WHERE (:'tenant' = '' OR tenant_id = :'tenant')
 ORDER BY created_at DESC, id DESC
 LIMIT (:'limit')::int;
\endif

-- 2. Failed logins in the window, by source IP and by e-mail (across tenants: a failed login
--    of an unknown e-mail is recorded under the tenant '_unknown').
\if :run_failed_logins
\echo '== failed logins by IP'
SELECT host(ip_address) AS ip, count(*) AS failures, count(DISTINCT resource_id) AS emails,
       min(created_at) AS first_seen, max(created_at) AS last_seen,
       (array_agg(DISTINCT error_message))[1:3] AS reasons
  FROM audit_logs
 WHERE action = 'auth.login.failure' AND result = 'failure'
   AND created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'ip' = '' OR ip_address = nullif(:'ip', '')::inet)
   AND (:'email' = '' OR resource_id = lower(:'email'))
 GROUP BY ip_address
HAVING count(*) >= (:'min_failures')::int
 ORDER BY failures DESC, last_seen DESC;
\echo '== failed logins by e-mail'
SELECT resource_id AS email, count(*) AS failures, count(DISTINCT ip_address) AS ips,
       array_agg(DISTINCT tenant_id) AS tenants, min(created_at) AS first_seen, max(created_at) AS last_seen
  FROM audit_logs
 WHERE action = 'auth.login.failure' AND result = 'failure'
   AND created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'ip' = '' OR ip_address = nullif(:'ip', '')::inet)
   AND (:'email' = '' OR resource_id = lower(:'email'))
 GROUP BY resource_id
HAVING count(*) >= (:'min_failures')::int
 ORDER BY failures DESC, last_seen DESC;
\echo '== lockouts and brute-force alerts'
SELECT id, created_at, tenant_id, action, resource_id, host(ip_address) AS ip, severity
  FROM audit_logs
 WHERE action IN ('auth.lockout', 'security.alert.brute_force')
   AND created_at BETWEEN :'w_since' AND :'w_until'
 ORDER BY created_at DESC;
\endif

-- 3. Everything one user did in the window (by user id, or by e-mail through users).
\if :run_user_activity
\echo '== activity of' :'email' :'user_id'
SELECT l.id, l.created_at, l.tenant_id, l.action, l.resource_type, l.resource_id, l.result, l.severity,
       host(l.ip_address) AS ip, left(l.user_agent, 40) AS user_agent, l.request_id
  FROM audit_logs l
 WHERE l.created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'tenant' = '' OR l.tenant_id = :'tenant')
   AND (
         (:'user_id' <> '' AND l.user_id = nullif(:'user_id', '')::uuid)
      OR (:'email' <> '' AND l.user_id IN (SELECT u.id FROM users u WHERE u.email = lower(:'email')))
      OR (:'email' <> '' AND l.resource_type = 'user' AND l.resource_id = lower(:'email'))
   )
 ORDER BY l.created_at, l.id;
\endif

-- 4. Administrative actions: what admins did, and changes to users, roles, sessions and the trail.
\if :run_admin_actions
\echo '== admin actions'
SELECT l.id, l.created_at, l.tenant_id, u.email AS actor, l.action, l.resource_type, l.resource_id,
       l.result, l.severity
  FROM audit_logs l
  LEFT JOIN users u ON u.id = l.user_id
 WHERE l.created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'tenant' = '' OR l.tenant_id = :'tenant')
   AND (u.role = 'admin'
        OR l.action LIKE 'user.%'
        OR l.action IN ('session.revoked.bulk', 'audit.export', 'audit.purge', 'security.alert.admin_escalation',
                        'system.restore', 'system.backup', 'system.evidence_collected'))
 ORDER BY l.created_at DESC, l.id DESC;
\endif

-- 5. Key access: master-key reads, rotations, fallbacks, rewraps and key alerts.
\if :run_key_access
\echo '== key access'
SELECT l.id, l.created_at, l.tenant_id, u.email AS actor, l.action, l.result, l.severity,
       host(l.ip_address) AS ip, l.after ->> 'version' AS key_version, left(l.error_message, 80) AS error
  FROM audit_logs l
  LEFT JOIN users u ON u.id = l.user_id
 WHERE l.created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'tenant' = '' OR l.tenant_id = :'tenant')
   AND (l.action LIKE 'key.%' OR l.action = 'security.alert.key_event')
 ORDER BY l.created_at DESC, l.id DESC;
\endif

-- 6. High and critical events.
\if :run_security_events
\echo '== high and critical events'
SELECT id, created_at, tenant_id, user_id, action, resource_type, resource_id, result, severity,
       host(ip_address) AS ip, left(error_message, 80) AS error
  FROM audit_logs
 WHERE severity IN ('high', 'critical')
   AND created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'tenant' = '' OR tenant_id = :'tenant')
 ORDER BY created_at DESC, id DESC;
\endif

-- 7. Access denials by user (permission probing).
\if :run_denied
\echo '== access denied, by user'
SELECT l.tenant_id, l.user_id, u.email, u.role, count(*) AS denials,
       (array_agg(DISTINCT l.resource_id))[1:5] AS routes, min(l.created_at) AS first_seen, max(l.created_at) AS last_seen
  FROM audit_logs l
  LEFT JOIN users u ON u.id = l.user_id
 WHERE l.action = 'access.denied'
   AND l.created_at BETWEEN :'w_since' AND :'w_until'
   AND (:'tenant' = '' OR l.tenant_id = :'tenant')
 GROUP BY l.tenant_id, l.user_id, u.email, u.role
 ORDER BY denials DESC;
\endif

-- 8. Chain status per tenant: sealed rows, rows waiting for the sealer, head of the chain.
\if :run_chain_status
\echo '== hash chain status'
SELECT t.tenant_id,
       (SELECT count(*) FROM audit_chain c WHERE c.tenant_id = t.tenant_id) AS sealed,
       (SELECT count(*) FROM audit_logs l WHERE l.tenant_id = t.tenant_id
           AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = l.id)) AS unsealed,
       h.seq AS head_seq, encode(h.row_hash, 'hex') AS head_hash, h.sealed_at AS head_sealed_at,
       (SELECT max(a.seq) FROM audit_chain_anchors a WHERE a.tenant_id = t.tenant_id) AS purged_through_seq
  FROM (SELECT DISTINCT tenant_id FROM audit_logs WHERE :'tenant' = '' OR tenant_id = :'tenant') t
  LEFT JOIN LATERAL (SELECT * FROM audit_chain_head(t.tenant_id)) h ON true
 ORDER BY t.tenant_id;
\echo '== sealer queue'
SELECT count(*) AS queued, min(enqueued_at) AS oldest_enqueued, now() - min(enqueued_at) AS oldest_age FROM audit_pending;
\endif

-- 9. Recompute one tenant's chain in SQL (needs -v tenant=...): the first entry whose link or
--    hash does not hold. `npm run audit:verify -- --tenant T` does the same independently.
\if :run_chain_check
\echo '== chain check of tenant' :'tenant' '(first problems; no rows = intact)'
WITH start AS (
  SELECT coalesce(max(seq), 0) AS seq FROM audit_chain_anchors WHERE tenant_id = :'tenant'
), walk AS (
  SELECT c.seq, c.audit_id, c.prev_hash, c.row_hash,
         lag(c.row_hash) OVER (ORDER BY c.seq) AS prev_row_hash,
         lag(c.seq) OVER (ORDER BY c.seq) AS prev_seq,
         l.id IS NOT NULL AS row_present,
         CASE WHEN l.id IS NULL THEN NULL ELSE audit_row_hash(l, c.seq, c.prev_hash) END AS recomputed
    FROM audit_chain c
    LEFT JOIN audit_logs l ON l.id = c.audit_id AND l.tenant_id = c.tenant_id
   WHERE c.tenant_id = :'tenant' AND c.seq > (SELECT seq FROM start)
)
SELECT seq, audit_id,
       CASE WHEN NOT row_present THEN 'row missing (deleted)'
            WHEN prev_seq IS NOT NULL AND seq <> prev_seq + 1 THEN 'sequence gap'
            WHEN prev_seq IS NOT NULL AND prev_hash <> prev_row_hash THEN 'link mismatch'
            WHEN recomputed <> row_hash THEN 'row modified'
       END AS problem
  FROM walk
 WHERE NOT row_present
    OR (prev_seq IS NOT NULL AND (seq <> prev_seq + 1 OR prev_hash <> prev_row_hash))
    OR recomputed <> row_hash
 ORDER BY seq
 LIMIT 10;
\endif

-- 10. Rows sealed long after their timestamp: back-dated inserts or very long transactions.
\if :run_late_sealed
\echo '== rows sealed more than 60 s after their created_at'
SELECT l.id, l.tenant_id, l.action, l.created_at, c.sealed_at, c.sealed_at - l.created_at AS delay
  FROM audit_chain c
  JOIN audit_logs l ON l.id = c.audit_id
 WHERE c.sealed_at BETWEEN :'w_since' AND :'w_until'
   AND c.sealed_at - l.created_at > interval '60 seconds'
   AND (:'tenant' = '' OR l.tenant_id = :'tenant')
 ORDER BY delay DESC
 LIMIT 100;
\endif

ROLLBACK;

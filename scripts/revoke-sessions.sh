#!/usr/bin/env bash
# Bulk session revocation: the access and refresh tokens of the revoked sessions stop working
# on their next request (requireAuth checks the session on every request).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/revoke-sessions.sh --user EMAIL [--tenant T] [--reason R]
       scripts/revoke-sessions.sh --tenant T [--reason R]
       scripts/revoke-sessions.sh --all [--reason R]

Revokes every live session of a user (in every tenant, or only in --tenant T), of a tenant,
or of everybody, in one transaction together with its audit rows (session.revoked.bulk,
one per affected tenant; one row even when nothing was revoked). Access tokens of those
sessions are refused on their next request and their refresh tokens can no longer be used.
Prints how many sessions were revoked: the last line is "revoked N session(s) ...".

Options:
  --user EMAIL   the user's sessions (email, case-insensitive)
  --tenant T     the tenant's sessions (with --user: that user's sessions in T only)
  --all          every session of every tenant (e.g. after a signing-key leak)
  --reason R     stored in sessions.revoked_reason and the audit row (at most 200 characters;
                 default "revoked by an operator (revoke-sessions.sh)")
  -h, --help     this text
Each option may be given once (a repeated option is refused, exit 2: to revoke the sessions of
several users, run the script once per user).

Settings (environment): the database as for the server (DATABASE_URL or DATABASE_* parts, or
the running embedded development database).
Exit status: 0 done (also when there was nothing to revoke); 1 failure, unknown user, or
unknown tenant (no user in it: a typo is not mistaken for success; nothing is revoked or
audited); 2 bad arguments or settings.
USAGE
}

email="" tenant="" all=0 reason=""
reason_set=0
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --user) fleet_once "$1"; fleet_need_value "$@"; email=$2; shift ;;
    --tenant) fleet_once "$1"; fleet_need_value "$@"; tenant=$2; shift ;;
    --all) fleet_once "$1"; all=1 ;;
    --reason) fleet_once "$1"; fleet_need_value "$@"; reason=$2; reason_set=1; shift ;;
    *) fleet_usage_error "unknown argument: $1" ;;
  esac
  shift
done

if ((all == 1)); then
  [[ -z $email && -z $tenant ]] || fleet_usage_error "--all cannot be combined with --user or --tenant"
  scope=all
elif [[ -n $email ]]; then
  scope=user
elif [[ -n $tenant ]]; then
  scope=tenant
else
  fleet_usage_error "say whose sessions: --user EMAIL, --tenant T or --all"
fi
if [[ -n $email ]]; then
  if ((${#email} > 254)) || [[ ! $email =~ ^[^[:space:][:cntrl:]@]+@[^[:space:][:cntrl:]@]+$ ]]; then
    fleet_usage_error "--user must be an email address, got: $email"
  fi
fi
if [[ -n $tenant && ! $tenant =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]]; then
  fleet_usage_error "--tenant must be a tenant id (letters, digits, . _ -; at most 64), got: $tenant"
fi
if ((reason_set == 0)); then
  reason="revoked by an operator (revoke-sessions.sh)"
fi
if ((${#reason} > 200)); then
  fleet_usage_error "--reason is longer than 200 characters"
fi
if [[ $reason =~ [[:cntrl:]] ]]; then
  fleet_usage_error "--reason must not contain control characters"
fi

fleet_require_cmd psql "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
fleet_load_db
fleet_check_connection

vars=(-v scope="$scope" -v email="$email" -v tenant="$tenant" -v reason="$reason"
  -v ua="fleet-ops/$FLEET_SCRIPT_NAME ($(fleet_operator))" -v reqid="$(fleet_run_id)")

if [[ $scope == user ]]; then
  users=$(fleet_psql -At "${vars[@]}" <<'SQL'
SELECT count(*) FROM users WHERE email = lower(:'email') AND (:'tenant' = '' OR tenant_id = :'tenant');
SQL
  )
  ((users > 0)) || fleet_die 1 "no user with email $email${tenant:+ in tenant $tenant}: nothing revoked"
elif [[ $scope == tenant ]]; then
  # A tenant exists for this purpose when it has users (sessions always belong to one).
  known=$(fleet_psql -At "${vars[@]}" <<'SQL'
SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = :'tenant') OR EXISTS (SELECT 1 FROM sessions WHERE tenant_id = :'tenant');
SQL
  )
  [[ $known == t ]] || fleet_die 1 "unknown tenant $tenant (it has no users): nothing revoked"
fi

# One transaction: the revocation and its audit rows commit together or not at all.
result=$(fleet_psql -At "${vars[@]}" <<'SQL'
BEGIN;
WITH target_users AS (
  SELECT id, tenant_id FROM users WHERE :'scope' = 'user' AND email = lower(:'email') AND (:'tenant' = '' OR tenant_id = :'tenant')
), revoked AS (
  UPDATE sessions s SET revoked_at = now(), revoked_reason = :'reason'
  WHERE s.revoked_at IS NULL
    AND (   :'scope' = 'all'
         OR (:'scope' = 'tenant' AND s.tenant_id = :'tenant')
         OR (:'scope' = 'user' AND (s.user_id, s.tenant_id) IN (SELECT id, tenant_id FROM target_users)))
  RETURNING s.tenant_id
), per_tenant AS (
  SELECT tenant_id, count(*) AS n FROM revoked GROUP BY tenant_id
), audit_rows AS (
  SELECT tenant_id, n FROM per_tenant
  UNION ALL
  SELECT COALESCE(NULLIF(:'tenant', ''), (SELECT min(tenant_id) FROM target_users), '_system'), 0
  WHERE NOT EXISTS (SELECT 1 FROM per_tenant)
), audited AS (
  INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id, after, user_agent, result, severity, request_id)
  SELECT r.tenant_id, NULL, 'session.revoked.bulk', 'session',
         CASE :'scope' WHEN 'user' THEN lower(:'email') WHEN 'tenant' THEN :'tenant' ELSE 'all' END,
         jsonb_build_object('scope', :'scope', 'revoked', r.n, 'reason', :'reason',
                            'user', NULLIF(lower(:'email'), ''), 'tenant', NULLIF(:'tenant', '')),
         left(:'ua', 1024), 'success', 'high', :'reqid'
  FROM audit_rows r
  RETURNING 1
)
SELECT (SELECT COALESCE(sum(n), 0) FROM per_tenant) || '|' || (SELECT count(*) FROM per_tenant) || '|' || (SELECT count(*) FROM audited);
COMMIT;
SQL
) || fleet_die 1 "revocation failed (see above); nothing was revoked"

IFS='|' read -r revoked tenants _ <<<"$result"
case $scope in
  user) what="user $email${tenant:+ in tenant $tenant}" ;;
  tenant) what="tenant $tenant" ;;
  *) what="all tenants" ;;
esac
fleet_log "audited as session.revoked.bulk (request id $(fleet_run_id))"
printf 'revoked %s session(s) of %s (%s tenant(s) affected)\n' "$revoked" "$what" "$tenants"

#!/usr/bin/env bash
# Incident evidence collection: read-only export of audit rows, sessions, failed logins and
# security events, plus chain verification, logs and host facts, sealed with a manifest.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/collect-evidence.sh --since ISO [--until ISO] [--user EMAIL] [--ip ADDR]
                                   [--tenant T] --out DIR

Creates DIR/evidence-YYYYMMDDTHHMMSSZ-<hex>/ (mode 0700) holding, for the window
[--since, --until) and the filters given (all of them must match):
  audit_logs.csv / .ndjson        matching audit rows (every column), oldest first; in the CSVs a
                                  cell starting with = + - @ tab or CR is prefixed with ' (CSV
                                  injection); the NDJSON is exact
  failed_logins.csv / .ndjson     auth.login.failure and auth.lockout rows among them
  security_events.csv / .ndjson   security.* alerts, high/critical severity and denied rows
  sessions.csv / .ndjson          sessions active during the window (with the user's email)
  users.csv / .ndjson             users those rows and sessions refer to
  audit_chain.txt                 the audit hash chain verification (npm run audit:verify,
                                  without recording an audit.verify row)
  logs/                           application log files from LOG_DIR changed since --since
  host.txt                        host and database facts (time, hostname, versions)
  CHAIN_OF_CUSTODY.md             who collected it, when, with which command line
  MANIFEST.sha256                 SHA-256 of every file: cd FOLDER && sha256sum -c MANIFEST.sha256
and beside the folder FOLDER.tar.gz with FOLDER.tar.gz.sha256 (sha256sum -c verifies it).

The database is only read: every export runs in one READ ONLY, REPEATABLE READ transaction
(one consistent snapshot). Afterwards one system.evidence_collected audit row is written.

Options:
  --since ISO     start of the window, e.g. 2026-01-31T22:00:00Z (required; no zone = UTC)
  --until ISO     end of the window (default: now)
  --user EMAIL    rows by or about this user (user id, or login failures naming the email)
  --ip ADDR       rows from this IP address or CIDR block (e.g. 203.0.113.7, 10.0.0.0/8)
  --tenant T      rows of this tenant only
  --out DIR       where the evidence folder is created (created when missing, mode 0700;
                  must be a folder this user can write to)
  -h, --help      this text
Each option may be given once.

Settings (environment): the database as for the server (DATABASE_URL or DATABASE_* parts, or
the running embedded development database); LOG_DIR, the application's log folder. (npm run
audit:verify, which the script runs, needs only the database settings.)
Exit status: 0 collected; 1 failure; 2 bad arguments or settings (including an invalid time
or address, an option given twice, and an --out that cannot be created or written to).
USAGE
}

since="" until_ts="" email="" ip="" tenant="" out=""
argv_quoted=$(printf '%q ' "$0" "$@")
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --since) fleet_once "$1"; fleet_need_value "$@"; since=$2; shift ;;
    --until) fleet_once "$1"; fleet_need_value "$@"; until_ts=$2; shift ;;
    --user) fleet_once "$1"; fleet_need_value "$@"; email=$2; shift ;;
    --ip) fleet_once "$1"; fleet_need_value "$@"; ip=$2; shift ;;
    --tenant) fleet_once "$1"; fleet_need_value "$@"; tenant=$2; shift ;;
    --out) fleet_once "$1"; fleet_need_value "$@"; out=$2; shift ;;
    *) fleet_usage_error "unknown argument: $1" ;;
  esac
  shift
done

iso_re='^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
[[ -n $since ]] || fleet_usage_error "--since is required (an ISO 8601 time such as 2026-01-31T22:00:00Z)"
[[ -n $out ]] || fleet_usage_error "--out is required (the folder the evidence goes into)"
[[ $since =~ $iso_re ]] || fleet_usage_error "--since must be an ISO 8601 time such as 2026-01-31T22:00:00Z, got: $since"
if [[ -n $until_ts ]]; then
  [[ $until_ts =~ $iso_re ]] || fleet_usage_error "--until must be an ISO 8601 time such as 2026-02-01T06:00:00Z, got: $until_ts"
else
  until_ts=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
fi
if [[ -n $email ]]; then
  if ((${#email} > 254)) || [[ ! $email =~ ^[^[:space:][:cntrl:]@]+@[^[:space:][:cntrl:]@]+$ ]]; then
    fleet_usage_error "--user must be an email address, got: $email"
  fi
fi
if [[ -n $ip ]]; then
  if ((${#ip} > 49)) || [[ ! $ip =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ ]]; then
    fleet_usage_error "--ip must be an IP address or CIDR block, got: $ip"
  fi
fi
if [[ -n $tenant ]]; then
  [[ $tenant =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]] || fleet_usage_error "--tenant must be a tenant id (letters, digits, . _ -; at most 64), got: $tenant"
fi
out=$(fleet_abspath "$out")
log_dir=${LOG_DIR:-}

fleet_require_cmd psql "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
fleet_require_cmd sha256sum "install coreutils"
fleet_require_cmd tar "install tar"
fleet_load_db
fleet_check_connection

# check_value OPTION VALUE TYPE WHAT ACCEPTED: the database itself (read-only) parses VALUE as TYPE,
# before any file is written. A value it rejects (SQLSTATE class 22, data exception) is a usage
# error naming the option and the accepted format, never the database's SQL text; any other
# error is a failure.
check_value() {
  local option=$1 value=$2 type=$3 what=$4 accepted=$5 err
  if ! err=$(fleet_psql_readonly -At -v VERBOSITY=sqlstate -v value="$value" 2>&1 >/dev/null <<SQL
SELECT (:'value')::$type;
SQL
  ); then
    if [[ $err =~ ERROR:\ +22[0-9A-Z]{3} ]]; then
      fleet_usage_error "$option $value is not a valid $what (accepted: $accepted)"
    fi
    fleet_die 1 "could not check $option against $FLEET_DB_DESCRIPTION (${err%%$'\n'*})"
  fi
}
time_format="ISO 8601, YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM], a real date and time, no zone = UTC, e.g. 2026-01-31T22:00:00Z"
check_value --since "$since" timestamptz time "$time_format"
check_value --until "$until_ts" timestamptz time "$time_format"
[[ -z $ip ]] || check_value --ip "$ip" inet "IP address or CIDR block" "an IPv4 or IPv6 address, optionally with /prefix, e.g. 203.0.113.7, 2001:db8::1, 10.0.0.0/8"

vars=(-v since="$since" -v until="$until_ts" -v email="$email" -v ip="$ip" -v tenant="$tenant")
window=$(fleet_psql_readonly -At "${vars[@]}" <<'SQL'
SELECT CASE WHEN (:'since')::timestamptz < (:'until')::timestamptz THEN 'ok' ELSE 'empty' END,
       floor(extract(epoch FROM (:'since')::timestamptz))::bigint;
SQL
) || fleet_die 1 "could not check the window against $FLEET_DB_DESCRIPTION (see the psql message above)"
IFS='|' read -r window_ok since_epoch <<<"$window"
[[ $window_ok == ok ]] || fleet_usage_error "--since ($since) must be before --until ($until_ts)"

# Every exported table must be fully visible to this login (see fleet_rls_check).
fleet_rls_check >/dev/null

umask 077
if ! why=$(fleet_prepare_dir "$out"); then
  fleet_die 2 "--out $out $why: choose a folder you can write to; nothing was collected"
fi
started=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
name="evidence-$(date -u +%Y%m%dT%H%M%SZ)-$(fleet_rand_hex 3)"
dir="$out/$name"
mkdir -- "$dir"
chmod 700 -- "$dir"
fleet_log "collecting into $dir"

# Filters, as constant SQL text over psql variables (values are never spliced into SQL).
audit_filter="a.created_at >= (:'since')::timestamptz AND a.created_at < (:'until')::timestamptz
  AND (:'tenant' = '' OR a.tenant_id = :'tenant')
  AND (:'ip' = '' OR a.ip_address <<= (NULLIF(:'ip', ''))::inet)
  AND (:'email' = ''
       OR a.user_id IN (SELECT u.id FROM users u WHERE u.email = lower(:'email') AND (:'tenant' = '' OR u.tenant_id = :'tenant'))
       OR (a.resource_type = 'user' AND (a.resource_id = lower(:'email')
           OR a.resource_id IN (SELECT u.id::text FROM users u WHERE u.email = lower(:'email') AND (:'tenant' = '' OR u.tenant_id = :'tenant')))))"
session_filter="s.created_at < (:'until')::timestamptz AND s.last_used_at >= (:'since')::timestamptz
  AND (:'tenant' = '' OR s.tenant_id = :'tenant')
  AND (:'ip' = '' OR s.ip_address <<= (NULLIF(:'ip', ''))::inet)
  AND (:'email' = '' OR u.email = lower(:'email'))"
audit_q="SELECT a.* FROM audit_logs a WHERE $audit_filter ORDER BY a.id"
failed_q="SELECT a.* FROM audit_logs a WHERE $audit_filter AND a.action IN ('auth.login.failure', 'auth.lockout') ORDER BY a.id"
security_q="SELECT a.* FROM audit_logs a WHERE $audit_filter AND (a.action LIKE 'security.%' OR a.severity IN ('high', 'critical') OR a.result = 'denied') ORDER BY a.id"
sessions_q="SELECT s.id, s.tenant_id, s.user_id, u.email, s.created_at, s.last_used_at, s.idle_expires_at, s.absolute_expires_at,
  s.revoked_at, s.revoked_reason, s.ip_address, s.user_agent
  FROM sessions s JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id WHERE $session_filter ORDER BY s.created_at, s.id"
users_q="SELECT u.id, u.tenant_id, u.email, u.role, u.display_name, u.is_active, u.auth0_sub, u.created_at, u.updated_at
  FROM users u WHERE u.id IN (SELECT a.user_id FROM audit_logs a WHERE $audit_filter)
     OR u.id::text IN (SELECT lower(a.resource_id) FROM audit_logs a WHERE $audit_filter AND a.resource_type = 'user')
     OR (u.tenant_id, u.email) IN (SELECT a.tenant_id, lower(a.resource_id) FROM audit_logs a WHERE $audit_filter AND a.resource_type = 'user')
     OR u.id IN (SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id WHERE $session_filter)
     OR (:'email' <> '' AND u.email = lower(:'email') AND (:'tenant' = '' OR u.tenant_id = :'tenant'))
  ORDER BY u.tenant_id, u.email"

export_sql=""
for pair in "audit_logs:$audit_q" "failed_logins:$failed_q" "security_events:$security_q" "sessions:$sessions_q" "users:$users_q"; do
  file=${pair%%:*}
  query=${pair#*:}
  export_sql+="COPY ($query) TO STDOUT WITH (FORMAT csv, HEADER) \\g $file.csv
SELECT row_to_json(x)::text FROM ($query) x \\g $file.ndjson
"
done

# One read-only snapshot for every export (and the database facts in host.txt).
(
  cd "$dir"
  fleet_psql_readonly "${vars[@]}" <<SQL
\\pset format unaligned
\\pset tuples_only on
\\pset footer off
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT concat_ws(E'\\n',
       'database_snapshot_time_utc: ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       'database_server_version: ' || version(),
       'database_transaction_read_only: ' || current_setting('transaction_read_only'),
       'database_isolation: ' || current_setting('transaction_isolation')) \\g db-facts.tmp
$export_sql
COMMIT;
SQL
) || fleet_die 1 "the read-only export failed (see above); partial evidence left in $dir"

# CSV injection (OWASP): cells starting with =, +, -, @, tab or CR get a leading ' so a
# spreadsheet shows them as text. The NDJSON files keep the exact values.
fleet_cli csv-safe "$dir/audit_logs.csv" "$dir/failed_logins.csv" "$dir/security_events.csv" "$dir/sessions.csv" "$dir/users.csv" \
  || fleet_die 1 "could not neutralize formula-like CSV cells; partial evidence left in $dir"

count() { wc -l <"$dir/$1.ndjson" | tr -d ' '; }
n_audit=$(count audit_logs)
n_failed=$(count failed_logins)
n_security=$(count security_events)
n_sessions=$(count sessions)
n_users=$(count users)
fleet_log "exported $n_audit audit rows ($n_failed failed logins, $n_security security events), $n_sessions sessions, $n_users users"

# ---- audit hash chain verification (result recorded, never fatal: the evidence matters most)
# --no-record: the verification writes no audit.verify row (the database stays untouched).
chain_args=(-- --no-record)
[[ -z $tenant ]] || chain_args+=(--tenant "$tenant")
{
  printf 'command: npm run audit:verify %s\n' "${chain_args[*]}"
  printf 'started_utc: %s\n' "$(fleet_now_iso)"
} >"$dir/audit_chain.txt"
if (cd "$FLEET_ROOT" && node -e 'process.exit(require("./package.json").scripts?.["audit:verify"] ? 0 : 1)' 2>/dev/null); then
  set +e
  (cd "$FLEET_ROOT" && npm run -s audit:verify "${chain_args[@]}") >"$dir/audit_chain.out" 2>&1
  rc=$?
  set -e
  case $rc in
    0) chain_result=intact ;;
    1) chain_result=BROKEN ;;
    *) chain_result="error (exit $rc)" ;;
  esac
  {
    printf 'exit_code: %s\nresult: %s\n--- output ---\n' "$rc" "$chain_result"
    cat "$dir/audit_chain.out"
  } >>"$dir/audit_chain.txt"
  rm -f -- "$dir/audit_chain.out"
else
  chain_result=unavailable
  printf 'exit_code: none\nresult: unavailable (npm run audit:verify is not defined in %s)\n' "$FLEET_ROOT" >>"$dir/audit_chain.txt"
fi
fleet_log "audit hash chain: $chain_result"
[[ $chain_result == intact || $chain_result == unavailable ]] || fleet_log "WARNING: audit hash chain verification: $chain_result - see $dir/audit_chain.txt"

# ---- application logs changed since --since
mkdir -- "$dir/logs"
n_logs=0
if [[ -n $log_dir && -d $log_dir ]]; then
  while IFS= read -r -d '' f; do
    cp --preserve=timestamps -- "$f" "$dir/logs/"
    n_logs=$((n_logs + 1))
  done < <(find "$log_dir" -maxdepth 1 -type f -newermt "@$since_epoch" -print0)
  printf 'copied from LOG_DIR=%s: files changed since %s\n' "$log_dir" "$since" >"$dir/logs/README.txt"
else
  printf 'no logs copied: LOG_DIR is %s\n' "${log_dir:-not set (the application logs to its console / journal: export them separately, e.g. journalctl -u fleet-security-api --since ...)}" >"$dir/logs/README.txt"
fi
fleet_log "copied $n_logs log file(s)"

# ---- host facts
{
  printf 'collected_at_utc: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)"
  printf 'hostname: %s\n' "$(hostname -f 2>/dev/null || hostname)"
  printf 'kernel: %s\n' "$(uname -srvm)"
  if [[ -r /etc/os-release ]]; then
    printf 'os: %s\n' "$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')"
  fi
  printf 'uptime: %s\n' "$(uptime 2>/dev/null || printf 'unknown')"
  printf 'timezone: %s\n' "$(date +%Z%z)"
  printf 'node: %s\n' "$(node --version 2>/dev/null || printf 'not installed')"
  printf 'psql: %s\n' "$(psql --version)"
  printf 'application: %s\n' "$(cd "$FLEET_ROOT" && node -p 'const p = require("./package.json"); p.name + " " + p.version' 2>/dev/null || printf 'unknown')"
  if git -C "$FLEET_ROOT" rev-parse HEAD >/dev/null 2>&1; then
    printf 'git_commit: %s\n' "$(git -C "$FLEET_ROOT" rev-parse HEAD)"
  fi
  printf 'database: %s\n' "$FLEET_DB_DESCRIPTION"
  cat "$dir/db-facts.tmp"
} >"$dir/host.txt"
rm -f -- "$dir/db-facts.tmp"

# ---- chain of custody
finished=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
{
  printf '# Chain of custody: %s\n\n' "$name"
  printf -- '- Collected by: %s (uid %s)\n' "$(fleet_operator)" "$(id -u)"
  [[ -z ${SSH_CONNECTION:-} ]] || printf -- '- Operator connection: ssh from %s\n' "${SSH_CONNECTION%% *}"
  printf -- '- Started (UTC): %s\n- Finished (UTC): %s\n' "$started" "$finished"
  printf -- '- Command line:\n\n      %s\n\n' "${argv_quoted% }"
  printf -- '- Run id (audit request_id): %s\n' "$(fleet_run_id)"
  printf -- '- Database: %s, read in one READ ONLY REPEATABLE READ transaction (nothing modified; one system.evidence_collected audit row written afterwards)\n' "$FLEET_DB_DESCRIPTION"
  printf -- '- Window: since %s until %s\n' "$since" "$until_ts"
  printf -- '- Filters: user=%s ip=%s tenant=%s\n' "${email:-any}" "${ip:-any}" "${tenant:-any}"
  printf -- '- Rows: audit_logs %s, failed_logins %s, security_events %s, sessions %s, users %s; log files %s\n' \
    "$n_audit" "$n_failed" "$n_security" "$n_sessions" "$n_users" "$n_logs"
  printf -- '- Audit hash chain: %s\n\n' "$chain_result"
  printf '## Integrity\n\nMANIFEST.sha256 lists the SHA-256 of every other file in this folder:\n\n'
  printf '    cd %s && sha256sum -c MANIFEST.sha256\n\n' "$name"
  printf 'The archive %s.tar.gz has its checksum in %s.tar.gz.sha256 (sha256sum -c %s.tar.gz.sha256).\n' "$name" "$name" "$name"
  printf 'Record that checksum in the incident ticket now; hand over copies only with it.\n\n'
  printf '## Transfers\n\n| date (UTC) | from | to | purpose | archive sha256 verified |\n|---|---|---|---|---|\n'
} >"$dir/CHAIN_OF_CUSTODY.md"

# ---- manifest, archive, checksum
(
  cd "$dir"
  find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum -- >"../$name.manifest.tmp"
  mv -- "../$name.manifest.tmp" MANIFEST.sha256
  sha256sum --quiet -c MANIFEST.sha256
)
tar -C "$out" -czf "$out/$name.tar.gz" -- "$name"
(cd "$out" && sha256sum -- "$name.tar.gz" >"$name.tar.gz.sha256")
archive_sha=$(cut -d' ' -f1 "$out/$name.tar.gz.sha256")
fleet_log "sealed: MANIFEST.sha256, $name.tar.gz (sha256 $archive_sha)"

audit_tenant=${tenant:-_system}
fleet_audit system.evidence_collected medium "$audit_tenant" evidence "$name" success "" \
  "jsonb_build_object('since', :'a_since', 'until', :'a_until', 'user', NULLIF(:'a_email', ''), 'ip', NULLIF(:'a_ip', ''), 'tenant', NULLIF(:'a_tenant_f', ''), 'auditRows', (:'a_n1')::int, 'failedLogins', (:'a_n2')::int, 'securityEvents', (:'a_n3')::int, 'sessions', (:'a_n4')::int, 'users', (:'a_n5')::int, 'chain', :'a_chain', 'archive', :'a_archive', 'archiveSha256', :'a_sha')" \
  -v a_since="$since" -v a_until="$until_ts" -v a_email="$email" -v a_ip="$ip" -v a_tenant_f="$tenant" \
  -v a_n1="$n_audit" -v a_n2="$n_failed" -v a_n3="$n_security" -v a_n4="$n_sessions" -v a_n5="$n_users" \
  -v a_chain="$chain_result" -v a_archive="$out/$name.tar.gz" -v a_sha="$archive_sha" ||
  fleet_die 1 "the evidence is complete ($dir) but its system.evidence_collected audit row could not be recorded"

printf '%s\n%s\n' "$dir" "$out/$name.tar.gz"

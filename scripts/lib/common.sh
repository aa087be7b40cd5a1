# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Sourced, never executed.
#
# - FLEET_ROOT: the project root (scripts/..), whatever the caller's working directory.
# - fleet_cli NAME ARGS…: runs server/src/cli/NAME.ts with tsx (a runtime dependency), or the
#   compiled NAME.js (container image / `npm run build`), from the project root. Pass
#   absolute paths (see fleet_abspath).
# - fleet_load_db: resolves the database like the server (DATABASE_URL, DATABASE_* parts, or
#   the running embedded development database) into libpq variables PGHOST, PGPORT,
#   PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE, so no password ever appears on a command line.
# - fleet_psql ARGS…: psql without ~/.psqlrc, never prompting, stopping at the first error.
#   Values go in as `-v name=value` and are used as :'name' in SQL (quoted by psql).
# - fleet_audit …: one plain INSERT into audit_logs (base columns; the audit trail chains it).

FLEET_SCRIPT_NAME=$(basename "$0")
FLEET_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FLEET_DB_DESCRIPTION=""
FLEET_PGOPTIONS="${PGOPTIONS:-}"

fleet_log() {
  printf '%s: %s\n' "$FLEET_SCRIPT_NAME" "$*" >&2
}

# fleet_die CODE MESSAGE…
fleet_die() {
  local code=$1
  shift
  printf '%s: error: %s\n' "$FLEET_SCRIPT_NAME" "$*" >&2
  exit "$code"
}

fleet_usage_error() {
  printf '%s: %s\nTry: %s --help\n' "$FLEET_SCRIPT_NAME" "$*" "$0" >&2
  exit 2
}

# fleet_need_value OPTION [VALUE ...]: an option that takes a value got a non-empty one.
# Call as `fleet_need_value "$@"` from the argument loop.
fleet_need_value() {
  [[ $# -ge 2 && -n $2 ]] || fleet_usage_error "$1 needs a value"
  # `--since --out DIR` would otherwise take --out as the date and then call DIR unknown.
  [[ $2 != --* ]] || fleet_usage_error "$1 needs a value (got the option $2)"
}

# fleet_once OPTION: each option may be given once. A repeat is a usage error (exit 2) rather
# than a silent "the last one wins" (--user a --user b must not quietly act on b alone).
# Call as `fleet_once "$1"` first thing in the option's case branch.
FLEET_SEEN_OPTIONS=" "
fleet_once() {
  [[ $FLEET_SEEN_OPTIONS != *" $1 "* ]] || fleet_usage_error "$1 was given more than once (give each option once)"
  FLEET_SEEN_OPTIONS+="$1 "
}

# fleet_check_key_file SETTING FILE: FILE is a readable regular file that neither its group nor
# others may access (like ssh with a private key). Exit 2 otherwise, naming SETTING.
fleet_check_key_file() {
  local setting=$1 file=$2 mode
  [[ -f $file && -r $file ]] || fleet_die 2 "$setting: $file is not a readable file"
  mode=$(stat -L -c %a -- "$file" 2>/dev/null) || fleet_die 2 "$setting: cannot read the permissions of $file"
  if (((8#$mode & 8#077) != 0)); then
    fleet_die 2 "$setting: $file is accessible by group or others (mode $mode); a backup key must be private to the user running this script: chown that user and chmod 600 it. Refusing to use it."
  fi
}

# fleet_prepare_dir DIR: creates DIR when missing (mode 0700) and checks that it is a folder
# this user can create files in (a real probe: catches read-only file systems too). On failure
# prints why as the end of a sentence ("cannot be created (Permission denied)") on stdout and
# returns 1; the caller names the setting or option and dies with its own exit code.
fleet_prepare_dir() {
  local dir=$1 err probe
  if [[ -e $dir ]]; then
    [[ -d $dir ]] || { printf 'exists and is not a folder'; return 1; }
  elif [[ -L $dir ]]; then
    printf 'is a symbolic link to nothing'
    return 1
  else
    if ! err=$(mkdir -p -- "$dir" 2>&1); then
      err=${err%%$'\n'*}
      printf 'cannot be created (%s)' "${err##*: }"
      return 1
    fi
    chmod 700 -- "$dir" 2>/dev/null || { printf 'was created but cannot be made private (chmod 700)'; return 1; }
  fi
  if [[ ! -w $dir || ! -x $dir ]] || ! probe=$(mktemp -p "$dir" .fleet-write-test.XXXXXXXX 2>/dev/null); then
    printf 'is not writable by %s' "$(id -un 2>/dev/null || id -u)"
    return 1
  fi
  rm -f -- "$probe"
}

# fleet_require_cmd NAME HINT
fleet_require_cmd() {
  command -v "$1" >/dev/null 2>&1 || fleet_die 1 "$1 not found in PATH: $2"
}

fleet_abspath() {
  local p=$1
  case $p in
    /*) ;;
    *) p="$PWD/$p" ;;
  esac
  # Printed to people: no `/./` segments or trailing `/.` (`./backups` -> $PWD/backups).
  while [[ $p == */./* ]]; do p=${p//\/.\//\/}; done
  [[ $p == */. ]] && p=${p%/.}
  [[ -n $p ]] || p=/
  printf '%s' "$p"
}

# fleet_rand_hex BYTES
fleet_rand_hex() {
  od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

fleet_now_iso() {
  date -u +%Y-%m-%dT%H:%M:%SZ
}

# One id per run, used as the audit rows' request_id (correlates a run's rows and notes).
FLEET_RUN_ID="ops-$(date -u +%Y%m%dT%H%M%SZ)-$(fleet_rand_hex 4)"
fleet_run_id() {
  printf '%s' "$FLEET_RUN_ID"
}

# Who runs this, for audit rows and the chain-of-custody note.
fleet_operator() {
  local who
  who=$(id -un 2>/dev/null || printf 'uid-%s' "$(id -u)")
  if [[ -n ${SUDO_USER:-} ]]; then
    who="$who (sudo by $SUDO_USER)"
  fi
  printf '%s@%s' "$who" "$(hostname 2>/dev/null || printf 'unknown-host')"
}

fleet_cli() {
  local name=$1
  shift
  if [[ -x $FLEET_ROOT/node_modules/.bin/tsx && -f $FLEET_ROOT/server/src/cli/$name.ts ]]; then
    (cd "$FLEET_ROOT" && exec node_modules/.bin/tsx "server/src/cli/$name.ts" "$@")
  elif [[ -f $FLEET_ROOT/server/src/cli/$name.js ]]; then
    (cd "$FLEET_ROOT" && exec node "server/src/cli/$name.js" "$@")
  elif [[ -f $FLEET_ROOT/dist/server/src/cli/$name.js ]]; then
    (cd "$FLEET_ROOT" && exec node "dist/server/src/cli/$name.js" "$@")
  else
    fleet_die 1 "helper server/src/cli/$name is missing: run npm install (tsx) or npm run build"
  fi
}

fleet_load_db() {
  local out line key val
  fleet_require_cmd node "install Node.js 20 or newer"
  if ! out=$(fleet_cli db-url --format pgenv-b64); then
    fleet_die 2 "no usable database configuration (see the message above)"
  fi
  unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGSSLMODE
  while IFS= read -r line; do
    [[ $line == *=* ]] || continue
    key=${line%%=*}
    val=${line#*=}
    val=$(printf '%s' "$val" | base64 -d) || fleet_die 1 "db-url helper printed an unreadable value"
    case $key in
      PGHOST | PGPORT | PGDATABASE | PGUSER | PGPASSWORD | PGSSLMODE | PGSSLROOTCERT) export "$key=$val" ;;
      FLEET_DB_DESCRIPTION) FLEET_DB_DESCRIPTION=$val ;;
      *) fleet_die 1 "db-url helper printed an unexpected variable" ;;
    esac
  done <<<"$out"
  export PGAPPNAME="fleet-ops/${FLEET_SCRIPT_NAME%.sh}"
  export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
  export PGTZ=UTC PGDATESTYLE=ISO
  # The audit trail's tables force row-level security even for their owner; the owner login
  # reads every tenant only after deliberately setting app.audit_scope = 'all' (migration 022).
  # Operators' tools are such deliberate all-tenant readers (harmless for superusers). Passed
  # to psql/pg_dump only, not exported: npm run audit:verify manages its own sessions.
  FLEET_PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c app.audit_scope=all"
}

# Tables row-level security applies to for this login (none for superusers, BYPASSRLS roles
# and owners of tables that do not force it).
FLEET_RLS_ACTIVE_SQL="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND row_security_active(c.oid);"
# Of those, the tables this login cannot see completely: no permissive SELECT policy for it
# opens the owner read path (app.audit_scope). Reading them would silently miss rows.
FLEET_RLS_BLIND_SQL="SELECT coalesce(string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY n.nspname, c.relname), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND row_security_active(c.oid)
    AND NOT EXISTS (SELECT 1 FROM pg_policies p
                    WHERE p.schemaname = n.nspname AND p.tablename = c.relname AND p.permissive = 'PERMISSIVE'
                      AND p.cmd IN ('SELECT', 'ALL') AND p.roles && ARRAY[current_user::name, 'public'::name]
                      AND p.qual ~ 'app\\.audit_scope');"

# Prints how many tables row-level security applies to for this login; fails (exit 1) naming
# the tables this login could only partly see.
fleet_rls_check() {
  local active blind
  active=$(fleet_psql -At -c "$FLEET_RLS_ACTIVE_SQL") || fleet_die 1 "cannot inspect row-level security in $FLEET_DB_DESCRIPTION"
  if ((active > 0)); then
    blind=$(fleet_psql -At -c "$FLEET_RLS_BLIND_SQL") || fleet_die 1 "cannot inspect row-level security in $FLEET_DB_DESCRIPTION"
    if [[ -n $blind ]]; then
      fleet_die 1 "the login $PGUSER would see only part of $blind (row-level security); use a login with BYPASSRLS (or a superuser) for this operation"
    fi
  fi
  printf '%s' "$active"
}

fleet_psql() {
  PGOPTIONS="$FLEET_PGOPTIONS" psql -X -q -w -v ON_ERROR_STOP=1 "$@"
}

# The same in a session where every transaction is read-only (the server refuses writes).
fleet_psql_readonly() {
  PGOPTIONS="$FLEET_PGOPTIONS -c default_transaction_read_only=on" psql -X -q -w -v ON_ERROR_STOP=1 "$@"
}

# Fails with a clear message when the database does not answer.
fleet_check_connection() {
  fleet_psql -At -c 'SELECT 1' >/dev/null || fleet_die 1 "cannot connect to $FLEET_DB_DESCRIPTION (see the psql message above)"
}

# fleet_audit ACTION SEVERITY TENANT RESOURCE_TYPE RESOURCE_ID RESULT ERROR_MESSAGE AFTER_SQL [psql args…]
# AFTER_SQL is constant SQL text building the `after` jsonb from :'variables' passed as
# extra `-v name=value` arguments. Values are never spliced into the SQL text.
fleet_audit() {
  local action=$1 severity=$2 tenant=$3 rtype=$4 rid=$5 result=$6 err=$7 after_sql=$8
  shift 8
  fleet_psql "$@" \
    -v a_action="$action" -v a_severity="$severity" -v a_tenant="$tenant" -v a_rtype="$rtype" \
    -v a_rid="$rid" -v a_result="$result" -v a_err="$err" -v a_reqid="$(fleet_run_id)" \
    -v a_ua="fleet-ops/$FLEET_SCRIPT_NAME ($(fleet_operator))" <<SQL
INSERT INTO audit_logs (tenant_id, user_id, action, resource_type, resource_id, after, user_agent, result, error_message, severity, request_id)
VALUES (:'a_tenant', NULL, :'a_action', :'a_rtype', NULLIF(:'a_rid', ''), $after_sql, left(:'a_ua', 1024), :'a_result', NULLIF(left(:'a_err', 2000), ''), :'a_severity', :'a_reqid');
SQL
}

# Extracts the major version from `tool --version` output ("pg_dump (PostgreSQL) 15.20 …" -> 15).
fleet_tool_major() {
  local v
  v=$("$1" --version 2>/dev/null | head -n1) || return 1
  [[ $v =~ \(PostgreSQL\)\ ([0-9]+) ]] || return 1
  printf '%s' "${BASH_REMATCH[1]}"
}

fleet_server_major() {
  local num
  num=$(fleet_psql -At -c 'SHOW server_version_num') || return 1
  [[ $num =~ ^[0-9]+$ ]] || return 1
  printf '%s' $((num / 10000))
}

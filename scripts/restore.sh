#!/usr/bin/env bash
# Verified restore of a backup written by scripts/backup.sh. See --help and docs/OPERATIONS.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/restore.sh [--force] FILE

Restores FILE (fleet-backup-….dump.enc written by scripts/backup.sh) into the configured
database. In this order:
  1. verifies FILE against FILE.sha256 and decrypts it completely into a private temporary
     folder (authenticated: a tampered, truncated or wrong-key file is refused here, before
     the database is touched);
  2. refuses a target database that already holds tables, unless --force;
  3. restores with pg_restore in a single transaction (all or nothing; objects owned by the
     login running the restore; the fleet_app role is created when missing);
  4. verifies: every table's row count equals the backup's, and the audit hash chain
     (npm run audit:verify);
  5. writes a system.restore audit row into the restored database.

Options:
  --force     restore into a database that is not empty: objects the backup contains are
              dropped and recreated (pg_restore --clean --if-exists); others are left alone
  -h, --help  this text

Settings (environment):
  BACKUP_ENCRYPTION_KEY_FILE  required: the backup key file (base64 of 32 bytes)
  BACKUP_PREVIOUS_KEY_FILES   optional: comma-separated older key files, for backups made
                              before a key rotation (the right key is picked by its id)
                              Key files must be private to the user running the restore: one
                              that group or others can access (e.g. mode 0644) is refused
                              (exit 2; chmod 600 it).
  DATABASE_URL, or DATABASE_HOST DATABASE_PORT DATABASE_NAME DATABASE_USER DATABASE_PASSWORD,
  DATABASE_SSL                the target database (it must exist: createdb first), as for the
                              server; use the owner (migration) login. npm run audit:verify
                              needs only these database settings.

Each option may be given once (--force twice is refused, exit 2).

Exit status: 0 restored and verified; 1 failure; 2 bad arguments or settings;
3 backup refused (checksum mismatch, wrong key, altered or truncated) - nothing restored;
4 target database not empty (use --force) - nothing restored;
5 restored, but verification failed (row counts or audit hash chain) - investigate.
USAGE
}

force=0
file=""
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --force) fleet_once "$1"; force=1 ;;
    --) shift; break ;;
    -*) fleet_usage_error "unknown option: $1" ;;
    *)
      [[ -z $file ]] || fleet_usage_error "only one backup file can be restored at a time (got $file and $1)"
      file=$1
      ;;
  esac
  shift
done
if (($# > 0)); then
  [[ -z $file && $# -eq 1 ]] || fleet_usage_error "only one backup file can be restored at a time"
  file=$1
fi
[[ -n $file ]] || fleet_usage_error "which backup? usage: restore.sh [--force] FILE"
file=$(fleet_abspath "$file")
[[ -f $file && -r $file ]] || fleet_usage_error "no readable backup file at $file"
[[ -f $file.sha256 && -r $file.sha256 ]] || fleet_die 3 "no checksum file $file.sha256 beside the backup: refusing to restore an unverifiable file"

key_file=${BACKUP_ENCRYPTION_KEY_FILE:-}
[[ -n $key_file ]] || fleet_die 2 "BACKUP_ENCRYPTION_KEY_FILE is not set: point it at the backup key file"
key_args=(--key-file "$(fleet_abspath "$key_file")")
if [[ -n ${BACKUP_PREVIOUS_KEY_FILES:-} ]]; then
  IFS=',' read -r -a previous <<<"$BACKUP_PREVIOUS_KEY_FILES"
  for k in "${previous[@]}"; do
    [[ -n $k ]] && key_args+=(--key-file "$(fleet_abspath "$k")")
  done
fi
fleet_check_key_file BACKUP_ENCRYPTION_KEY_FILE "${key_args[1]}"
for ((i = 3; i < ${#key_args[@]}; i += 2)); do
  fleet_check_key_file BACKUP_PREVIOUS_KEY_FILES "${key_args[i]}"
done

fleet_require_cmd pg_restore "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
fleet_require_cmd psql "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
fleet_require_cmd sha256sum "install coreutils"
fleet_require_cmd npm "install Node.js 20 or newer (npm run audit:verify checks the audit chain)"

umask 077
work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-restore.XXXXXXXX")
trap 'rm -rf -- "$work"' EXIT

# ---- 1. checksum, then authenticated decryption, before anything touches the database
expected=$(head -n1 -- "$file.sha256")
expected=${expected%% *}
[[ $expected =~ ^[0-9a-f]{64}$ ]] || fleet_die 3 "$file.sha256 does not hold a SHA-256 checksum: refusing to restore"
actual=$(sha256sum <"$file")
actual=${actual%% *}
[[ $actual == "$expected" ]] || fleet_die 3 "checksum mismatch: $file does not match $file.sha256 (altered or incomplete); nothing was restored"
fleet_log "checksum ok ($actual)"

dump="$work/backup.dump"
set +e
fleet_cli backup-crypt decrypt "${key_args[@]}" --in "$file" --out "$dump"
rc=$?
set -e
case $rc in
  0) ;;
  2) fleet_die 2 "a backup key file is not usable (see above); nothing was restored" ;;
  3) fleet_die 3 "decryption refused (see above): wrong key, or the backup was altered; nothing was restored" ;;
  *) fleet_die 1 "decryption failed (exit $rc); nothing was restored" ;;
esac
key_id=$(fleet_cli backup-crypt inspect --in "$file" | sed -n 's/^key_id: //p')
pg_restore --list "$dump" >/dev/null 2>"$work/list.err" || fleet_die 3 "the decrypted file is not a pg_dump archive pg_restore can read: $(head -n1 "$work/list.err")"
fleet_log "decrypted and authenticated (key id $key_id)"

# Row counts the backup holds, per table, from its COPY data.
pg_restore --data-only --file=- "$dump" | awk '
  incopy && $0 == "\\." { print name "\t" n; incopy = 0; next }
  incopy { n++; next }
  /^COPY .* FROM stdin;$/ {
    name = $0
    sub(/^COPY /, "", name)
    sub(/ \(.*\) FROM stdin;$/, "", name)
    sub(/ +FROM stdin;$/, "", name)
    n = 0; incopy = 1
  }
' | LC_ALL=C sort >"$work/expected.tsv"

# ---- 2. the target
fleet_load_db
fleet_check_connection
relations=$(fleet_psql -At <<'SQL'
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%';
SQL
)
if ((relations > 0)) && ((force == 0)); then
  fleet_die 4 "the target database $FLEET_DB_DESCRIPTION is not empty ($relations tables, sequences or views); restore into an empty database (createdb) or pass --force to replace the objects the backup contains. Nothing was restored."
fi

# ---- 3. restore (single transaction: all or nothing)
fleet_psql <<'SQL' || fleet_die 1 "the role fleet_app does not exist and could not be created (the restoring login needs CREATEROLE, or create it first: CREATE ROLE fleet_app NOLOGIN)"
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_app') THEN
    CREATE ROLE fleet_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
END
$$;
SQL
restore_args=(--single-transaction --exit-on-error --no-owner --no-password --dbname="$PGDATABASE")
if ((relations > 0)); then
  restore_args+=(--clean --if-exists)
  fleet_log "--force: replacing the objects of the backup in $FLEET_DB_DESCRIPTION"
fi
fleet_log "restoring into $FLEET_DB_DESCRIPTION"
pg_restore "${restore_args[@]}" "$dump" || fleet_die 1 "pg_restore failed (see above); the transaction was rolled back, nothing was restored"

fail_restore() {
  local message=$1
  fleet_audit system.restore high _system backup "${file##*/}" failure "$message" \
    "jsonb_build_object('file', :'a_file', 'sha256', :'a_sha', 'keyId', :'a_key', 'force', (:'a_force')::int = 1)" \
    -v a_file="$file" -v a_sha="$actual" -v a_key="$key_id" -v a_force="$force" >/dev/null 2>&1 || true
  fleet_die 5 "$message"
}

# ---- 4a. row counts
# Counted as this login sees them: fully for superusers, BYPASSRLS and owners (the forced
# audit tables through their owner read path); fleet_rls_check refuses anything less.
(fleet_rls_check >/dev/null) || fail_restore "cannot count every restored row with this login (see above)"
fleet_psql -At -F $'\t' <<'SQL' | LC_ALL=C sort >"$work/actual.tsv" || fail_restore "could not count the restored rows"
SELECT format('%I.%I', n.nspname, c.relname),
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%';
SQL
mismatches=$(awk -F '\t' '
  NR == FNR { want[$1] = $2; next }
  { have[$1] = $2 }
  END { for (t in want) if (!(t in have) || have[t] != want[t]) printf "%s: backup %s, restored %s\n", t, want[t], ((t in have) ? have[t] : "missing") }
' "$work/expected.tsv" "$work/actual.tsv")
[[ -z $mismatches ]] || fail_restore "row counts differ from the backup: ${mismatches//$'\n'/; }"
tables=$(wc -l <"$work/expected.tsv")
rows=$(awk -F '\t' '{ s += $2 } END { print s + 0 }' "$work/expected.tsv")
fleet_log "row counts match the backup: $tables tables, $rows rows"

# ---- 4b. the audit hash chain
if ! (cd "$FLEET_ROOT" && node -e 'process.exit(require("./package.json").scripts?.["audit:verify"] ? 0 : 1)'); then
  fail_restore "cannot verify the audit hash chain: npm run audit:verify is not available in $FLEET_ROOT"
fi
fleet_log "verifying the audit hash chain (npm run audit:verify)"
set +e
(cd "$FLEET_ROOT" && npm run -s audit:verify) >&2
rc=$?
set -e
((rc == 0)) || fail_restore "audit hash chain verification FAILED (npm run audit:verify exited $rc): the restored audit trail is not intact"
fleet_log "audit hash chain verified"

# ---- 5. record it
fleet_audit system.restore high _system backup "${file##*/}" success "" \
  "jsonb_build_object('file', :'a_file', 'sha256', :'a_sha', 'keyId', :'a_key', 'tables', (:'a_tables')::int, 'rows', (:'a_rows')::bigint, 'force', (:'a_force')::int = 1, 'database', :'a_db')" \
  -v a_file="$file" -v a_sha="$actual" -v a_key="$key_id" -v a_tables="$tables" -v a_rows="$rows" -v a_force="$force" -v a_db="$FLEET_DB_DESCRIPTION" ||
  fleet_die 1 "restored and verified, but the system.restore audit row could not be recorded"
printf 'restored %s into %s: %s tables, %s rows, row counts and audit hash chain verified\n' "${file##*/}" "$FLEET_DB_DESCRIPTION" "$tables" "$rows"

#!/usr/bin/env bash
# Encrypted, checksummed database backup with retention. See --help and docs/OPERATIONS.md.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/backup.sh [--help]

Dumps the database with pg_dump -Fc, encrypts it (AES-256-GCM, authenticated, streaming; format
in server/src/ops/backup-crypt.ts) and writes
  $BACKUP_DIR/fleet-backup-YYYYMMDDTHHMMSSZ-<8 hex>.dump.enc          (mode 0600)
  $BACKUP_DIR/fleet-backup-YYYYMMDDTHHMMSSZ-<8 hex>.dump.enc.sha256   (sha256sum format)
then deletes this script's own backups older than BACKUP_RETENTION_DAYS (by the time in
their name; no other file is touched) and writes a system.backup audit row.

Settings (environment):
  BACKUP_ENCRYPTION_KEY_FILE  required: a file holding base64 of 32 random bytes
                              ((umask 077; openssl rand -base64 32 > backup.key)), owned by
                              the user running the backup and private to it: a key file that
                              group or others can access (e.g. mode 0644) is refused (exit 2).
                              The key is read from this file only, never from arguments.
  BACKUP_DIR                  default ./backups (created with mode 0700; must be a folder
                              this user can write to)
  BACKUP_RETENTION_DAYS       default 14; 0 keeps every backup
  DATABASE_URL, or DATABASE_HOST DATABASE_PORT DATABASE_NAME DATABASE_USER DATABASE_PASSWORD,
  DATABASE_SSL                the database, as for the server; outside production with none set,
                              the running embedded development database. Use the owner
                              (migration) login: pg_dump must see every row.

Output: progress on stderr; the last line on stdout is the backup file's path.
Requires pg_dump and psql of at least the server's major version, node, sha256sum.
Exit status: 0 success; 1 failure (including a BACKUP_DIR that cannot be created or written
to); 2 bad arguments or settings. Once the database answers, every failure is also recorded
as a system.backup audit row with result "failure".
USAGE
}

while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    *) fleet_usage_error "unknown argument: $1 (backup.sh takes no arguments; settings come from the environment)" ;;
  esac
done

# ---- settings (checked before anything is dumped)
key_file=${BACKUP_ENCRYPTION_KEY_FILE:-}
[[ -n $key_file ]] || fleet_die 2 "BACKUP_ENCRYPTION_KEY_FILE is not set: point it at a file holding base64 of 32 random bytes ((umask 077; openssl rand -base64 32 > backup.key))"
key_file=$(fleet_abspath "$key_file")
fleet_check_key_file BACKUP_ENCRYPTION_KEY_FILE "$key_file"
retention=${BACKUP_RETENTION_DAYS:-14}
[[ $retention =~ ^[0-9]{1,5}$ ]] || fleet_die 2 "BACKUP_RETENTION_DAYS must be a whole number of days (0 keeps every backup), got: $retention"
retention=$((10#$retention))
backup_dir=$(fleet_abspath "${BACKUP_DIR:-./backups}")

fleet_require_cmd pg_dump "install the PostgreSQL client tools of the server's major version (Debian: apt-get install postgresql-client)"
fleet_require_cmd psql "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
fleet_require_cmd sha256sum "install coreutils"

key_id=$(fleet_cli backup-crypt key-id --key-file "$key_file") || fleet_die 2 "BACKUP_ENCRYPTION_KEY_FILE: $key_file is not a usable key file (see above)"

fleet_load_db
fleet_check_connection

# ---- from here on the database answers: any failure is recorded as a system.backup row
umask 077
name="fleet-backup-$(date -u +%Y%m%dT%H%M%SZ)-$(fleet_rand_hex 4).dump.enc"
final="$backup_dir/$name"
work="$final.incomplete"
work_sha="$final.sha256.incomplete"
stage=preparing
failure=""

on_exit() {
  local rc=$?
  rm -f -- "$work" "$work.partial" "$work_sha" 2>/dev/null || true
  if ((rc != 0)) && [[ $stage != written ]]; then
    rm -f -- "$final" "$final.sha256" 2>/dev/null || true
    fleet_audit system.backup medium _system backup "$name" failure "${failure:-backup failed} (exit $rc)" \
      "jsonb_build_object('database', :'a_db', 'keyId', :'a_key', 'backupDir', :'a_dir')" \
      -v a_db="$FLEET_DB_DESCRIPTION" -v a_key="$key_id" -v a_dir="$backup_dir" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT

# backup_fail CODE MESSAGE: fleet_die, with MESSAGE also in the failure audit row.
backup_fail() {
  failure=$2
  fleet_die "$1" "$2"
}

client_major=$(fleet_tool_major pg_dump) || backup_fail 1 "cannot tell the version of pg_dump ($(command -v pg_dump))"
server_major=$(fleet_server_major) || backup_fail 1 "cannot read the server version of $FLEET_DB_DESCRIPTION"
if ((client_major < server_major)); then
  backup_fail 1 "pg_dump $client_major is older than the database server ($server_major): install postgresql-client-$server_major (pg_dump must be at least the server's major version)"
fi

# Row-level security: a superuser or BYPASSRLS login dumps plainly (pg_dump refuses rather
# than dump a table partly). The owner login of the forced audit tables dumps them through
# their owner read path (app.audit_scope=all, set by fleet_load_db) with row security on;
# fleet_rls_check has made sure every such table is fully visible that way.
dump_args=(--format=custom --no-password)
rls_tables=$(fleet_rls_check)
if ((rls_tables > 0)); then
  dump_args+=(--enable-row-security)
  fleet_log "row-level security applies to $rls_tables table(s) for $PGUSER: dumping them through the owner read path (app.audit_scope=all)"
fi

if ! why=$(fleet_prepare_dir "$backup_dir"); then
  backup_fail 1 "BACKUP_DIR $backup_dir $why: set BACKUP_DIR to a folder this user can write to; nothing was backed up"
fi
stage=dumping

fleet_log "dumping $FLEET_DB_DESCRIPTION (pg_dump $client_major, server $server_major)"
PGOPTIONS="$FLEET_PGOPTIONS" pg_dump "${dump_args[@]}" | fleet_cli backup-crypt encrypt --key-file "$key_file" --out "$work"
sha=$(sha256sum <"$work")
sha=${sha%% *}
bytes=$(stat -c %s -- "$work")
printf '%s  %s\n' "$sha" "$name" >"$work_sha"
chmod 600 -- "$work" "$work_sha"
mv -f -- "$work" "$final"
mv -f -- "$work_sha" "$final.sha256"
stage=written
fleet_log "wrote $final ($bytes bytes, sha256 $sha, key id $key_id)"

# ---- retention: only this script's own files, judged by the time in their name
deleted=0
if ((retention > 0)); then
  cutoff=$(($(date -u +%s) - retention * 86400))
  shopt -s nullglob
  for f in "$backup_dir"/fleet-backup-*; do
    base=${f##*/}
    [[ $base =~ ^fleet-backup-([0-9]{8})T([0-9]{6})Z-[0-9a-f]{8}\.dump\.enc(\.sha256|\.incomplete|\.sha256\.incomplete|\.incomplete\.partial)?$ ]] || continue
    [[ -f $f && ! -L $f ]] || continue
    d=${BASH_REMATCH[1]}
    t=${BASH_REMATCH[2]}
    epoch=$(date -u -d "${d:0:4}-${d:4:2}-${d:6:2} ${t:0:2}:${t:2:2}:${t:4:2}" +%s 2>/dev/null) || continue
    if ((epoch < cutoff)); then
      rm -f -- "$f"
      if [[ -z ${BASH_REMATCH[3]} ]]; then
        deleted=$((deleted + 1))
        fleet_log "retention: deleted $base (older than $retention days)"
      fi
    fi
  done
  shopt -u nullglob
fi

fleet_audit system.backup medium _system backup "$name" success "" \
  "jsonb_build_object('file', :'a_file', 'bytes', (:'a_bytes')::bigint, 'sha256', :'a_sha', 'keyId', :'a_key', 'database', :'a_db', 'retentionDays', (:'a_ret')::int, 'expiredDeleted', (:'a_del')::int)" \
  -v a_file="$final" -v a_bytes="$bytes" -v a_sha="$sha" -v a_key="$key_id" -v a_db="$FLEET_DB_DESCRIPTION" \
  -v a_ret="$retention" -v a_del="$deleted" ||
  fleet_die 1 "the backup was written ($final) but its system.backup audit row could not be recorded"

fleet_log "done: backup $name, $deleted expired backup(s) deleted"
printf '%s\n' "$final"

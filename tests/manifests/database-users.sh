#!/usr/bin/env bash
# manifests/infra/database-users.sql against a throwaway PostgreSQL (run by
# tests/suites/40-manifests.sh): run as a master user that, like RDS's, is no superuser (LOGIN,
# CREATEROLE, CREATEDB, owner of the database), it must leave
#   statuspage      owning the schema: it creates tables and sequences (the migrations);
#   statuspage_app  able to read and write rows and use sequences of tables created later, and
#                   unable to create, alter or drop anything;
# with the passwords it read from OWNER_PASSWORD/APP_PASSWORD; a second run changes nothing.
# The server listens on a Unix socket in a temporary folder only (not the stack's PostgreSQL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PG_BIN=${STATUSPAGE_PG_BIN:-/usr/lib/postgresql/15/bin}
step() { printf '[database-users] %s\n' "$*" >&2; }
fail() { printf '[database-users] FAILED: %s\n' "$*" >&2; exit 1; }
[[ -x $PG_BIN/initdb ]] || fail "no PostgreSQL server binaries in $PG_BIN (Debian's postgresql-15, which tests/stack installs)"
id postgres >/dev/null 2>&1 || fail "no postgres user (Debian's postgresql-15 creates it)"

work=$(mktemp -d)
chown postgres "$work"
as_pg() { runuser -u postgres -- "$@"; }
stop() {
  as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT
(umask 077 && echo bootstrap-test-superuser >"$work/pwfile") && chown postgres "$work/pwfile"
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -E UTF8 --auth-local=scram-sha-256 --auth-host=reject \
  --pwfile="$work/pwfile" >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; fail initdb; }
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-c listen_addresses='' -k $work -c fsync=off" start >/dev/null || { cat "$work/server.log" >&2; fail "server start"; }

# psql_as USER PASSWORD [ARGS...]: a session over the socket, stopping at the first error.
psql_as() {
  local user=$1 password=$2
  shift 2
  as_pg env PGPASSWORD="$password" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -U "$user" "$@"
}
psql_as postgres bootstrap-test-superuser -d postgres <<'SQL'
CREATE ROLE statuspage_admin LOGIN CREATEROLE CREATEDB PASSWORD 'master-test';
CREATE DATABASE statuspage OWNER statuspage_admin;
SQL
for run in 1 2; do
  as_pg env PGPASSWORD=master-test OWNER_PASSWORD=owner-test \
    APP_PASSWORD=app-test "$PG_BIN/psql" -X -q -h "$work" -U statuspage_admin -d statuspage \
    -f manifests/infra/database-users.sql >"$work/run$run.log" 2>&1 ||
    { cat "$work/run$run.log" >&2; fail "database-users.sql (run $run) as the non-superuser master"; }
done
step "database-users.sql ran twice as a non-superuser master"

# The migrations, as the owner (with its password from OWNER_PASSWORD).
psql_as statuspage owner-test -d statuspage -c 'CREATE TABLE incident (id serial PRIMARY KEY, name text)' ||
  fail "the schema owner cannot create a table"
# The app user (password from APP_PASSWORD): rows yes, schema no.
psql_as statuspage_app app-test -d statuspage <<'SQL' || fail "the app user cannot read and write rows of a table created after the grants"
INSERT INTO incident (name) VALUES ('database down');
UPDATE incident SET name = 'database slow';
SELECT count(*) FROM incident \g /dev/null
DELETE FROM incident;
SQL
denied=0
for statement in 'CREATE TABLE app_made (id int)' 'DROP TABLE incident' 'ALTER TABLE incident ADD COLUMN x int' \
  'TRUNCATE incident' 'CREATE SCHEMA app_schema' 'CREATE ROLE intruder'; do
  if psql_as statuspage_app app-test -d statuspage -c "$statement" >/dev/null 2>&1; then
    fail "the app user may run: $statement"
  fi
  denied=$((denied + 1))
done
psql_as statuspage_app wrong-password -d statuspage -c 'SELECT 1' >/dev/null 2>&1 && fail "the app user's password is not APP_PASSWORD"
step "owner creates tables; statuspage_app reads/writes rows, $denied DDL statements denied, password from APP_PASSWORD"

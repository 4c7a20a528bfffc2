#!/usr/bin/env bash
# The stack's data services, shaped like RDS and ElastiCache: Debian's PostgreSQL 15 and Redis 7,
# outside the cluster, listening on the node address (10.87.0.1, where the local overlay points),
# with a password and TLS only (a certificate from the stack CA, as RDS's and ElastiCache's
# in-transit encryption), so the images' TLS settings are exercised for real. Started and stopped
# by PID; data in $STACK_DIR/data. The passwords are random per data folder and live only in
# $STACK_DIR/data/secrets/ (0600), named like the app's secret files (DATABASE_PASSWORD, REDIS_PASSWORD).
#   data.sh up | down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADDRESS=${STATUSPAGE_DATA_ADDRESS:-10.87.0.1}
PG_BIN=/usr/lib/postgresql/15/bin
DATA=$STACK_DIR/data
SECRETS=$DATA/secrets
TLS=$DATA/tls
DB_NAME=statuspage DB_USER=statuspage

pg_ready() { "$PG_BIN/pg_isready" -q -h "$ADDRESS" -p 5432; }
redis_ready() {
  REDISCLI_AUTH=$(cat "$SECRETS/REDIS_PASSWORD") redis-cli --tls --cacert "$STACK_PKI/ca.crt" \
    -h "$ADDRESS" -p 6379 ping 2>/dev/null | grep -q PONG
}

prepare() {
  [[ $(ip -4 -o addr show) == *" $ADDRESS/"* ]] || stack_die "no interface has $ADDRESS: bring the cluster up first (cluster.sh up)"
  mkdir -p "$SECRETS" "$TLS"
  chmod 0700 "$SECRETS"
  for key in DATABASE_PASSWORD REDIS_PASSWORD; do
    [[ -s $SECRETS/$key ]] || (umask 077 && head -c 24 /dev/urandom | base64 -w0 | tr '/+' '_-' >"$SECRETS/$key")
  done
  stack_cert data "$ADDRESS" "IP:$ADDRESS" "DNS:data.statuspage.local"
  install -m 0644 -o postgres -g postgres "$STACK_PKI/data.crt" "$TLS/postgres.crt"
  install -m 0600 -o postgres -g postgres "$STACK_PKI/data.key" "$TLS/postgres.key"
  install -m 0644 -o redis -g redis "$STACK_PKI/data.crt" "$TLS/redis.crt"
  install -m 0600 -o redis -g redis "$STACK_PKI/data.key" "$TLS/redis.key"
}

postgres_up() {
  if stack_running data-postgres && pg_ready; then
    stack_log "PostgreSQL already running ($ADDRESS:5432)"
    return
  fi
  stack_stop data-postgres
  local pgdata=$DATA/postgres first=false
  if [[ ! -s $pgdata/PG_VERSION ]]; then
    first=true
    install -d -o postgres -g postgres -m 0700 "$pgdata"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$pgdata" -U postgres -E UTF8 \
      --auth-local=trust --auth-host=reject >/dev/null
    # Like RDS with rds.force_ssl=1: TCP only over TLS, with a password.
    printf 'local all all trust\nhostssl all all 0.0.0.0/0 scram-sha-256\n' >"$pgdata/pg_hba.conf"
  fi
  install -d -o postgres -g postgres "$DATA/postgres-run"
  stack_start data-postgres runuser -u postgres -- "$PG_BIN/postgres" -D "$pgdata" \
    -c listen_addresses="$ADDRESS" -c port=5432 -c unix_socket_directories="$DATA/postgres-run" \
    -c ssl=on -c ssl_cert_file="$TLS/postgres.crt" -c ssl_key_file="$TLS/postgres.key" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB -c max_connections=200
  stack_wait_for "PostgreSQL" 60 pg_ready
  if $first; then
    local password
    password=$(cat "$SECRETS/DATABASE_PASSWORD")
    runuser -u postgres -- "$PG_BIN/psql" -q -h "$DATA/postgres-run" -U postgres -d postgres -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$password'" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
  fi
  stack_log "PostgreSQL up ($ADDRESS:5432, TLS only, database $DB_NAME, user $DB_USER)"
}

redis_up() {
  if stack_running data-redis && redis_ready; then
    stack_log "Redis already running ($ADDRESS:6379)"
    return
  fi
  stack_stop data-redis
  install -d -o redis -g redis "$DATA/redis"
  # The password goes in through a config file (0600), never on a command line that ps shows.
  (umask 077 && printf 'requirepass %s\n' "$(cat "$SECRETS/REDIS_PASSWORD")" >"$DATA/redis/auth.conf")
  chown redis:redis "$DATA/redis/auth.conf"
  stack_start data-redis runuser -u redis -- redis-server "$DATA/redis/auth.conf" \
    --bind "$ADDRESS" --port 0 --tls-port 6379 \
    --tls-cert-file "$TLS/redis.crt" --tls-key-file "$TLS/redis.key" --tls-ca-cert-file "$STACK_PKI/ca.crt" \
    --tls-auth-clients no --dir "$DATA/redis" --save "" --appendonly no --protected-mode no
  stack_wait_for "Redis" 30 redis_ready
  stack_log "Redis up ($ADDRESS:6379, TLS only)"
}

up() {
  prepare
  postgres_up
  redis_up
  stack_env STACK_DATA_ADDRESS "$ADDRESS"
  stack_env STACK_DATA_SECRETS "$SECRETS"
}

down() {
  stack_stop data-redis
  stack_stop data-postgres
}

"${1:?usage: data.sh up|down}"

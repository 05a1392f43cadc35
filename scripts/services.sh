#!/usr/bin/env bash
# Local PostgreSQL and Redis servers on loopback only, for the tests and the benchmarks.
#
#   scripts/services.sh start  [SERVICE...]   install what is missing, start, check (idempotent)
#   scripts/services.sh stop   [SERVICE...]   stop the servers this script started (by pid file)
#   scripts/services.sh status [SERVICE...]   exit 0 if all answer, 3 otherwise
#
# SERVICE: pg, redis, cluster (a 3-node Redis Cluster) (default: all of them). Ports and credentials come from services.env
# (beside this script; override them through the environment). All state lives under
# $BANQUET_SERVICES_DIR (default: $HOME/.cache/banquet/services), whatever the clone's location:
#   pg/data         Postgres data dir (initdb, owned by the `postgres` OS user when run as root)
#   pg/postgres.log server log          pg/run   unix socket dir
#   redis/          redis-PORT.pid, redis-PORT.log, working dir (no persistence)
#   redis-cluster/  the same per cluster node, plus nodes-PORT.conf
# These are disposable test servers: trust auth, fsync off, no Redis persistence.
#
# Adding a service (e.g. a Redis Cluster): define NAME_packages (Debian packages it needs that
# are missing, one a line), NAME_start, NAME_stop and NAME_status, then append NAME to SERVICES.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=services.env
. "$here/services.env"

SERVICES=(pg redis cluster)
LOOPBACK=127.0.0.1
SERVICES_DIR="$(realpath -m "${BANQUET_SERVICES_DIR:-$HOME/.cache/banquet/services}")"

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

# Create (or fix) the role and the database, as the superuser over our unix socket.
pg_provision() {
  local out
  if ! out=$(PGCONNECT_TIMEOUT=5 "$(pg_tool psql)" -X -q -v ON_ERROR_STOP=1 \
    -h "$PG_SOCK_DIR" -p "$PG_PORT" -U postgres -d postgres \
    -v user="$BANQUET_PG_USER" -v pass="$BANQUET_PG_PASSWORD" -v db="$BANQUET_PG_DB" 2>&1 <<'SQL'
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
\gexec
ALTER ROLE :"user" WITH LOGIN SUPERUSER PASSWORD :'pass';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
  ); then
    printf '%s\n' "$out" >&2
    die "could not create the role/database $BANQUET_PG_USER/$BANQUET_PG_DB"
  fi
}

# When root, the postgres user must be able to reach its data dir: $HOME is often 0700.
pg_make_reachable() {
  ((EUID == 0)) || return 0
  as_pg test -x "$PG_DIR" && return 0
  local d="" part
  local IFS=/
  for part in ${PG_DIR#/}; do
    d="$d/$part"
    if ! as_pg test -x "$d"; then
      log "granting search permission (o+x) on $d so the postgres user can reach $PG_DIR"
      chmod o+x "$d"
    fi
  done
}

pg_initdb() {
  local tmp="$PG_DIR/data.init" initdb_log="$PG_DIR/initdb.log"
  log "pg: initdb $PG_DATA (PostgreSQL $("$PG_BIN/postgres" --version | grep -oE '[0-9]+(\.[0-9]+)+' | head -n1))"
  rm -rf "$tmp"
  if ! as_pg "$PG_BIN/initdb" -D "$tmp" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
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
EOF
  chown "$(pg_os_user):" "$PG_DATA/banquet.conf"
}

pg_start() {
  pg_resolve
  if pg_ready; then
    if pg_ours; then
      pg_login_ok || pg_provision
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
  pg_make_reachable
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
      pg_login_ok || pg_provision
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

redis_ping() { [[ $(timeout 2 redis-cli -h "$LOOPBACK" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
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
  mkdir -p "$REDIS_DIR"
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
  if ! redis-server --bind "$LOOPBACK" --port "$REDIS_PORT" --protected-mode yes \
    --save '' --appendonly no --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" >/dev/null 2>&1 9>&- ||
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
cluster_cli() { timeout 5 redis-cli -h "$LOOPBACK" -p "$1" "${@:2}" 2>/dev/null; }
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
  if ! redis-server --bind "$LOOPBACK" --port "$port" --protected-mode yes \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
    --save '' --appendonly no --dir "$CLUSTER_DIR" \
    --daemonize yes --pidfile "$(cluster_pidfile "$port")" --logfile "$(cluster_log "$port")" \
    >/dev/null 2>&1 9>&- || ! wait_until 10 cluster_node_ping "$port"; then
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
  mkdir -p "$CLUSTER_DIR"
  log "redis cluster: starting ${#CLUSTER_PORTS[@]} nodes on $LOOPBACK:${CLUSTER_PORTS[*]}"
  for port in "${CLUSTER_PORTS[@]}"; do
    cluster_start_node "$port"
    nodes+=("$LOOPBACK:$port")
  done
  local out
  if ! out=$(timeout 60 redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes 2>&1); then
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
    mkdir -p "$SERVICES_DIR"
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
    ensure_packages "${svcs[@]}"
    for svc in "${svcs[@]}"; do "${svc}_start"; done
    log "up on $LOOPBACK: ${svcs[*]} ($(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.1f", b - a }')s; settings: scripts/services.env)"
    ;;
  stop)
    for ((i = ${#svcs[@]} - 1; i >= 0; i--)); do "${svcs[i]}_stop"; done
    ;;
  status)
    for svc in "${svcs[@]}"; do "${svc}_status" || rc=3; done
    return "$rc"
    ;;
  esac
}

main "$@"

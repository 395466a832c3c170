#!/usr/bin/env bash
# Real services for wabaflow's tests, on loopback, without Docker (docs/operations.md):
#   Kafka = tansu 0.6.0 :9092 · Redis :6379 · S3 = s3s-fs :8014 · ClickHouse :8123 (HTTP) / :9000
#
#   scripts/services.sh up       install what is missing, start what is not running, wait until ready
#   scripts/services.sh down     stop exactly what `up` started
#   scripts/services.sh status   show what runs
#
# State (PIDs, logs, data) lives in $WABAFLOW_SERVICES_DIR (default /tmp/wabaflow-services).
set -euo pipefail

DIR=${WABAFLOW_SERVICES_DIR:-/tmp/wabaflow-services}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$CARGO_BIN:$PATH"
TANSU_VERSION=0.6.0
S3S_VERSION=0.14.1

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local deadline=$((SECONDS + $3))
  until port_open "$2"; do
    if ((SECONDS > deadline)); then
      log "$1 did not open port $2 within $3 s; last log lines:"
      tail -n 20 "$DIR/$1.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

apt_install() { # packages...
  log "installing $* (apt)"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [[ -x /usr/bin/clickhouse-server || -x /usr/sbin/clickhouse-server ]] || missing+=(clickhouse-server clickhouse-client)
  # promtool checks the dashboards' Prometheus expressions.
  command -v promtool >/dev/null || missing+=(prometheus)
  # node checks that the k6 scripts parse (k6 itself is not packaged for Debian).
  command -v node >/dev/null || missing+=(nodejs)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    # The default features build a broker that discards records: dynostore is required (INFRA.md).
    log "building tansu $TANSU_VERSION (about 25 minutes on 2 cores, once per machine)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore
  fi
  if ! command -v s3s-fs >/dev/null; then
    log "building s3s-fs $S3S_VERSION"
    cargo install s3s-fs --version "$S3S_VERSION" --locked --features binary
  fi
}

start() { # name port command...
  local name=$1 port=$2
  shift 2
  if running "$name"; then return 0; fi
  if port_open "$port"; then
    log "$name: port $port is already served by another process; using it"
    return 0
  fi
  nohup "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

clickhouse_config() {
  local conf="$DIR/clickhouse"
  mkdir -p "$conf/data" "$conf/log"
  cp /etc/clickhouse-server/users.xml "$conf/users.xml"
  # The packaged config, pointed at our data dir, on IPv4 loopback only, without interserver port.
  sed -e "s#/var/lib/clickhouse/#$conf/data/#g" \
      -e "s#/var/log/clickhouse-server/#$conf/log/#g" \
      -e '/<interserver_http_port>/d' \
      -e '/<listen_host>::1<\/listen_host>/d' \
      /etc/clickhouse-server/config.xml >"$conf/config.xml"
  echo "$conf/config.xml"
}

up() {
  mkdir -p "$DIR"
  install
  start tansu 9092 tansu broker \
    --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/
  start redis 6379 redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize no
  mkdir -p "$DIR/s3"
  start s3 8014 s3s-fs --host 127.0.0.1 --port 8014 --access-key minioadmin --secret-key minioadmin "$DIR/s3"
  local ch
  ch=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
  start clickhouse 8123 "$ch" --config-file="$(clickhouse_config)"
  wait_port tansu 9092 30
  wait_port redis 6379 30
  wait_port s3 8014 30
  wait_port clickhouse 8123 60
  log "up: kafka 127.0.0.1:9092, redis 127.0.0.1:6379, s3 127.0.0.1:8014, clickhouse 127.0.0.1:8123"
}

down() {
  local pair name port pid
  for pair in clickhouse:8123 s3:8014 redis:6379 tansu:9092; do
    name=${pair%%:*} port=${pair##*:}
    [[ -f "$DIR/$name.pid" ]] || continue
    pid=$(cat "$DIR/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # A service started right after must not find the old one still on its port (an `up` once
    # saw tansu log "listening" and the port never answer).
    for _ in $(seq 50); do port_open "$port" || break; sleep 0.1; done
    rm -f "$DIR/$name.pid"
  done
  log "down"
}

status() {
  local name port
  for pair in tansu:9092 redis:6379 s3:8014 clickhouse:8123; do
    name=${pair%%:*} port=${pair##*:}
    if running "$name"; then state="running (pid $(cat "$DIR/$name.pid"))"
    elif port_open "$port"; then state="port $port served by another process"
    else state="stopped"; fi
    printf '%-11s %s\n' "$name" "$state"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

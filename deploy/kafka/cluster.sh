#!/usr/bin/env bash
# Runs a three-node Apache Kafka cluster (KRaft, every node a combined broker+controller, static
# quorum) on localhost, from the same jars as kafka.sh.
#   cluster.sh start          format storage if needed (one shared cluster id), start the three
#                             nodes together, wait until every node answers and the quorum has a leader
#   cluster.sh stop           stop every node (SIGTERM, then wait)
#   cluster.sh status         exit 0 if every node answers
#   cluster.sh bootstrap      print the bootstrap servers (for HERALD_KAFKA_BOOTSTRAP)
#   cluster.sh kill N         SIGKILL node N (fault tests)
#   cluster.sh start-node N   (re)start node N alone, wait until it answers
#   cluster.sh stop-node N    stop node N cleanly
#   cluster.sh wipe           stop, and remove every node's storage
# Settings (environment): CLUSTER_BASE_PORT (19300): node N listens on BASE+N, its controller on
# BASE+10+N; CLUSTER_DATA_DIR (.run/cluster-<base>); KAFKA_HEAP (256m per node).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIBS="$HERE/.libs"
BASE="${CLUSTER_BASE_PORT:-19300}"
DATA="${CLUSTER_DATA_DIR:-$ROOT/.run/cluster-$BASE}"
HEAP="${KAFKA_HEAP:-256m}"
NODES=(1 2 3)

port() { echo $((BASE + $1)); }
cport() { echo $((BASE + 10 + $1)); }
dir() { echo "$DATA/node$1"; }
voters() {
  local v=() n
  for n in "${NODES[@]}"; do v+=("$n@127.0.0.1:$(cport "$n")"); done
  (IFS=,; echo "${v[*]}")
}
bootstrap() {
  local b=() n
  for n in "${NODES[@]}"; do b+=("127.0.0.1:$(port "$n")"); done
  (IFS=,; echo "${b[*]}")
}

running() {
  # A SIGKILLed node can linger as a zombie until its parent reaps it: that is not running.
  [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]
}
alive() { [ -f "$(dir "$1")/broker.pid" ] && running "$(cat "$(dir "$1")/broker.pid")"; }
answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$(port "$1")") 2>/dev/null \
    && grep -q "Kafka Server started" "$(dir "$1")/broker.log" 2>/dev/null
}

prepare() {
  "$HERE/kafka.sh" fetch
  local id="" n d
  [ -f "$DATA/cluster.id" ] && id="$(cat "$DATA/cluster.id")"
  if [ -z "$id" ]; then
    mkdir -p "$DATA"
    id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
    echo "$id" > "$DATA/cluster.id"
  fi
  for n in "${NODES[@]}"; do
    d="$(dir "$n")"; mkdir -p "$d/logs"
    sed -e "s|@NODE_ID@|$n|g" -e "s|@PORT@|$(port "$n")|g" -e "s|@CONTROLLER_PORT@|$(cport "$n")|g" \
      -e "s|@VOTERS@|$(voters)|g" -e "s|@DATA_DIR@|$d/logs|g" \
      "$HERE/cluster.properties.template" > "$d/server.properties"
    if [ ! -f "$d/logs/meta.properties" ]; then
      # Static quorum: the same cluster id on every node, no --standalone (each would form its own).
      java -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.yaml" kafka.tools.StorageTool \
        format -t "$id" -c "$d/server.properties" >/dev/null
    fi
  done
}

launch() {
  local n="$1" d; d="$(dir "$n")"
  : > "$d/broker.log"
  nohup java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC -XX:CICompilerCount=2 -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -cp "$LIBS/*" kafka.Kafka "$d/server.properties" \
    >>"$d/broker.log" 2>&1 &
  echo $! > "$d/broker.pid"
}

wait_nodes() {
  local t0=$SECONDS n pending
  for _ in $(seq 1 900); do
    pending=()
    for n in "$@"; do
      if ! alive "$n"; then echo "cluster: node $n exited, see $(dir "$n")/broker.log" >&2
        tail -30 "$(dir "$n")/broker.log" >&2; return 1; fi
      answers "$n" || pending+=("$n")
    done
    if [ ${#pending[@]} -eq 0 ]; then
      echo "cluster: node(s) $* up in $((SECONDS - t0))s; bootstrap $(bootstrap)"; return 0
    fi
    sleep 0.2
  done
  echo "cluster: node(s) ${pending[*]} did not answer within 180s, see $DATA/node*/broker.log" >&2
  return 1
}

start() {
  prepare
  local n todo=()
  for n in "${NODES[@]}"; do
    if alive "$n"; then continue; fi
    todo+=("$n")
  done
  # All together: no node is ready until two controllers are up.
  for n in "${todo[@]}"; do launch "$n"; done
  wait_nodes "${NODES[@]}"
}

stop_node() {
  local n="$1" d pid; d="$(dir "$n")"
  [ -f "$d/broker.pid" ] || return 0
  pid="$(cat "$d/broker.pid")"
  if running "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then echo "cluster: forcing node $n to stop" >&2; kill -KILL "$pid"; fi
  fi
  rm -f "$d/broker.pid"
}

stop() {
  local n
  # Signal every node first: a node shutting down alone waits for a controller quorum.
  for n in "${NODES[@]}"; do alive "$n" && kill -TERM "$(cat "$(dir "$n")/broker.pid")"; done
  for n in "${NODES[@]}"; do stop_node "$n"; done
  echo "cluster: stopped ($BASE)"
}

node_arg() {
  case "${1:-}" in 1|2|3) ;; *) echo "cluster: node must be 1, 2 or 3" >&2; exit 2 ;; esac
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) for n in "${NODES[@]}"; do answers "$n" && alive "$n" || exit 1; done ;;
  bootstrap) bootstrap ;;
  kill)
    node_arg "${2:-}"
    if alive "$2"; then
      pid="$(cat "$(dir "$2")/broker.pid")"; kill -KILL "$pid"
      for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
    fi
    echo "cluster: node $2 killed" ;;
  start-node) node_arg "${2:-}"; prepare; alive "$2" || launch "$2"; wait_nodes "$2" ;;
  stop-node) node_arg "${2:-}"; stop_node "$2"; echo "cluster: node $2 stopped" ;;
  wipe) stop; rm -rf "$DATA" ;;
  *) echo "usage: $0 start|stop|status|bootstrap|kill N|start-node N|stop-node N|wipe" >&2; exit 2 ;;
esac

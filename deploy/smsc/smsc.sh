#!/usr/bin/env bash
# jSMPP's SMSC simulator (a third-party SMPP 3.4 server) on localhost, for tests and `make run`.
#   smsc.sh fetch   resolve the jars from Maven Central into deploy/smsc/.libs (cached)
#   smsc.sh start   start in the background on SMSC_PORT, wait until it takes connections
#   smsc.sh stop    stop it
#   smsc.sh run     in the foreground (for process supervisors)
# Settings (environment): SMSC_PORT (8056), SMSC_DATA_DIR (.run/smsc-<port>), SMSC_SYSTEM_ID
# (herald) and SMSC_PASSWORD (herald): the one ESME account it binds; others are refused.
# It answers submit_sm with hex ids and sends receipts with
# decimal ids about a second later (out of order), and an MO right after a bind.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIBS="$HERE/.libs"
PORT="${SMSC_PORT:-8056}"
DATA="${SMSC_DATA_DIR:-$ROOT/.run/smsc-$PORT}"
PIDFILE="$DATA/smsc.pid"
LOG="$DATA/smsc.log"

fetch() {
  if [ -f "$LIBS/.complete" ] && [ "$LIBS/.complete" -nt "$HERE/pom.xml" ]; then return 0; fi
  echo "smsc: resolving jSMPP simulator jars from Maven Central..." >&2
  rm -rf "$LIBS"
  (cd "$HERE" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime)
  touch "$LIBS/.complete"
}

# Not a probe connection: the simulator takes connections one at a time and waits up to 30s
# for a probe's bind before it accepts the next one.
answers() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
    && grep -q "Listening on port $PORT" "$LOG" 2>/dev/null
}

java_cmd() {
  JAVA_CMD=(java -Xms64m -Xmx256m "-Djsmpp.simulator.port=$PORT"
    "-Djsmpp.client.systemId=${SMSC_SYSTEM_ID:-herald}" "-Djsmpp.client.password=${SMSC_PASSWORD:-herald}"
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info -cp "$LIBS/*"
    org.jsmpp.examples.SMPPServerSimulator)
}

start() {
  if answers; then
    echo "smsc: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0
  fi
  fetch
  mkdir -p "$DATA"
  java_cmd
  nohup "${JAVA_CMD[@]}" >"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 300); do
    if answers; then echo "smsc: up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "smsc: exited, see $LOG" >&2; tail -20 "$LOG" >&2; return 1; fi
    sleep 0.1
  done
  echo "smsc: did not answer within 30s, see $LOG" >&2; return 1
}

stop() {
  [ -f "$PIDFILE" ] || { echo "smsc: not running on $PORT"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"; echo "smsc: stopped ($PORT)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  run) fetch; java_cmd; exec "${JAVA_CMD[@]}" ;;
  status) answers ;;
  *) echo "usage: $0 fetch|start|stop|run|status" >&2; exit 2 ;;
esac

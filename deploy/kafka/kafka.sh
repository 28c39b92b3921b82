#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft, one combined broker+controller node) on localhost.
#   kafka.sh fetch   resolve the broker jars from Maven Central into deploy/kafka/.libs (cached)
#   kafka.sh start   format storage if needed, start in the background, wait until it answers
#   kafka.sh stop    stop it cleanly (SIGTERM, then wait)
#   kafka.sh run     start in the foreground (for process supervisors)
#   kafka.sh status  exit 0 if the broker answers
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (port+1), KAFKA_DATA_DIR
# (.run/kafka-<port>), KAFKA_HEAP (512m), KAFKA_JVM_OPTS (more JVM flags, e.g. GC logging),
# KAFKA_TEMPLATE (server.properties.template here; see deploy/kafka/acl/ for the one with
# SASL/SCRAM and ACLs on).
# A TLS listener besides (optional): KAFKA_TLS_PORT, KAFKA_TLS_KEYSTORE (one PEM file: the private
# key, unencrypted PKCS#8, then the certificate chain), KAFKA_TLS_PROTOCOL (SSL, or SASL_SSL on the
# SASL template), KAFKA_TLS_TRUSTSTORE (CA PEM of client certificates) with KAFKA_TLS_CLIENT_AUTH
# (requested: checked when presented, the default; required: mutual TLS).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIBS="$HERE/.libs"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
DATA="${KAFKA_DATA_DIR:-$ROOT/.run/kafka-$PORT}"
HEAP="${KAFKA_HEAP:-512m}"
TEMPLATE="${KAFKA_TEMPLATE:-$HERE/server.properties.template}"
PIDFILE="$DATA/broker.pid"
LOG="$DATA/broker.log"

fetch() {
  if [ -f "$LIBS/.complete" ] && [ "$LIBS/.complete" -nt "$HERE/pom.xml" ]; then return 0; fi
  echo "kafka: resolving broker jars from Maven Central..." >&2
  rm -rf "$LIBS"
  (cd "$HERE" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime)
  touch "$LIBS/.complete"
}

answers() {
  # The broker answers when a TCP connection to its listener succeeds and it reports as started.
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && grep -q "Kafka Server started" "$LOG" 2>/dev/null
}

add_tls_listener() {
  # Kafka 3.x+ reads PEM keystores itself (ssl.keystore.type=PEM): no JKS, no keytool.
  local props="$1" proto="${KAFKA_TLS_PROTOCOL:-SSL}"
  : "${KAFKA_TLS_KEYSTORE:?set KAFKA_TLS_KEYSTORE (PEM: private key and certificate chain)}"
  case "$proto" in SSL|SASL_SSL) ;; *) echo "KAFKA_TLS_PROTOCOL: SSL or SASL_SSL" >&2; exit 2 ;; esac
  sed -i -e "s|^listeners=.*|&,$proto://127.0.0.1:$KAFKA_TLS_PORT|" \
    -e "s|^advertised.listeners=.*|&,$proto://127.0.0.1:$KAFKA_TLS_PORT|" \
    -e "s|^listener.security.protocol.map=.*|&,$proto:$proto|" "$props"
  {
    echo "ssl.keystore.type=PEM"
    echo "ssl.keystore.location=$KAFKA_TLS_KEYSTORE"
    echo "ssl.enabled.protocols=TLSv1.3,TLSv1.2"
    if [ -n "${KAFKA_TLS_TRUSTSTORE:-}" ]; then
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$KAFKA_TLS_TRUSTSTORE"
      echo "ssl.client.auth=${KAFKA_TLS_CLIENT_AUTH:-requested}"
    fi
    if [ "$proto" = SASL_SSL ]; then  # the server side of SCRAM on this listener: no credentials
      echo "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    fi
  } >> "$props"
}

prepare() {
  fetch
  mkdir -p "$DATA/logs"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@DATA_DIR@|$DATA/logs|g" \
    "$TEMPLATE" > "$DATA/server.properties"
  if [ -n "${KAFKA_TLS_PORT:-}" ]; then add_tls_listener "$DATA/server.properties"; fi
  if [ ! -f "$DATA/logs/meta.properties" ]; then
    local uuid
    uuid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.yaml" kafka.tools.StorageTool \
      format --standalone -t "$uuid" -c "$DATA/server.properties" >/dev/null
  fi
}

java_cmd() {
  # shellcheck disable=SC2206 # KAFKA_JVM_OPTS: extra JVM flags, split on spaces
  JAVA_CMD=(java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC ${KAFKA_JVM_OPTS:-}
    -Dlog4j2.configurationFile="$HERE/log4j2.yaml" -cp "$LIBS/*" kafka.Kafka "$DATA/server.properties")
}

start() {
  if answers && [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "kafka: already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; return 0
  fi
  prepare
  : > "$LOG"
  local t0=$SECONDS
  java_cmd
  nohup "${JAVA_CMD[@]}" >>"$LOG" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 600); do
    if answers; then echo "kafka: up on 127.0.0.1:$PORT in $((SECONDS - t0))s (pid $(cat "$PIDFILE"))"; return 0; fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "kafka: broker exited, see $LOG" >&2; tail -30 "$LOG" >&2; return 1; fi
    sleep 0.2
  done
  echo "kafka: did not answer within 120s, see $LOG" >&2; return 1
}

stop() {
  [ -f "$PIDFILE" ] || { echo "kafka: not running on $PORT"; return 0; }
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "kafka: forcing stop" >&2; kill -KILL "$pid"; fi
  fi
  rm -f "$PIDFILE"; echo "kafka: stopped ($PORT)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  run) prepare; java_cmd; exec "${JAVA_CMD[@]}" ;;
  status) answers ;;
  wipe) stop; rm -rf "$DATA" ;;
  *) echo "usage: $0 fetch|start|stop|run|status|wipe" >&2; exit 2 ;;
esac

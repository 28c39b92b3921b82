#!/usr/bin/env bash
# A Kafka broker with SASL/SCRAM and ACLs on, through deploy/kafka/kafka.sh.
#   secure-broker.sh start|stop|status|wipe
# Environment: KAFKA_PORT (9192), KAFKA_CONTROLLER_PORT (port+1), KAFKA_DATA_DIR
# (.run/kafka-secure-<port>), KAFKA_ADMIN_PASSWORD (required for start: the super user 'admin').
# Then: deploy/kafka/acl/herald_acl.py to add the platform's and each tenant's users and ACLs.
# With KAFKA_TLS_PORT and KAFKA_TLS_KEYSTORE set (see kafka.sh), a SASL_SSL listener besides.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$KAFKA/../.." && pwd)"
export KAFKA_PORT="${KAFKA_PORT:-9192}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
export KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.run/kafka-secure-$KAFKA_PORT}"
export KAFKA_TEMPLATE="$KAFKA_DATA_DIR/server-sasl.properties.template"
export KAFKA_TLS_PROTOCOL="${KAFKA_TLS_PROTOCOL:-SASL_SSL}"
LIBS="$KAFKA/.libs"

render() {
  : "${KAFKA_ADMIN_PASSWORD:?set KAFKA_ADMIN_PASSWORD (password of the super user admin)}"
  # It goes into sed and a JAAS string: keep it to characters that are safe in both.
  if [[ ! "$KAFKA_ADMIN_PASSWORD" =~ ^[A-Za-z0-9._~+=-]{8,}$ ]]; then
    echo "KAFKA_ADMIN_PASSWORD: at least 8 of A-Z a-z 0-9 . _ ~ + = -" >&2; exit 2
  fi
  mkdir -p "$KAFKA_DATA_DIR/logs"
  # The rendered template holds the admin password: readable by its owner only.
  (umask 077; sed -e "s|@ADMIN_PASSWORD@|$KAFKA_ADMIN_PASSWORD|g" "$HERE/server-sasl.properties.template" \
    > "$KAFKA_TEMPLATE")
  if [ ! -f "$KAFKA_DATA_DIR/logs/meta.properties" ]; then
    "$KAFKA/kafka.sh" fetch
    local props="$KAFKA_DATA_DIR/format.properties" uuid
    (umask 077; sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$KAFKA_DATA_DIR/logs|g" "$KAFKA_TEMPLATE" > "$props")
    uuid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$KAFKA/log4j2.yaml" kafka.tools.StorageTool \
      format --standalone -t "$uuid" -c "$props" \
      --add-scram "SCRAM-SHA-256=[name=admin,password=$KAFKA_ADMIN_PASSWORD]" >/dev/null
    rm -f "$props"
  fi
}

case "${1:-}" in
  start) render; "$KAFKA/kafka.sh" start ;;
  stop|status|wipe) "$KAFKA/kafka.sh" "$1" ;;
  *) echo "usage: $0 start|stop|status|wipe" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Prometheus from Debian's package, for the operators' tests (tests/cluster/test_prometheus.py)
# and for a VM install. Usage: deploy/prometheus/prometheus.sh ensure|check
#   ensure  install the `prometheus` package if /usr/bin/prometheus is missing (the package's own
#           service is stopped: Herald's tests start Prometheus with their own configuration)
#   check   promtool over deploy/prometheus/prometheus.yml and rules.yml
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

ensure() {
  if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then return 0; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null
  # Debian starts its own instance on :9090 where an init system is present: not wanted here.
  if command -v service >/dev/null; then $SUDO service prometheus stop >/dev/null 2>&1 || true; fi
}

case "${1:-}" in
  ensure) ensure ;;
  check) ensure; promtool check rules "$HERE/rules.yml"; promtool check config "$HERE/prometheus.yml" ;;
  *) echo "usage: $0 ensure|check" >&2; exit 2 ;;
esac

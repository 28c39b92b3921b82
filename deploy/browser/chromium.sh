#!/usr/bin/env bash
# Debian's Chromium and a CJK font for the console's browser tests (Playwright drives the system
# browser; nothing is downloaded by Playwright). Without the font Chinese renders as boxes.
# Usage: deploy/browser/chromium.sh ensure|path
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

ensure() {
  if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
    return 0
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium fonts-wqy-microhei >/dev/null
}

case "${1:-ensure}" in
  ensure) ensure ;;
  path) echo /usr/bin/chromium ;;
  *) echo "usage: $0 ensure|path" >&2; exit 2 ;;
esac

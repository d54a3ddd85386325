#!/usr/bin/env bash
# System tools the test suite uses beyond the virtualenv: Debian's chromium, to open the
# monitoring report and to drive the review page (through the playwright package, which is
# pointed at this chromium and never downloads a browser of its own) in a real headless browser. Installed when missing and we may (root + apt);
# otherwise the browser test skips itself and says why.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (headless browser for the report and review page tests) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "note: chromium is not installed and cannot be installed here; the browser tests (monitor report, review page) will be skipped" >&2
fi

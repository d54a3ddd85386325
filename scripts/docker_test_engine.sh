#!/usr/bin/env bash
# A private Docker engine for the compose tests (and by hand): its own data root, exec root,
# socket and pid file under one scratch folder, never the system engine's.
#
#   scripts/docker_test_engine.sh start DIR [DATA_ROOT]
#       installs docker.io + debootstrap if missing (root + apt), starts dockerd with its socket,
#       exec root and pid file in DIR (keep it short: socket paths are limited to 107 bytes) and its
#       images in DATA_ROOT (default DIR/data; a lasting one keeps built images between runs);
#       prints DOCKER_HOST=unix://DIR/docker.sock
#   scripts/docker_test_engine.sh stop DIR    # stops that engine by its pid, removes its containers first
#
# `--dns 127.0.0.1`: containers resolve nothing outside (the compose network's own DNS still
# names the services); builds are offline (see scones.local.stacks.offline_images).
set -euo pipefail

usage() { echo "usage: $0 start|stop SCRATCH_DIR [DATA_ROOT]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
data_root=${3:-$dir/data}

install_tools() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install ${missing[*]}: needs root and apt-get (Debian)" >&2
    return 1
  fi
  echo "installing ${missing[*]} (Debian's; never Debian's docker-compose v1) ..." >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "a private dockerd needs root" >&2
    return 1
  fi
  install_tools
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "DOCKER_HOST=unix://$sock"
    return 0
  fi
  # Two engines on one data root corrupt it: refuse while another of ours runs on it.
  local owner="$data_root.pidfile"
  if [ -f "$owner" ] && [ "$(cat "$owner")" != "$pidfile" ] && [ -f "$(cat "$owner")" ] \
     && kill -0 "$(cat "$(cat "$owner")")" 2>/dev/null; then
    echo "another engine uses $data_root (pid file $(cat "$owner")); stop it first" >&2
    return 1
  fi
  mkdir -p "$data_root" "$dir/exec"
  echo "$pidfile" >"$owner"
  # setsid: the engine outlives this script; stopped by `stop`, by its pid.
  setsid dockerd --data-root "$data_root" --exec-root "$dir/exec" --pidfile "$pidfile" \
    -H "unix://$sock" --dns 127.0.0.1 --ip 127.0.0.1 >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
      echo "DOCKER_HOST=unix://$sock"
      return 0
    fi
    sleep 0.5
  done
  echo "dockerd did not answer on $sock within 60 s; its log: $dir/dockerd.log" >&2
  tail -20 "$dir/dockerd.log" >&2 || true
  return 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    # Containers first, so that none is left to the engine's shutdown timeout.
    local ids
    ids=$(DOCKER_HOST="unix://$sock" docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || DOCKER_HOST="unix://$sock" docker rm -f $ids >/dev/null 2>&1 || true
    kill "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "dockerd $pid did not stop in 30 s; killing it" >&2
      kill -9 "$pid"
    fi
  fi
  rm -f "$pidfile"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

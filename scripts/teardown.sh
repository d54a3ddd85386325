#!/usr/bin/env bash
# Delete everything scripts/promote.sh created for a stack (found by name and the
# scones:stack tag): endpoint, configs, models, roles, functions, state machine, bucket.
#   scripts/teardown.sh [--stack-name S] [--region R] [--keep-bucket] [--yes]
# Asks for confirmation unless --yes; safe to re-run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
default_python="$repo/.venv/bin/python"
[[ -x "$default_python" ]] || default_python="python3"
exec "${PYTHON:-$default_python}" -m scones.local.aws.promote teardown "$@"

#!/usr/bin/env bash
# Deploy a model.tar.gz and the workflow to AWS: S3 model, SageMaker Model/EndpointConfig
# (data capture)/Endpoint, least-privilege roles, Lambdas and the state machine.
#   scripts/promote.sh --model PATH_OR_S3_URI --bucket NAME [--region R] [--stack-name S]
#                      [--instance-type T] [--capture-percent N] [--dry-run] [--yes]
# AWS_ENDPOINT_URL retargets every call (the tests point it at a moto server).
# PYTHON selects the interpreter [default: the repo's .venv, else python3].
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
default_python="$repo/.venv/bin/python"
[[ -x "$default_python" ]] || default_python="python3"
exec "${PYTHON:-$default_python}" -m scones.local.aws.promote promote "$@"

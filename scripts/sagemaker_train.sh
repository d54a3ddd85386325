#!/usr/bin/env bash
# Train the classifier as a SageMaker training job: our model/train.py in script mode on a
# GPU instance (default ml.g4dn.xlarge) with the AWS PyTorch training image; prints the
# S3 URI of model.tar.gz, ready for scripts/promote.sh --model.
#   scripts/sagemaker_train.sh --data .scones/data/cifar --bucket NAME [--spot] [--epochs N] ...
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
default_python="$repo/.venv/bin/python"
[[ -x "$default_python" ]] || default_python="python3"
exec "${PYTHON:-$default_python}" -m scones.local.aws.sagemaker_training "$@"

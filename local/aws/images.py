"""Image URIs of AWS's PyTorch Deep Learning Containers, per region.

SageMaker pulls framework images from an AWS-owned ECR registry whose account differs in
some regions (opt-in regions and partitions); the table follows the SageMaker Python SDK's
`image_uri_config/pytorch.json`.
"""
from __future__ import annotations

DEFAULT_DLC_ACCOUNT = "763104351884"
DLC_ACCOUNT_BY_REGION = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}
# The newest PyTorch DLC pair with both training and inference images; the artifact's
# inference.py and the training script only need torch>=2.4 APIs.
PYTORCH_VERSION = "2.6.0"
PYTHON_TAG = "py312"
GPU_INSTANCE_FAMILIES = ("ml.p", "ml.g", "ml.trn", "ml.inf")


def is_gpu_instance(instance_type: str) -> bool:
    return instance_type.startswith(GPU_INSTANCE_FAMILIES)


def dlc_account(region: str) -> str:
    return DLC_ACCOUNT_BY_REGION.get(region, DEFAULT_DLC_ACCOUNT)


def ecr_domain(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"dkr.ecr.{region}.{suffix}"


def pytorch_image_uri(
    region: str, scope: str, instance_type: str, version: str = PYTORCH_VERSION
) -> str:
    """`scope` is "training" or "inference"; the processor follows the instance family."""
    if scope not in ("training", "inference"):
        raise ValueError(f"image scope must be training or inference, not {scope!r}")
    processor = "gpu" if is_gpu_instance(instance_type) else "cpu"
    return f"{dlc_account(region)}.{ecr_domain(region)}/pytorch-{scope}:{version}-{processor}-{PYTHON_TAG}"


def ecr_repository_arn(image_uri: str) -> str:
    """arn:aws:ecr:REGION:ACCOUNT:repository/NAME for an ECR image URI (for scoped pull rights)."""
    registry, _, rest = image_uri.partition("/")
    account, _, _, region, *_ = registry.split(".")
    repository = rest.split("@")[0].rsplit(":", 1)[0]
    partition = "aws-cn" if region.startswith("cn-") else ("aws-us-gov" if region.startswith("us-gov-") else "aws")
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"

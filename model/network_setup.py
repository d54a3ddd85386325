"""A fresh network for training: the whitened ConvNet stem, ImageNet weights for the ResNet, the optimizer."""
from __future__ import annotations

import torch
from torch import nn

from .code.inference import RESNET_ARCHITECTURE, ConvNetCifar, build_network, normalise
from .training_data import TrainingError

WHITENING_EPSILON = 5e-4  # added to the patch covariance's eigenvalues before dividing by their root


class PretrainedWeightsUnavailable(TrainingError):
    """--pretrained was asked for but the ImageNet weights cannot be had here."""


def load_pretrained(net: nn.Module, architecture: str, width: int) -> None:
    """Copies torchvision's ImageNet ResNet-18 weights where shapes match (not the 7x7 stem, not fc)."""
    if architecture != RESNET_ARCHITECTURE or width != 64:
        raise PretrainedWeightsUnavailable(
            f"--pretrained needs --architecture {RESNET_ARCHITECTURE} --width 64 (the ImageNet model), "
            f"got {architecture} width {width}")
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as error:  # urllib/SSL/OS errors: all mean "cannot get the weights here"
        raise PretrainedWeightsUnavailable(
            f"could not download ImageNet weights from {weights.url} ({error}); train without --pretrained"
        ) from error
    own = net.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(usable, strict=False)


def init_whitening(net: ConvNetCifar, images: torch.Tensor) -> None:
    """Sets the stem to whiten the 2x2 patches of the normalised training images and freezes its weights.

    Each filter is an eigenvector of the patch covariance divided by the root of its eigenvalue,
    used with both signs (airbench's patch whitening): the first layer starts decorrelated and
    the network learns faster from few photos. The stem's bias still trains.
    """
    channels, size = images.shape[1], net.stem.kernel_size[0]
    patches = images.unfold(2, size, 1).unfold(3, size, 1).transpose(1, 3).reshape(-1, channels * size * size).float()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + WHITENING_EPSILON).unsqueeze(1)).flip(0)  # largest first
    filters = filters[:net.STEM_DIRECTIONS].reshape(-1, channels, size, size)
    with torch.no_grad():
        net.stem.weight.copy_(torch.cat((filters, -filters)))
    net.stem.weight.requires_grad_(False)


def new_network(architecture: str, width: int, num_classes: int, train_images: torch.Tensor,
                pretrained: bool = False) -> nn.Module:
    """One freshly initialised network (ImageNet weights with pretrained); train_images are uint8."""
    net = build_network(architecture, num_classes, width)
    if pretrained:
        load_pretrained(net, architecture, width)
    if isinstance(net, ConvNetCifar):
        init_whitening(net, normalise(train_images))
    return net


def sgd_optimizer(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Nesterov SGD; weight decay on weights only, not on biases or batch-norm scales (frozen ones left out)."""
    trainable = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)

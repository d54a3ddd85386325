"""The networks model.json can name: building them, ensembles, and the whitened stem training starts from."""
from __future__ import annotations

import pytest
import torch

from scones.model.code import inference
from scones.model.network_setup import init_whitening


def test_unknown_architecture_or_no_members_is_a_value_error():
    with pytest.raises(ValueError, match="architecture 'vgg'"):
        inference.build_network("vgg", 2, 8)
    with pytest.raises(ValueError, match="members 0"):
        inference.build_network(inference.ARCHITECTURE, 2, 8, members=0)


@pytest.mark.parametrize("architecture", [inference.ARCHITECTURE, inference.RESNET_ARCHITECTURE])
def test_an_ensemble_answers_the_mean_of_its_members_logits(architecture):
    torch.manual_seed(0)
    ensemble = inference.build_network(architecture, 2, 4, members=3).eval()
    assert isinstance(ensemble, inference.Ensemble) and len(ensemble.members) == 3
    batch = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        expected = torch.stack([member(batch) for member in ensemble.members]).mean(0)
        assert torch.allclose(ensemble(batch), expected)
        assert not torch.allclose(ensemble.members[0](batch), ensemble.members[1](batch))  # really different networks


def test_an_ensembles_weights_load_into_the_network_model_json_describes():
    trained = inference.build_network(inference.ARCHITECTURE, 2, 4, members=2)
    served = inference.build_network(inference.ARCHITECTURE, 2, 4, members=2)
    served.load_state_dict(trained.state_dict())  # strict: the same keys and shapes
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), served.state_dict().values(), strict=True))


def test_the_stem_whitens_image_patches_and_stays_frozen():
    torch.manual_seed(0)
    # Correlated channels, like photos: the stem must decorrelate them.
    base = torch.randn(200, 1, 32, 32)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.randn_like(base), torch.randn(200, 1, 32, 32)], 1)
    net = inference.ConvNetCifar(2, width=4)
    init_whitening(net, images)
    assert not net.stem.weight.requires_grad
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, net.stem.weight[:net.STEM_DIRECTIONS])  # no bias: centred enough
    flat = out.permute(0, 2, 3, 1).reshape(-1, net.STEM_DIRECTIONS)
    covariance = flat.T @ flat / len(flat)
    assert torch.allclose(covariance, torch.eye(net.STEM_DIRECTIONS), atol=0.05)


def test_ensemble_flag_rejects_zero():
    from scones.model.train import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--ensemble", "0"])
    assert build_parser().parse_args(["--ensemble", "1"]).ensemble == 1

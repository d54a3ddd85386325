"""The four serving handlers of code/inference.py, on images of every mode and size."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from scones.model.code import inference


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def rgb_image() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.mark.parametrize("content_type", ["image/png", "application/x-image", "image/png; charset=binary"])
def test_input_fn_returns_a_normalised_batch_of_one(rgb_image, content_type):
    tensor = inference.input_fn(encode(rgb_image), content_type)
    assert tensor.shape == (1, 3, 32, 32) and tensor.dtype == torch.float32
    expected = inference.normalise(torch.from_numpy(np.asarray(rgb_image).copy()).permute(2, 0, 1)[None])
    assert torch.allclose(tensor, expected)


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "CMYK"])
def test_input_fn_accepts_any_mode(rgb_image, mode):
    tensor = inference.input_fn(encode(rgb_image.convert(mode), "TIFF" if mode == "CMYK" else "PNG"), "image/png")
    assert tensor.shape == (1, 3, 32, 32)


def test_rgba_with_opaque_alpha_equals_rgb(rgb_image):
    rgba = inference.input_fn(encode(rgb_image.convert("RGBA")), "image/png")
    assert torch.equal(rgba, inference.input_fn(encode(rgb_image), "image/png"))


@pytest.mark.parametrize("size", [(1, 1), (17, 40), (640, 480)])
def test_input_fn_resizes_any_size(rgb_image, size):
    assert inference.input_fn(encode(rgb_image.resize(size)), "image/png").shape == (1, 3, 32, 32)


def test_input_fn_reads_jpeg(rgb_image):
    tensor = inference.input_fn(encode(rgb_image, "JPEG"), "image/jpeg")
    assert tensor.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("body", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_bytes_raise_invalid_image(body):
    with pytest.raises(inference.InvalidImage, match=f"{len(body)} bytes") as raised:
        inference.input_fn(body, "image/png")
    assert "BytesIO" not in str(raised.value)  # a message for people, not an object repr


@pytest.mark.parametrize("content_type", ["application/json", "text/csv", "", "image/gif"])
def test_bad_content_type_raises(rgb_image, content_type):
    with pytest.raises(inference.UnsupportedContentType):
        inference.input_fn(encode(rgb_image), content_type)


def test_errors_are_value_errors():
    for error in (inference.InvalidImage, inference.UnsupportedContentType, inference.UnsupportedAccept):
        assert issubclass(error, ValueError)


def test_predict_fn_returns_probabilities_per_row():
    model = inference.LoadedModel(inference.ResNet18Cifar(2, width=4).eval(), ["bicycle", "motorcycle"], torch.device("cpu"), {})
    probabilities = inference.predict_fn(torch.randn(5, 3, 32, 32), model)
    assert probabilities.shape == (5, 2) and probabilities.dtype == torch.float32
    assert torch.allclose(probabilities.sum(1), torch.ones(5))


def test_predict_fn_applies_the_temperature_and_flip_average_from_model_json():
    torch.manual_seed(0)
    net = inference.ResNet18Cifar(2, width=4).eval()
    batch = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        plain, mirrored = net(batch), net(batch.flip(-1))
    served = inference.predict_fn(batch, inference.LoadedModel(
        net, ["bicycle", "motorcycle"], torch.device("cpu"), {"temperature": 2.0, "flip_average": True}))
    assert torch.allclose(served, torch.softmax((plain + mirrored) / 2 / 2.0, 1), atol=1e-6)
    older = inference.predict_fn(batch, inference.LoadedModel(net, ["bicycle", "motorcycle"], torch.device("cpu"), {}))
    assert torch.allclose(older, torch.softmax(plain, 1), atol=1e-6)  # artifacts without the keys serve as before


@pytest.mark.parametrize("accept", ["application/json", "*/*", "", None, "application/json; charset=utf-8"])
@pytest.mark.parametrize("shape", [(2,), (1, 2)])
def test_output_fn_writes_a_json_list(accept, shape):
    body, content_type = inference.output_fn(torch.tensor([0.9987, 0.0013]).reshape(shape), accept)
    assert content_type == "application/json"
    assert json.loads(body) == pytest.approx([0.9987, 0.0013])


def test_output_fn_refuses_other_accept_types():
    with pytest.raises(inference.UnsupportedAccept):
        inference.output_fn(torch.tensor([0.5, 0.5]), "text/csv")

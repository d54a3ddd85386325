"""The model behind the server: the artifact's own inference.py, loaded as AWS's container loads it.

The server adds nothing to the serving behaviour: input_fn per request (`decode`, run as the
request arrives, overlapping the previous batch's forward pass), one predict_fn per batch,
output_fn per request (`run_decoded`). Errors are sorted into the client's fault (the handlers'
ValueErrors) and the model's fault (anything else), which the HTTP layer maps to
ValidationError and ModelError.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from scones.model.artifact import extract_artifact, load_inference_module

log = logging.getLogger("scones.model.server")


@dataclass(frozen=True)
class InvocationRequest:
    body: bytes
    content_type: str
    accept: str


@dataclass(frozen=True)
class DecodedRequest:
    """A request after input_fn: its tensor, or the error that input_fn raised."""

    request: InvocationRequest
    tensor: torch.Tensor | None
    error: Exception | None


@dataclass(frozen=True)
class InvocationResponse:
    body: bytes
    content_type: str


class InvalidInvocation(Exception):
    """The request is at fault (content type, image, accept): the handlers refused it."""


class ModelFailure(Exception):
    """The model failed on a valid request."""


class ModelNotReady(Exception):
    """The model is still loading."""


class ModelUnavailable(Exception):
    """The model could not be loaded; the server stays up to say why."""


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it is an error, not a silent CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("--device cuda was requested but torch sees no CUDA device")
    return torch.device(requested)


class ModelRunner:
    """Loads the artifact in the background and runs batches of invocations through its handlers."""

    def __init__(self, model_path: Path, device: str = "auto", load_delay_s: float = 0.0,
                 torch_threads: int | None = None) -> None:  # fmt: skip
        self.model_path = model_path
        self.requested_device = device
        self.load_delay_s = load_delay_s
        self.handlers: ModuleType | None = None
        self.model: Any = None
        self.load_error: str | None = None
        self._ready = threading.Event()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self.torch_threads = torch_threads or torch.get_num_threads()

    def init_decode_thread(self) -> None:
        """input_fn's small tensor ops run single-threaded: a second OpenMP team would fight predict_fn's."""
        torch.set_num_threads(1)

    def init_predict_thread(self) -> None:
        """predict_fn keeps every intra-op thread (set_num_threads also changes the default for new threads)."""
        torch.set_num_threads(self.torch_threads)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load_logging_errors, name="model-loader", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()

    def check_available(self) -> None:
        if self.load_error is not None:
            raise ModelUnavailable(f"the model could not be loaded: {self.load_error}")
        if not self.ready:
            raise ModelNotReady("the model is still loading; retry shortly")

    def _load_logging_errors(self) -> None:
        try:
            self.load()
        except Exception as error:
            self.load_error = f"{type(error).__name__}: {error}"
            log.exception("model load failed: %s", self.model_path)

    def load(self) -> None:
        started = time.perf_counter()
        if self.load_delay_s:
            time.sleep(self.load_delay_s)
        device = resolve_device(self.requested_device)
        model_dir = self.model_path
        if model_dir.is_file():
            self._workdir = tempfile.TemporaryDirectory(prefix="scones-model-")
            model_dir = extract_artifact(model_dir, Path(self._workdir.name))
        handlers = load_inference_module(model_dir)
        model = handlers.model_fn(str(model_dir))
        if getattr(model, "device", None) != device:
            model.net.to(device)
            model.device = device
        self.handlers, self.model = handlers, model
        self._ready.set()
        log.info(
            "model loaded from %s on %s in %.2f s, classes %s",
            self.model_path, device, time.perf_counter() - started, list(model.class_names),
        )

    def decode(self, request: InvocationRequest) -> DecodedRequest:
        """input_fn for one request (run while another batch is in predict_fn); errors kept, not raised."""
        handlers = self.handlers
        if handlers is None:
            return DecodedRequest(request, None, ModelNotReady("the model is still loading; retry shortly"))
        try:
            return DecodedRequest(request, handlers.input_fn(request.body, request.content_type), None)
        except ValueError as error:
            return DecodedRequest(request, None, InvalidInvocation(str(error)))
        except Exception as error:
            return DecodedRequest(request, None, ModelFailure(f"input_fn failed: {type(error).__name__}: {error}"))

    def run_batch(self, requests: list[InvocationRequest]) -> list[InvocationResponse | Exception]:
        """input_fn each request, one predict_fn for all that decoded, output_fn each row."""
        return self.run_decoded([self.decode(request) for request in requests])

    def run_decoded(self, batch: list[DecodedRequest]) -> list[InvocationResponse | Exception]:
        """One predict_fn for every decoded request of the batch, output_fn each row."""
        handlers, model = self.handlers, self.model
        results: list[InvocationResponse | Exception] = [item.error or ModelFailure("not run") for item in batch]
        decoded = [index for index, item in enumerate(batch) if item.error is None and item.tensor is not None]
        tensors = [tensor for tensor in (batch[index].tensor for index in decoded) if tensor is not None]
        if handlers is None or not decoded:
            return results
        try:
            with torch.inference_mode():
                predictions = handlers.predict_fn(torch.cat(tensors), model)
        except Exception as error:
            failure = ModelFailure(f"predict_fn failed: {type(error).__name__}: {error}")
            for index in decoded:
                results[index] = failure
            return results
        for row, index in enumerate(decoded):
            try:
                body, content_type = handlers.output_fn(predictions[row], batch[index].request.accept)
                results[index] = InvocationResponse(body, content_type)
            except ValueError as error:
                results[index] = InvalidInvocation(str(error))
            except Exception as error:
                results[index] = ModelFailure(f"output_fn failed: {type(error).__name__}: {error}")
        return results

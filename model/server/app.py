"""HTTP in and out: the SageMaker container routes, the Runtime API route, and AWS's error shapes.

Errors are translated here and only here: code in the `x-amzn-ErrorType` header and a JSON
`message`, which is what botocore reads to raise the same ClientError codes as AWS.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .batching import DynamicBatcher, QueueFull
from .capture import DataCapture
from .model_runner import (
    DecodedRequest, InvalidInvocation, InvocationRequest, InvocationResponse, ModelFailure, ModelNotReady,
    ModelRunner, ModelUnavailable,
)

MAX_PAYLOAD_BYTES = 6_291_456  # SageMaker real-time endpoints refuse larger bodies
VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"

request_log = logging.getLogger("scones.model.server.requests")


class PayloadTooLarge(Exception):
    """The body is over SageMaker's limit."""


class UnknownEndpoint(Exception):
    """The Runtime API was asked for an endpoint this server does not serve."""


def aws_error(code: str, status: int, message: str, **extra: Any) -> Response:
    return Response(
        json.dumps({"message": message, **extra}),
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": code},
    )


def translate_error(error: Exception) -> Response:
    if isinstance(error, (InvalidInvocation, PayloadTooLarge, UnknownEndpoint)):
        return aws_error("ValidationError", 400, str(error))
    if isinstance(error, ModelNotReady):
        return aws_error("ModelNotReadyException", 429, str(error))
    if isinstance(error, (ModelUnavailable, QueueFull)):
        return aws_error("ServiceUnavailable", 503, str(error))
    if isinstance(error, ModelFailure):
        original = str(error)
        return aws_error(
            "ModelError", 424,
            f'Received server error (500) from primary with message "{original}".',
            OriginalStatusCode=500, OriginalMessage=original,
        )
    raise error


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, refused from its Content-Length (or as soon as it grows past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


class EndpointRoutes:
    """The container's routes over one model: /ping, /invocations and the Runtime API's invocations."""

    def __init__(self, runner: ModelRunner, batcher: DynamicBatcher[DecodedRequest, InvocationResponse],
                 endpoint_name: str, variant: str, capture: DataCapture | None, max_payload_bytes: int,
                 decode_threads: int) -> None:  # fmt: skip
        self.runner, self.batcher, self.capture = runner, batcher, capture
        self.endpoint_name, self.variant, self.max_payload_bytes = endpoint_name, variant, max_payload_bytes
        # input_fn runs here as requests arrive, while the batcher's thread runs the previous batch's predict_fn;
        # with no decode thread it runs on the event loop, saving two thread hops a request for small images.
        self.decoder = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode",
                                          initializer=runner.init_decode_thread) if decode_threads else None  # fmt: skip

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.batcher.start()
        if self.capture is not None:
            self.capture.start()
        if self.decoder is None:
            self.runner.init_decode_thread()  # input_fn on the loop's thread
        self.runner.start_loading()
        try:
            yield
        finally:
            await self.batcher.stop()
            if self.decoder is not None:
                self.decoder.shutdown(wait=True)
            if self.capture is not None:
                self.capture.stop()
            self.runner.close()

    async def ping(self, request: Request) -> Response:
        try:
            self.runner.check_available()
        except (ModelNotReady, ModelUnavailable) as error:
            return aws_error(type(error).__name__, 503, str(error))
        return Response(b"", status_code=200)

    async def invoke(self, request: Request) -> Response:
        try:
            return await self.run_invocation(request)
        except Exception as error:
            return translate_error(error)

    async def invoke_endpoint(self, request: Request) -> Response:
        requested = request.path_params["endpoint_name"]
        if requested != self.endpoint_name:
            return translate_error(UnknownEndpoint(f"Endpoint {requested} of account local not found."))
        return await self.invoke(request)

    async def run_invocation(self, request: Request) -> Response:
        inference_id = request.headers.get(INFERENCE_ID_HEADER)
        request.state.inference_id = inference_id
        with self.batcher.admitted():
            self.runner.check_available()
            with self.batcher.expecting():
                body = await read_limited_body(request, self.max_payload_bytes)
                content_type = request.headers.get("content-type", "application/octet-stream")
                invocation = InvocationRequest(body, content_type, request.headers.get("accept", "*/*"))
                decoded = await self.decode(invocation)
            result, batch_size = await self.batcher.submit(decoded)
        request.state.batch_size = batch_size
        if self.capture is not None:
            self.capture.record(body, content_type, result.body, result.content_type, inference_id)
        return Response(result.body, media_type=result.content_type, headers={VARIANT_HEADER: self.variant})


    async def decode(self, invocation: InvocationRequest) -> DecodedRequest:
        if self.decoder is None:
            return self.runner.decode(invocation)
        return await asyncio.get_running_loop().run_in_executor(self.decoder, self.runner.decode, invocation)


def create_app(
    runner: ModelRunner,
    batcher: DynamicBatcher[DecodedRequest, InvocationResponse],
    endpoint_name: str,
    variant: str = "AllTraffic",
    capture: DataCapture | None = None,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    decode_threads: int = 1,
) -> ASGIApp:
    routes = EndpointRoutes(runner, batcher, endpoint_name, variant, capture, max_payload_bytes, decode_threads)
    app = Starlette(
        routes=[
            Route("/ping", routes.ping, methods=["GET"]),
            Route("/invocations", routes.invoke, methods=["POST"]),
            Route("/endpoints/{endpoint_name}/invocations", routes.invoke_endpoint, methods=["POST"]),
        ],
        lifespan=routes.lifespan,
    )
    return RequestLog(app)


class RequestLog:
    """One JSON line per request; plain ASGI so it costs microseconds, not a task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            if request_log.isEnabledFor(logging.INFO):  # no json.dumps per request under --log-level warning
                self.log(scope, status, started)

    @staticmethod
    def log(scope: Scope, status: int, started: float) -> None:
        state = scope.get("state", {})
        request_log.info(json.dumps({
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "batch_size": state.get("batch_size"),
            "inference_id": state.get("inference_id"),
            "pid": os.getpid(),  # which process answered, under --workers
        }))

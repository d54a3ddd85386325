"""HTTP in and out: the SageMaker container routes, the Runtime API route, and AWS's error shapes.

Errors are translated here and only here: code in the `x-amzn-ErrorType` header and a JSON
`message`, which is what botocore reads to raise the same ClientError codes as AWS.
"""
from __future__ import annotations

import asyncio
import json
import logging
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


def create_app(
    runner: ModelRunner,
    batcher: DynamicBatcher[DecodedRequest, InvocationResponse],
    endpoint_name: str,
    variant: str = "AllTraffic",
    capture: DataCapture | None = None,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    decode_threads: int = 1,
) -> ASGIApp:
    # input_fn runs here as requests arrive, while the batcher's thread runs the previous batch's predict_fn.
    decoder = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode",
                                 initializer=runner.init_decode_thread)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        if capture is not None:
            capture.start()
        runner.start_loading()
        try:
            yield
        finally:
            await batcher.stop()
            decoder.shutdown(wait=True)
            if capture is not None:
                capture.stop()
            runner.close()

    async def ping(request: Request) -> Response:
        try:
            runner.check_available()
        except (ModelNotReady, ModelUnavailable) as error:
            return aws_error(type(error).__name__, 503, str(error))
        return Response(b"", status_code=200)

    async def invoke(request: Request) -> Response:
        try:
            return await run_invocation(request)
        except Exception as error:
            return translate_error(error)

    async def invoke_endpoint(request: Request) -> Response:
        requested = request.path_params["endpoint_name"]
        if requested != endpoint_name:
            return translate_error(UnknownEndpoint(f"Endpoint {requested} of account local not found."))
        return await invoke(request)

    async def run_invocation(request: Request) -> Response:
        inference_id = request.headers.get(INFERENCE_ID_HEADER)
        request.state.inference_id = inference_id
        with batcher.admitted():
            runner.check_available()
            with batcher.expecting():
                body = await read_limited_body(request, max_payload_bytes)
                content_type = request.headers.get("content-type", "application/octet-stream")
                invocation = InvocationRequest(body, content_type, request.headers.get("accept", "*/*"))
                decoded = await asyncio.get_running_loop().run_in_executor(decoder, runner.decode, invocation)
            result, batch_size = await batcher.submit(decoded)
        request.state.batch_size = batch_size
        if capture is not None:
            capture.record(body, content_type, result.body, result.content_type, inference_id)
        return Response(result.body, media_type=result.content_type, headers={VARIANT_HEADER: variant})

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invoke, methods=["POST"]),
            Route("/endpoints/{endpoint_name}/invocations", invoke_endpoint, methods=["POST"]),
        ],
        lifespan=lifespan,
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
        }))

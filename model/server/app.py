"""The server's ASGI app: the invocation routes (plain ASGI, invocations.py), /ping and the request log.

The invocation pipeline: a place in the bounded queue, the body, input_fn (on the decode thread,
overlapping the forward pass), the batcher (predict_fn and output_fn), data capture.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .batching import DynamicBatcher
from .capture import DataCapture
from .decoding import DecodeThreads
from .invocations import MAX_PAYLOAD_BYTES, InvocationsApp, aws_error_body
from .model_runner import (
    DecodedRequest, InvocationRequest, InvocationResponse, ModelNotReady, ModelRunner, ModelUnavailable,
)

request_log = logging.getLogger("scones.model.server.requests")


class EndpointRoutes:
    """One model behind the container's routes: /ping, and the invocation pipeline."""

    def __init__(self, runner: ModelRunner, batcher: DynamicBatcher[DecodedRequest, InvocationResponse],
                 capture: DataCapture | None, decode_threads: int) -> None:  # fmt: skip
        self.runner, self.batcher, self.capture = runner, batcher, capture
        # input_fn runs here as requests arrive, while the batcher's thread runs the previous batch's predict_fn;
        # with no decode thread it runs on the event loop, saving two thread hops a request for small images.
        self.decoder: DecodeThreads[InvocationRequest, DecodedRequest] | None = (
            DecodeThreads(runner.decode, runner.init_decode_thread, decode_threads) if decode_threads else None)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.batcher.start()
        if self.capture is not None:
            self.capture.start()
        if self.decoder is None:
            self.runner.init_decode_thread()  # input_fn on the loop's thread
        else:
            self.decoder.start(asyncio.get_running_loop())
        self.runner.start_loading()
        try:
            yield
        finally:
            await self.batcher.stop()
            if self.decoder is not None:
                self.decoder.stop()
            if self.capture is not None:
                self.capture.stop()
            self.runner.close()

    async def ping(self, request: Request) -> Response:
        try:
            self.runner.check_available()
        except (ModelNotReady, ModelUnavailable) as error:
            return Response(aws_error_body(str(error)), status_code=503, media_type="application/json",
                            headers={"x-amzn-ErrorType": type(error).__name__})  # fmt: skip
        return Response(b"", status_code=200)

    async def invoke(self, read_body: Callable[[], Awaitable[bytes]], content_type: str, accept: str,
                     inference_id: str | None, state: dict[str, Any]) -> InvocationResponse:  # fmt: skip
        """One invocation through the pipeline; its errors are the invocation routes' to translate."""
        with self.batcher.admitted():
            self.runner.check_available()
            with self.batcher.expecting():
                body = await read_body()
                invocation = InvocationRequest(body, content_type, accept)
                decoded = self.runner.decode(invocation) if self.decoder is None else await self.decoder.submit(invocation)
            result, state["batch_size"] = await self.batcher.submit(decoded)
        if self.capture is not None:
            self.capture.record(body, content_type, result.body, result.content_type, inference_id)
        return result


def create_app(
    runner: ModelRunner,
    batcher: DynamicBatcher[DecodedRequest, InvocationResponse],
    endpoint_name: str,
    variant: str = "AllTraffic",
    capture: DataCapture | None = None,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    decode_threads: int = 1,
) -> ASGIApp:
    routes = EndpointRoutes(runner, batcher, capture, decode_threads)
    app = Starlette(routes=[Route("/ping", routes.ping, methods=["GET"])], lifespan=routes.lifespan)
    return RequestLog(InvocationsApp(routes.invoke, app, endpoint_name, variant, max_payload_bytes))


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

"""POST /invocations and /endpoints/{name}/invocations as plain ASGI: the hot path without a framework.

At concurrency 32 on 2 cores the event loop's CPU is taken from the forward pass, and Starlette's
middleware, routing, Request and Response objects were a fifth of it. These two routes are read
and answered here straight from ASGI messages, with the same statuses, headers and AWS error
shapes; every other request (/ping, unknown paths) goes on to the Starlette app.

Errors are translated here and only here: code in the `x-amzn-ErrorType` header and a JSON
`message`, which is what botocore reads to raise the same ClientError codes as AWS.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .batching import QueueFull
from .model_runner import InvalidInvocation, InvocationResponse, ModelFailure, ModelNotReady, ModelUnavailable

MAX_PAYLOAD_BYTES = 6_291_456  # SageMaker real-time endpoints refuse larger bodies
VARIANT_HEADER = b"x-amzn-invoked-production-variant"
INFERENCE_ID_HEADER = b"x-amzn-sagemaker-inference-id"
RUNTIME_PREFIX, RUNTIME_SUFFIX = "/endpoints/", "/invocations"

# invoke(read_body, content_type, accept, inference_id, state): the response; reads the body when it is ready to
Invoke = Callable[[Callable[[], Awaitable[bytes]], str, str, "str | None", dict[str, Any]], Awaitable[InvocationResponse]]


class PayloadTooLarge(Exception):
    """The body is over SageMaker's limit."""


class UnknownEndpoint(Exception):
    """The Runtime API was asked for an endpoint this server does not serve."""


class ClientDisconnected(Exception):
    """The client went away before its body arrived: nobody is left to answer."""


def aws_error_body(message: str, **extra: Any) -> bytes:
    return json.dumps({"message": message, **extra}).encode()


def translate_error(error: Exception) -> tuple[int, str, bytes]:
    """Status, x-amzn-ErrorType and JSON body of a known error; anything else is re-raised (a 500)."""
    if isinstance(error, (InvalidInvocation, PayloadTooLarge, UnknownEndpoint)):
        return 400, "ValidationError", aws_error_body(str(error))
    if isinstance(error, ModelNotReady):
        return 429, "ModelNotReadyException", aws_error_body(str(error))
    if isinstance(error, (ModelUnavailable, QueueFull)):
        return 503, "ServiceUnavailable", aws_error_body(str(error))
    if isinstance(error, ModelFailure):
        original = str(error)
        return 424, "ModelError", aws_error_body(
            f'Received server error (500) from primary with message "{original}".',
            OriginalStatusCode=500, OriginalMessage=original,
        )
    raise error


async def read_limited_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body, refused from its Content-Length (or as soon as it grows past the limit)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared.decode()} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, content_type: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-length", str(len(body)).encode()), (b"content-type", content_type), *headers]})
    await send({"type": "http.response.body", "body": body})


class InvocationsApp:
    """The two invocation routes over `invoke`; everything else to `fallback`."""

    def __init__(self, invoke: Invoke, fallback: ASGIApp, endpoint_name: str, variant: str,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:  # fmt: skip
        self.invoke, self.fallback = invoke, fallback
        self.endpoint_name, self.max_payload_bytes = endpoint_name, max_payload_bytes
        self.variant_header = (VARIANT_HEADER, variant.encode())

    def requested_endpoint(self, path: str) -> str | None:
        """The endpoint name of a Runtime API path, "" for the container's /invocations, None for other paths."""
        if path == RUNTIME_SUFFIX:
            return ""
        if path.startswith(RUNTIME_PREFIX) and path.endswith(RUNTIME_SUFFIX):
            name = path[len(RUNTIME_PREFIX):-len(RUNTIME_SUFFIX)]
            return name if name and "/" not in name else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        requested = self.requested_endpoint(scope["path"]) if scope["type"] == "http" else None
        if requested is None:
            await self.fallback(scope, receive, send)
        elif scope["method"] != "POST":
            await respond(send, 405, b"Method Not Allowed", b"text/plain; charset=utf-8", (b"allow", b"POST"))
        else:
            try:
                await self.answer(scope, receive, send, requested)
            except ClientDisconnected:
                return

    async def answer(self, scope: Scope, receive: Receive, send: Send, requested: str) -> None:
        headers = dict(reversed(scope["headers"]))  # the first of repeated headers wins, as in Starlette
        inference_id = headers.get(INFERENCE_ID_HEADER)
        state = scope.setdefault("state", {})
        state["inference_id"] = inference_id = None if inference_id is None else inference_id.decode("latin-1")
        declared = headers.get(b"content-length")
        content_type = headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
        try:
            if requested and requested != self.endpoint_name:
                raise UnknownEndpoint(f"Endpoint {requested} of account local not found.")
            result = await self.invoke(
                lambda: read_limited_body(receive, declared, self.max_payload_bytes),
                content_type, headers.get(b"accept", b"*/*").decode("latin-1"), inference_id, state,
            )
        except ClientDisconnected:
            raise
        except Exception as error:
            status, code, body = translate_error(error)  # re-raises what it does not know: a 500, logged
            await respond(send, status, body, b"application/json", (b"x-amzn-errortype", code.encode()))
            return
        await respond(send, 200, result.body, result.content_type.encode("latin-1"), self.variant_header)

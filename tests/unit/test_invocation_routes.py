"""The plain-ASGI invocation routes: statuses, headers and AWS error shapes, over a stand-in pipeline.

The real pipeline behind them is tested end to end in tests/integration/test_model_server.py;
here each answer the routes can give is pinned, including those a real model makes hard to reach.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse

from scones.model.server.batching import QueueFull
from scones.model.server.invocations import InvocationsApp
from scones.model.server.model_runner import (
    InvalidInvocation, InvocationResponse, ModelFailure, ModelNotReady, ModelUnavailable,
)

ENDPOINT = "my-endpoint"


class StandIn:
    """Records what the routes passed on; answers with `reply` or raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, read_body, content_type: str, accept: str, inference_id: str | None,
                       state: dict[str, Any]) -> InvocationResponse:  # fmt: skip
        body = await read_body()
        self.calls.append({"body": body, "content_type": content_type, "accept": accept, "inference_id": inference_id})
        if self.error is not None:
            raise self.error
        state["batch_size"] = 1
        return InvocationResponse(json.dumps([0.25, 0.75]).encode(), "application/json")


async def fallback(scope, receive, send) -> None:
    await PlainTextResponse(f"fallback {scope['path']}", status_code=404)(scope, receive, send)


def post(stand_in: StandIn, path: str, body: bytes = b"png", max_payload_bytes: int = 1000, **kwargs) -> httpx.Response:
    app = InvocationsApp(stand_in, fallback, ENDPOINT, "VariantA", max_payload_bytes)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
            return await client.request(kwargs.pop("method", "POST"), path, content=body, **kwargs)

    return asyncio.run(send())


@pytest.mark.parametrize("path", ["/invocations", f"/endpoints/{ENDPOINT}/invocations"])
def test_both_routes_answer_the_pipelines_body_with_the_variant(path) -> None:
    stand_in = StandIn()
    response = post(stand_in, path, headers={"Content-Type": "image/png", "Accept": "application/json",
                                             "X-Amzn-SageMaker-Inference-Id": "id-7"})  # fmt: skip
    assert response.status_code == 200
    assert response.json() == [0.25, 0.75]
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-Amzn-Invoked-Production-Variant"] == "VariantA"
    assert int(response.headers["content-length"]) == len(response.content)
    assert stand_in.calls == [{"body": b"png", "content_type": "image/png", "accept": "application/json",
                               "inference_id": "id-7"}]  # fmt: skip


def test_absent_headers_default_as_starlette_read_them() -> None:
    stand_in = StandIn()
    post(stand_in, "/invocations", headers={"Content-Type": ""})
    assert stand_in.calls[0]["accept"] == "*/*"
    assert stand_in.calls[0]["inference_id"] is None


def test_unknown_endpoint_is_aws_validation_error_and_the_pipeline_is_not_called() -> None:
    stand_in = StandIn()
    response = post(stand_in, "/endpoints/other/invocations")
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    assert response.json() == {"message": "Endpoint other of account local not found."}
    assert stand_in.calls == []


def test_body_over_the_limit_is_refused_by_its_declared_length() -> None:
    response = post(StandIn(), "/invocations", body=b"x" * 1001)
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    assert response.json()["message"] == "request body of 1001 bytes exceeds the 1000-byte limit"


def test_streamed_body_over_the_limit_is_refused_as_it_grows() -> None:
    app = InvocationsApp(StandIn(), fallback, ENDPOINT, "AllTraffic", 1000)

    async def send() -> httpx.Response:
        async def chunks():  # no Content-Length: the body arrives in parts
            for _ in range(2):
                yield b"x" * 600

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server") as client:
            return await client.post("/invocations", content=chunks())

    refused = asyncio.run(send())
    assert refused.status_code == 400
    assert refused.json()["message"] == "request body exceeds the 1000-byte limit"


@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidInvocation("content type 'text/csv' is not supported"), 400, "ValidationError"),
    (ModelNotReady("the model is still loading; retry shortly"), 429, "ModelNotReadyException"),
    (ModelUnavailable("the model could not be loaded: boom"), 503, "ServiceUnavailable"),
    (QueueFull("256 requests are already waiting (limit 256); retry shortly"), 503, "ServiceUnavailable"),
])
def test_pipeline_errors_are_aws_errors(error, status, code) -> None:
    response = post(StandIn(error), "/invocations")
    assert response.status_code == status
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": str(error)}


def test_model_failure_is_model_error_with_the_original_status_and_message() -> None:
    response = post(StandIn(ModelFailure("predict_fn failed: RuntimeError: GPU on fire")), "/invocations")
    assert response.status_code == 424
    assert response.headers["x-amzn-ErrorType"] == "ModelError"
    assert response.json() == {
        "message": 'Received server error (500) from primary with message '
                   '"predict_fn failed: RuntimeError: GPU on fire".',
        "OriginalStatusCode": 500, "OriginalMessage": "predict_fn failed: RuntimeError: GPU on fire",
    }


def test_an_unexpected_error_is_not_dressed_up_as_an_aws_error() -> None:
    with pytest.raises(KeyError):  # the server (uvicorn) answers 500 and logs the traceback
        post(StandIn(KeyError("bug")), "/invocations")


def test_other_methods_on_the_routes_are_405_and_other_paths_go_to_the_fallback() -> None:
    refused = post(StandIn(), "/invocations", method="GET", body=b"")
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert refused.text == "Method Not Allowed"
    for path in ("/ping", "/endpoints//invocations", "/endpoints/a/b/invocations", "/invocations/extra"):
        passed_on = post(StandIn(), path, method="GET", body=b"")
        assert passed_on.status_code == 404 and passed_on.text == f"fallback {path}"

"""A request that crashes moto (its backends are not thread-safe) answers AWS's 500 InternalFailure in
the request's protocol: botocore retries it, and a lasting fault reaches the caller as a ClientError
with that code, never a ResponseParserError. A real moto server over HTTP, real boto3 clients; the
fault is injected into one backend method per protocol."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scones.local.emulator import moto_seam

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture()
def endpoint() -> Iterator[str]:
    server = moto_seam.make_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _crash(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, times: int,
           error: Exception = RuntimeError("dictionary changed size during iteration")) -> list[int]:  # fmt: skip
    """owner.name raises `error` (moto's race) `times` times, then works; returns the list of calls made."""
    calls: list[int] = []
    original = getattr(owner, name)

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return calls


def _iam() -> tuple[str, type, str, Callable]:
    from moto.iam.models import IAMBackend

    return "iam", IAMBackend, "list_roles", lambda client: client.list_roles()


def _stepfunctions() -> tuple[str, type, str, Callable]:
    from moto.stepfunctions.models import StepFunctionBackend

    return "stepfunctions", StepFunctionBackend, "list_state_machines", lambda client: client.list_state_machines()


def _lambda() -> tuple[str, type, str, Callable]:
    from moto.awslambda.models import LambdaBackend

    return "lambda", LambdaBackend, "list_functions", lambda client: client.list_functions()


def _s3() -> tuple[str, type, str, Callable]:
    from moto.s3.models import S3Backend

    return "s3", S3Backend, "list_buckets", lambda client: client.list_buckets()


PROTOCOLS = {"query": _iam, "json": _stepfunctions, "rest-json": _lambda, "rest-xml": _s3}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_transient_crash_is_retried_by_botocore(endpoint, monkeypatch, protocol):
    service, owner, method, call = PROTOCOLS[protocol]()
    calls = _crash(monkeypatch, owner, method, times=1)
    client = boto3.client(service, endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 3}), **CREDENTIALS)
    assert client.meta.service_model.protocol == protocol
    call(client)
    assert len(calls) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_lasting_crash_is_aws_internal_failure(endpoint, monkeypatch, protocol):
    service, owner, method, call = PROTOCOLS[protocol]()
    _crash(monkeypatch, owner, method, times=99)
    client = boto3.client(service, endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1}), **CREDENTIALS)
    with pytest.raises(ClientError) as raised:
        call(client)
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["Error"]["Code"] == ("InternalError" if service == "s3" else "InternalFailure")
    assert response["Error"]["Message"].startswith("We encountered an internal error. Please try again.")
    assert "RuntimeError: dictionary changed size during iteration" in response["Error"]["Message"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_feature_moto_lacks_is_501_at_once_not_retried(endpoint, monkeypatch, protocol):
    service, owner, method, call = PROTOCOLS[protocol]()
    calls = _crash(monkeypatch, owner, method, times=99, error=NotImplementedError("The states target is not supported"))
    client = boto3.client(service, endpoint_url=endpoint, config=Config(retries={"mode": "standard", "max_attempts": 3}), **CREDENTIALS)
    with pytest.raises(ClientError) as raised:
        call(client)
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 501 and response["Error"]["Code"] == "NotImplemented"
    assert "does not implement this: The states target is not supported" in response["Error"]["Message"]
    assert len(calls) == 1

"""The seam's speed patches outside the Lambda path: kept-alive connections to moto's server,
executions started after their StartExecution answer, JSONPath parsed once; what each relies on in
werkzeug and moto (tests that fail loudly if they move)."""
from __future__ import annotations

import http.client
import inspect
import json
import threading
from collections.abc import Iterator

import pytest

from scones.local.emulator import moto_seam
from scones.local.emulator.moto_seam import execution_starts


def test_werkzeug_closes_each_connection_through_send_header_after_reading_expect():
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import WSGIRequestHandler

    source = inspect.getsource(WSGIRequestHandler.run_wsgi)
    assert 'self.send_header("Connection", "close")' in source, "werkzeug no longer closes every connection: drop keep_alive_handler"
    assert source.find('"Expect"') < source.find("self.make_environ()"), "werkzeug answers 100-continue elsewhere now"
    assert '"wsgi.input": self.rfile' in inspect.getsource(WSGIRequestHandler.make_environ)
    assert issubclass(MotoRequestHandler, WSGIRequestHandler)


@pytest.fixture()
def moto_server() -> Iterator[int]:
    server = moto_seam.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _call(connection: http.client.HTTPConnection, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict, bytes]:
    connection.request(method, path, body=body, headers={"Host": "localhost", **headers})
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_moto_server_keeps_the_connection_even_after_a_body_it_did_not_read(moto_server: int):
    connection = http.client.HTTPConnection("127.0.0.1", moto_server, timeout=10)
    status, headers, _ = _call(connection, "PUT", "/keepalive-bucket")
    assert status == 200 and headers.get("connection") != "close"
    first_socket = connection.sock
    _call(connection, "POST", "/moto-api/nothing-here", b"x" * 5000, **{"Content-Type": "application/octet-stream"})
    status, _, body = _call(connection, "GET", "/", **{"Authorization": "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/s3/aws4_request"})
    assert status == 200 and b"keepalive-bucket" in body
    assert connection.sock is first_socket, "the server closed a connection it could keep"


def test_a_client_asking_to_close_gets_werkzeugs_behaviour(moto_server: int):
    connection = http.client.HTTPConnection("127.0.0.1", moto_server, timeout=10)
    _, headers, _ = _call(connection, "GET", "/moto-api/", Connection="close")
    assert headers.get("connection") == "close"


def test_execution_worker_start_is_the_one_thread_start_the_seam_defers():
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker, SyncExecutionWorker

    source = inspect.getsource(ExecutionWorker.start)
    assert "Thread(target=self._execution_logic" in source, "moto starts executions elsewhere: move defer_execution_starts"
    assert "start" in vars(SyncExecutionWorker), "StartSyncExecution would be deferred too: it must run in its request"


class _Worker:
    def __init__(self) -> None:
        self.ran = threading.Event()

    def _execution_logic(self) -> None:
        self.ran.set()


def test_executions_start_after_the_answer_is_written_and_at_once_outside_a_request(monkeypatch: pytest.MonkeyPatch):
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    monkeypatch.setattr(ExecutionWorker, "start", ExecutionWorker.start)  # restored after the test
    execution_starts.defer_execution_starts()
    worker = _Worker()

    def app(environ: dict, start_response) -> list[bytes]:
        ExecutionWorker.start(worker)  # type: ignore[arg-type]
        start_response("200 OK", [])
        return [json.dumps({"executionArn": "a"}).encode()]

    body = execution_starts.start_executions_after_response(app)({}, lambda *args: None)
    assert next(iter(body)) == b'{"executionArn": "a"}'
    assert not worker.ran.wait(0.2), "the execution started before its StartExecution answer was written"
    assert list(body) == []
    assert worker.ran.wait(5)

    outside = _Worker()
    ExecutionWorker.start(outside)  # type: ignore[arg-type]
    assert outside.ran.wait(5)


def test_json_paths_are_parsed_by_module_level_parse_calls_and_cached_once_installed():
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    assert "parse(path)" in inspect.getsource(json_path.extract_json), "moto parses JSONPath elsewhere now"
    assert "parse(self.result_path_src)" in inspect.getsource(result_path.ResultPath._eval_body)
    moto_seam.install_step_functions()
    assert json_path.parse("$.Payload") is json_path.parse("$.Payload")
    assert json_path.extract_json("$.Payload.a", {"Payload": {"a": [1]}}) == [1]


def _signed(service: str, query: str = "", path: str = "/") -> dict:
    credential = f"Credential=AKIAEXAMPLE/20261124/us-east-1/{service}/aws4_request"
    return {"PATH_INFO": path, "QUERY_STRING": query,
            "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 {credential}, SignedHeaders=host, Signature=0"}


def test_only_requests_that_need_step_functions_wait_for_its_patches():
    from scones.local.emulator.moto_host import _needs_step_functions

    assert _needs_step_functions(_signed("states")) and _needs_step_functions(_signed("events"))
    assert _needs_step_functions(_signed("s3", "notification")), "an S3 → EventBridge trigger is configured through these"
    assert _needs_step_functions({"PATH_INFO": "/bucket/key", "QUERY_STRING": ""}), "unsigned requests wait, to be safe"
    for service in ("sagemaker", "iam", "sts", "lambda", "logs"):
        assert not _needs_step_functions(_signed(service))
    assert not _needs_step_functions(_signed("s3", path="/bucket/models/model.tar.gz"))
    assert not _needs_step_functions({"PATH_INFO": "/moto-api/", "QUERY_STRING": ""})


def test_the_access_log_has_werkzeugs_line_and_the_operation(moto_server: int, capfd: pytest.CaptureFixture[str]):
    connection = http.client.HTTPConnection("127.0.0.1", moto_server, timeout=10)
    signed = "AWS4-HMAC-SHA256 Credential=a/20250101/us-east-1/logs/aws4_request"
    _call(connection, "POST", "/", b"{}", **{"Authorization": signed, "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                                          "Content-Type": "application/x-amz-json-1.0"})  # fmt: skip
    _call(connection, "POST", "/", b"{}", **{"Authorization": signed, "X-Amz-Target": "Evil\x1b[31m"})
    lines = capfd.readouterr().err.splitlines()
    assert any(line.startswith("127.0.0.1 - - [") and line.endswith('] "POST / HTTP/1.1" 200 - Logs_20140328.DescribeLogGroups')
               for line in lines), lines  # fmt: skip
    assert not any("\x1b" in line for line in lines), "control characters from the request reach the log"

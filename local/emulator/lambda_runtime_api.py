"""The Lambda Runtime API that one execution environment's runtime client talks to.

AWS gives every execution environment an HTTP endpoint at $AWS_LAMBDA_RUNTIME_API; the runtime
(here AWS's own `awslambdaric`) long-polls `GET /2018-06-01/runtime/invocation/next`, runs the
handler and posts `.../invocation/{id}/response` or `.../invocation/{id}/error`, or
`.../init/error` when the handler cannot be loaded. One server per environment, on 127.0.0.1 and
a free port, because the API has no environment id in its paths.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
MAX_RESPONSE_BYTES = 6_291_556  # AWS's synchronous response limit, as its error message states it
_RESULT_PATH = re.compile(rf"{API}/invocation/([^/]+)/(response|error)")


@dataclass(frozen=True)
class Outcome:
    """How an invocation (or the init phase) ended, from the Runtime API's side."""

    kind: str  # "response", "error", "init_error", "timeout" or "exited"
    body: bytes = b""
    error_type: str | None = None
    picked_up: bool = True  # False: the environment died before it took the invocation


class RuntimeApi:
    """State of one environment's API: the invocation on offer and how it ended."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._offer: tuple[str, bytes, dict[str, str]] | None = None
        self._current: str | None = None
        self._picked_up = False
        self._outcome: Outcome | None = None
        self.ready = False
        self.closed = False
        self.init_error: Outcome | None = None
        self.exit_status: int | None = None
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        threading.Thread(target=self._server.serve_forever, name="lambda-runtime-api", daemon=True).start()

    @property
    def address(self) -> str:
        """The value of AWS_LAMBDA_RUNTIME_API: host:port, no scheme."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def wait_ready(self, deadline: float) -> bool:
        """True once the runtime asked for its first invocation or reported an init error."""
        with self._changed:
            while not (self.ready or self.init_error or self.exit_status is not None):
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    return False
            return True

    def invoke(self, request_id: str, event: bytes, headers: dict[str, str], deadline: float) -> Outcome:
        """Offer one invocation and wait for its result, the environment's death, or `deadline`."""
        with self._changed:
            self._offer, self._current, self._picked_up, self._outcome = (request_id, event, headers), request_id, False, None
            self._changed.notify_all()
            while self._outcome is None and self.exit_status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Outcome("timeout", picked_up=self._picked_up)
                self._changed.wait(remaining)
            self._offer, self._current = None, None
            return self._outcome or Outcome("exited", picked_up=self._picked_up)

    def exited(self, status: int) -> None:
        with self._changed:
            self.exit_status = status
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()
        threading.Thread(target=self._stop_server, daemon=True).start()  # shutdown() waits for the poll loop

    def _stop_server(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- called by the HTTP handler ---------------------------------------------------------------

    def next_invocation(self) -> tuple[str, bytes, dict[str, str]] | None:
        """Blocks until an invocation is on offer; None when the environment is going away."""
        with self._changed:
            self.ready = True
            self._changed.notify_all()
            while self._offer is None and not self.closed:
                self._changed.wait()
            if self.closed:
                return None
            offer, self._offer, self._picked_up = self._offer, None, True
            return offer

    def post(self, path: str, body: bytes, error_type: str | None) -> HTTPStatus:
        if path == f"{API}/init/error":
            with self._changed:
                self.init_error = Outcome("init_error", body, error_type)
                self._changed.notify_all()
            return HTTPStatus.ACCEPTED
        match = _RESULT_PATH.fullmatch(path)
        if not match:
            return HTTPStatus.NOT_FOUND
        with self._changed:
            if match.group(1) != self._current or not self._picked_up or self._outcome is not None:
                return HTTPStatus.BAD_REQUEST  # not the invocation in flight, or already answered
            status = HTTPStatus.ACCEPTED
            if match.group(2) == "error":
                self._outcome = Outcome("error", body, error_type)
            elif len(body) > MAX_RESPONSE_BYTES:
                self._outcome, status = Outcome("too_large", body[:0], "Function.ResponseSizeTooLarge"), HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            else:
                self._outcome = Outcome("response", body)
            self._changed.notify_all()
            return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: RuntimeApi

    def handle_error(self, request: object, client_address: object) -> None:
        """A runtime that dies mid-request is the runner's news (Runtime.ExitError), not a traceback here."""


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: the runtime client reuses one connection for every call."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            self._reply(HTTPStatus.NOT_FOUND, b'{"errorType":"NotFound"}')
            return
        offer = self.server.api.next_invocation()
        if offer is None:
            self.close_connection = True
            self._reply(HTTPStatus.GONE, b'{"errorType":"EnvironmentShutdown"}')
            return
        request_id, event, headers = offer
        self._reply(HTTPStatus.OK, event, {"Lambda-Runtime-Aws-Request-Id": request_id, **headers})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, b'{"errorType":"InvalidContentLength"}')
            return
        body = self.rfile.read(length)
        status = self.server.api.post(self.path, body, self.headers.get(ERROR_TYPE_HEADER))
        reply = b'{"status":"OK"}' if status == HTTPStatus.ACCEPTED else b'{"errorType":"%s"}' % status.phrase.replace(" ", "").encode()
        self._reply(status, reply)

    def _reply(self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

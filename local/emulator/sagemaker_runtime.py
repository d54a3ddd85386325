"""The SageMaker Runtime API on the moto host's URL: InvokeEndpoint routed to the endpoint's server.

boto3's sagemaker-runtime client sends `POST /endpoints/{EndpointName}/invocations` to
AWS_ENDPOINT_URL like every other service; this WSGI layer in front of moto forwards it, body
and headers intact, to a model server of that endpoint (the control plane picks the variant)
and answers AWS's errors itself when there is none. Everything else goes to moto unchanged.
`GET /_scones/sagemaker/endpoints` lists endpoints and their servers (for `scones status` and
the tests); `POST /_scones/sagemaker/endpoints/{name}/stop-servers|restart-servers` simulate an
instance failure and its replacement.
"""
from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from scones.local.emulator.sagemaker_endpoints import EndpointControlPlane, ModelServer

INVOKE_PATH = re.compile(r"/endpoints/(?P<name>[^/]+)/invocations")
ADMIN_PATH = re.compile(r"/_scones/sagemaker/endpoints(?:/(?P<name>[^/]+)/(?P<action>stop-servers|restart-servers))?")
FORWARDED_REQUEST_HEADERS = ("content-type", "accept")  # plus every x-amzn-sagemaker-* header
FORWARDED_RESPONSE_HEADERS = ("content-type", "x-amzn-errortype", "x-amzn-sagemaker-custom-attributes")
VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
INVOKE_TIMEOUT_S = 60.0  # SageMaker's real-time invocation limit

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ConnectionPool:
    """Keep-alive connections to the model servers, shared by moto's request threads."""

    def __init__(self) -> None:
        self._idle: dict[str, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def request(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            connection, reused = self._take(url)
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if reused and attempt == 1:  # a keep-alive connection the server had closed
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            self._give_back(url, connection)
            return response.status, response.getheaders(), payload
        raise AssertionError("unreachable")

    def _take(self, url: str) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(url)
            if idle:
                return idle.pop(), True
        parts = urlsplit(url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=INVOKE_TIMEOUT_S), False

    def _give_back(self, url: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(url, []).append(connection)


class RuntimeRouter:
    """WSGI middleware: InvokeEndpoint to the endpoint's model server, the rest to moto."""

    def __init__(self, app: WsgiApp, plane: EndpointControlPlane, default_account_id: str) -> None:
        self.app = app
        self.plane = plane
        self.default_account_id = default_account_id
        self.pool = _ConnectionPool()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        invoke = INVOKE_PATH.fullmatch(path)
        if invoke and method == "POST":
            return self._invoke(unquote(invoke.group("name")), environ, start_response)
        admin = ADMIN_PATH.fullmatch(path)
        if admin:
            return self._admin(admin.group("name"), admin.group("action"), method, start_response)
        return self.app(environ, start_response)

    def _invoke(self, name: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if "CONTENT_TYPE" in environ:
            headers["content-type"] = environ["CONTENT_TYPE"]
        route = self.plane.route(name, self.default_account_id, headers.get("x-amzn-sagemaker-target-variant"))
        if route.server is None:
            return _error(start_response, route.error_code, route.status, route.message)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        forwarded = {k: v for k, v in headers.items() if k in FORWARDED_REQUEST_HEADERS or k.startswith("x-amzn-sagemaker-")}
        return self._forward(route.server, body, forwarded, start_response)

    def _forward(self, server: ModelServer, body: bytes, headers: dict[str, str],
                 start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, response_headers, payload = self.pool.request(server.url, body, headers)
        except OSError as error:  # the instance is gone: SageMaker's front end answers for it
            return _error(start_response, "ServiceUnavailable", 503,
                          f"endpoint instance for variant {server.variant} is unavailable: {error}")
        kept = [(k, v) for k, v in response_headers if k.lower() in FORWARDED_RESPONSE_HEADERS]
        kept += [(VARIANT_HEADER, server.variant), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {http.client.responses.get(status, '')}", kept)
        return [payload]

    def _admin(self, name: str | None, action: str | None, method: str, start_response: StartResponse) -> Iterable[bytes]:
        if name is None and method == "GET":
            return _json(start_response, 200, {"Endpoints": self.plane.describe()})
        if name is not None and method == "POST":
            try:
                if action == "stop-servers":
                    return _json(start_response, 200, {"stopped": self.plane.stop_servers(name)})
                self.plane.restart_servers(name)
                return _json(start_response, 200, {"restarted": name})
            except KeyError:
                return _error(start_response, "ValidationError", 400, f"no endpoint {name}")
        return _error(start_response, "ValidationError", 405, f"{method} not allowed here")


def _json(start_response: StartResponse, status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(f"{status} {http.client.responses.get(status, '')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers])
    return [body]


def _error(start_response: StartResponse, code: str, status: int, message: str) -> list[bytes]:
    """AWS's error shape for the Runtime API: code in x-amzn-ErrorType, JSON message."""
    return _json(start_response, status, {"message": message}, (("x-amzn-ErrorType", code),))

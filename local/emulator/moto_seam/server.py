"""The seam's server section: moto's WSGI app, served by our host process.
"""
from __future__ import annotations

import functools
import io
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from scones.local.emulator.internal_failures import answer_failures_as_aws
from scones.local.emulator.moto_seam.backend_regions import list_regions_from_metadata
from scones.local.emulator.replacement import replace_once

KEEP_ALIVE_IDLE_S = 60.0  # an idle kept-alive connection (and its thread) goes after this
MAX_CACHED_HOSTS = 4096


def keep_alive_handler() -> type:
    """moto's request handler, keeping HTTP/1.1 connections open as AWS's endpoints do.

    werkzeug's dev server closes every connection (`Connection: close`), because it cannot drain an
    unread request body before the next request line. So every AWS call made a new TCP connection
    and a new server thread, about ten per execution of the workflow, each waiting for the GIL on a
    busy host. Here the body (Content-Length) is read before the app runs, so the connection is clean
    afterwards and the header is dropped; chunked bodies, HTTP/1.0 and `Connection: close` requests
    keep werkzeug's behaviour."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveMotoRequestHandler(MotoRequestHandler):
        timeout = KEEP_ALIVE_IDLE_S
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall on a kept connection
        _keep_alive = False

        def run_wsgi(self) -> None:
            length = _plain_body_length(self.request_version, self.headers)
            if length is None:
                return super().run_wsgi()
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                del self.headers["Expect"]
            socket_file, self.rfile = self.rfile, io.BytesIO(self.rfile.read(length))
            self._keep_alive = True
            try:
                super().run_wsgi()
            finally:
                self.rfile, self._keep_alive = socket_file, False

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """werkzeug's access line plus the operation a JSON-protocol request names (X-Amz-Target),
            written to stderr directly: werkzeug's way, through `logging` with a date formatted per line,
            was 6 % of the host's GIL time in warm executions."""
            request = self.requestline.translate(self._control_char_table)
            target = self.headers.get("X-Amz-Target", "").translate(self._control_char_table) if self.headers else ""
            line = f'{self.address_string()} - - [{self.log_date_time_string()}] "{request}" {code} {size}'
            sys.stderr.write(f"{line} {target}\n" if target else f"{line}\n")

        def send_header(self, keyword: str, value: str) -> None:
            if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
                return
            super().send_header(keyword, value)

    return KeepAliveMotoRequestHandler


def _plain_body_length(version: str, headers: Any) -> int | None:
    """The request body's length when the connection can stay open after it, else None."""
    if version != "HTTP/1.1" or headers.get("Connection", "").lower() == "close" or "Transfer-Encoding" in headers:
        return None
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        return None
    return length if length >= 0 else None


def make_server(host: str, port: int) -> Any:
    """moto's WSGI app on a threaded werkzeug server (as ThreadedMotoServer builds it, with keep-alive
    connections), not yet serving.

    A request that crashes moto gets AWS's 500 InternalFailure (internal_failures.py), which SDKs retry.
    MOTO_PORT is set to the bound port: moto's Step Functions calls Lambda at localhost:$MOTO_PORT.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server as make_werkzeug_server

    serialise_recorder_writes()
    list_regions_from_metadata()
    cache_backend_lookup()
    cache_action_method_names()
    build_operation_routers_once()
    app = answer_failures_as_aws(DomainDispatcherApplication(create_backend_app))
    server = make_werkzeug_server(host, port, app, threaded=True, request_handler=keep_alive_handler())
    os.environ["MOTO_PORT"] = str(server.server_port)
    return server


def serialise_recorder_writes() -> None:
    """One request at a time into moto's request recording (`/moto-api/recorder/`).

    `moto.moto_api._internal.recorder.models.Recorder._record_request` appends each request as a JSON
    line with two unlocked writes; on our threaded host, concurrent requests (deploy_stack creates the
    functions side by side) interleave them into lines that are not JSON. Idempotent."""
    from moto.moto_api._internal.recorder.models import Recorder

    def wrap(record: Callable[..., None]) -> Callable[..., None]:
        lock = threading.Lock()

        @functools.wraps(record)
        def serialised(self: Any, *args: Any, **kwargs: Any) -> None:
            with lock:
                record(self, *args, **kwargs)

        return serialised

    replace_once(Recorder, "_record_request", wrap)


def cache_backend_lookup() -> None:
    """Which backend serves a host is looked up once per host name.

    `DomainDispatcherApplication.get_backend_for_host` tries moto's ~400 URL patterns in turn (a regex
    match each) for every request: 3.7 % of the host's GIL time in a warm burst (py-spy --gil). The
    patterns are moto's static index, so the answer for a host never changes. Idempotent."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    def wrap(lookup: Callable[[Any, str | None], Any]) -> Callable[[Any, str | None], Any]:
        answers: dict[str | None, Any] = {}

        @functools.wraps(lookup)
        def cached(self: Any, host: str | None) -> Any:
            if host in answers:
                return answers[host]
            answer = lookup(self, host)
            if len(answers) < MAX_CACHED_HOSTS:  # hosts come from requests: keep the cache bounded
                answers[host] = answer
            return answer

        return cached

    replace_once(DomainDispatcherApplication, "get_backend_for_host", wrap)


def cache_action_method_names() -> None:
    """The response class's method names (`BaseResponse.call_action` checks the action against them) are
    listed once per class and shape, not with `inspect.getmembers` on every request (3.5 % of the
    host's GIL time in a warm burst). The key includes how many attributes each class of the MRO has, so
    a method the seam adds later (TestState, StartSyncExecution) is seen. Idempotent."""
    from moto.core import responses

    def wrap(names_of: Callable[[Any], list[str]]) -> Callable[[Any], frozenset[str]]:
        @functools.lru_cache(maxsize=512)
        def names(clazz: type, shape: tuple[int, ...]) -> frozenset[str]:
            return frozenset(names_of(clazz))

        def method_names_from_class(clazz: Any) -> frozenset[str]:
            # getmembers reads __annotations__, which Python then creates in the class: not a change
            return names(clazz, tuple(len(vars(klass)) - ("__annotations__" in vars(klass)) for klass in clazz.__mro__))

        return method_names_from_class

    replace_once(responses, "method_names_from_class", wrap)


def build_operation_routers_once() -> None:
    """A service's REST operation router is built once, without URL builders nobody calls.

    moto routes a rest-json or rest-xml request (Lambda, S3, ...) with the werkzeug Map that
    `ServiceOperationRouter._get_router` builds the first time it sees the protocol, with no lock:
    `scones up`'s parallel Lambda calls each built Lambda's (91 rules). werkzeug compiles two URL
    builders per rule (source generated with `ast`, then `compile`: ~90 % of the build), and moto's
    routers only ever match. Here the router is built under a lock, and moto's SmithyRule compiles a
    builder the first time it is called. Idempotent."""
    from moto.core.routing import ServiceOperationRouter, SmithyRule

    lock = threading.Lock()

    def wrap_get_router(get_router: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
        @functools.wraps(get_router)
        def built_once(self: Any, protocol: str) -> Any:
            router = self._routers.get(protocol)
            if router is not None:
                return router
            with lock:
                return get_router(self, protocol)

        return built_once

    def wrap_compile_builder(compile_builder: Callable[[Any, bool], Any]) -> Callable[[Any, bool], Any]:
        @functools.wraps(compile_builder)
        def compiled_when_called(self: Any, append_unknown: bool = True) -> Callable[..., Any]:
            def build(rule: Any, *args: Any, **kwargs: Any) -> Any:
                compiled = compile_builder(rule, append_unknown)
                setattr(rule, "_build_unknown" if append_unknown else "_build", compiled.__get__(rule, None))
                return compiled(rule, *args, **kwargs)

            return build

        return compiled_when_called

    replace_once(ServiceOperationRouter, "_get_router", wrap_get_router)
    replace_once(SmithyRule, "_compile_builder", wrap_compile_builder)

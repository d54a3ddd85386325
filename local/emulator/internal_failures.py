"""A request that crashes moto answers as AWS's own 500s do, so the SDKs retry it as they would on AWS.

moto's backends are not thread-safe (getmoto/moto#372): on our threaded host a request that iterates
a backend's dict while another request adds to it (IAM GetRole while CreateRole runs, as deploy_stack
creates its functions side by side) raises `RuntimeError: dictionary changed size during iteration`.
werkzeug then answered an HTML page, which botocore's query-protocol parser cannot read: the caller got
`ResponseParserError` instead of a retry. AWS's services answer transient faults with HTTP 500
`InternalFailure` (its common errors) in the protocol's error shape, and botocore retries any 500 in
both its legacy and standard modes. Here the failure is answered that way: JSON for the JSON and
rest-json protocols (an X-Amz-Target request, Lambda), S3's own `<Error>` with its code
`InternalError`, the query protocol's `<ErrorResponse>` otherwise, and the code in `x-amzn-ErrorType`
too. moto's NotImplementedError (a feature it lacks) is answered 501 `NotImplemented` instead, which
botocore does not retry. The traceback still goes to the host's log.
"""
from __future__ import annotations

import functools
import json
import sys
import traceback
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

from scones.local.emulator.http_headers import signed_service

CODE = "InternalFailure"
S3_CODE = "InternalError"  # S3's name for it
MESSAGE = "We encountered an internal error. Please try again."
NOT_IMPLEMENTED = "NotImplemented"  # 501: botocore retries 500, 502, 503 and 504 only
NOT_IMPLEMENTED_MESSAGE = "The local stack (moto) does not implement this"
# Control characters as \\xNN, as http.server's access log writes them; newlines stay (the traceback's lines).
_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 0x0A}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def answer_failures_as_aws(app: WsgiApp) -> WsgiApp:
    """`app`, with an exception raised before its response started turned into AWS's 500."""

    def answering(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except Exception as error:
            sys.stderr.write(traceback.format_exc().translate(_ESCAPED))  # the request's text, made printable
            status, headers, body = internal_failure(environ, error)
            start_response(status, headers, sys.exc_info())  # re-raises if the response had started
            return [body]

    return answering


def internal_failure(environ: dict[str, Any], error: Exception) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and body of AWS's InternalFailure in the request's protocol; 501 NotImplemented
    for moto's NotImplementedError, which is no transient fault."""
    request_id = str(uuid.uuid4())
    service = signed_service(environ)
    if isinstance(error, NotImplementedError):  # moto lacks the feature: no retry will help
        status, code, message = "501 Not Implemented", NOT_IMPLEMENTED, f"{NOT_IMPLEMENTED_MESSAGE}: {error}"
    else:
        status, code = "500 Internal Server Error", S3_CODE if service == "s3" else CODE
        message = f"{MESSAGE} (local: {type(error).__name__}: {error})"
    if "HTTP_X_AMZ_TARGET" in environ or protocol_of(service) in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1" if "HTTP_X_AMZ_TARGET" in environ else "application/json"
    else:
        fields = f"<Code>{code}</Code><Message>{escape(message)}</Message>"
        body = (f"<Error>{fields}<RequestId>{request_id}</RequestId></Error>" if service == "s3" else
                f"<ErrorResponse><Error><Type>Receiver</Type>{fields}</Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()  # fmt: skip
        content_type = "application/xml" if service == "s3" else "text/xml"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)]  # fmt: skip
    return status, headers, body


@functools.lru_cache(maxsize=64)
def protocol_of(signing_name: str | None) -> str | None:
    """The protocol of the service signed for, where its signing name is a botocore service name."""
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import create_loader

    if not signing_name:
        return None
    try:
        return create_loader().load_service_model(signing_name, "service-2")["metadata"]["protocol"]
    except (DataNotFoundError, KeyError):
        return None

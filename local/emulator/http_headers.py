"""HTTP header parsing for the moto host's servers without the `email` package.

Every request the moto host serves (moto's werkzeug server, each Lambda environment's Runtime API)
goes through `http.server.BaseHTTPRequestHandler.parse_request`, which calls
`http.client.parse_headers`: it joins the header lines and hands them to `email.parser.Parser`, a
general MIME parser. A profile of warm executions (py-spy --gil on the moto host) put a fifth of the
host's GIL time there, about 4 ms per execution of the workflow (a dozen requests). `parse_headers`
here reads the same lines with the same limits and builds the same `HTTPMessage` from (name, value)
pairs as the email parser's compat32 policy stores them; `install_fast_header_parsing` puts it in
`http.client` for this process (the moto host's, where responses read by `http.client` benefit too),
with http.server's Date header (email.utils.formatdate per response) and its access-log time
formatted once a second.
"""
from __future__ import annotations

import email.utils
import http.client
import http.server
import re
import time
from collections.abc import Callable
from typing import BinaryIO

MAX_LINE = 65536  # http.client._MAXLINE (tests/unit/test_http_headers.py checks both)
MAX_HEADERS = 100  # http.client._MAXHEADERS
_END = (b"\r\n", b"\n", b"")
_SIGNED_SERVICE = re.compile(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request")


def signed_service(environ: dict) -> str | None:
    """The service a WSGI request is signed for (SigV4's credential scope), None when it is unsigned."""
    signed = _SIGNED_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return signed.group(1) if signed else None


def parse_headers(fp: BinaryIO, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """`http.client.parse_headers`: the header block of fp as an HTTPMessage (names and values as the
    email parser keeps them: value stripped of leading blanks and the line end, folded lines joined)."""
    lines: list[str] = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if len(lines) >= MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in _END:
            break
        lines.append(line.decode("iso-8859-1"))
    message = _class()
    name, value = None, ""
    for text in lines:
        if text[:1] in (" ", "\t"):  # a folded line continues the previous value (none: the email parser drops it)
            value += text if name is not None else ""
            continue
        if name is not None:
            message[name] = value.rstrip("\r\n")
        name, separator, value = text.partition(":")
        if not separator:  # not a header line: the email parser stops reading headers here
            name = None
            break
        value = value.lstrip(" \t")
    if name is not None:
        message[name] = value.rstrip("\r\n")
    return message


def install_fast_header_parsing() -> None:
    """In this process: http.client.parse_headers (and so http.server's request parsing) without the email
    parser, and http.server's Date header formatted once a second."""
    http.client.parse_headers = parse_headers  # type: ignore[assignment]
    http.server.BaseHTTPRequestHandler.date_time_string = date_time_string  # type: ignore[method-assign]
    http.server.BaseHTTPRequestHandler.log_date_time_string = log_date_time_string  # type: ignore[method-assign]


class _OnceASecond:
    """A text that changes with the second it names: rendered once a second, not once a call."""

    def __init__(self, render: Callable[[int], str]) -> None:
        self._render = render
        self._cached: tuple[int, str] = (-1, "")  # one tuple, replaced whole: threads see a matching pair

    def __call__(self) -> str:
        second = int(time.time())
        if self._cached[0] != second:
            self._cached = (second, self._render(second))
        return self._cached[1]


_http_date = _OnceASecond(lambda second: email.utils.formatdate(second, usegmt=True))


def _log_time_text(second: int) -> str:
    """http.server's access-log time for `second`: local time, "25/Nov/2026 02:00:00"."""
    t = time.localtime(second)
    month = http.server.BaseHTTPRequestHandler.monthname[t.tm_mon]
    return f"{t.tm_mday:02d}/{month:>3}/{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


_log_time = _OnceASecond(_log_time_text)


def date_time_string(self: object, timestamp: float | None = None) -> str:
    """`BaseHTTPRequestHandler.date_time_string` formatted once a second, not once a response."""
    if timestamp is not None:
        return email.utils.formatdate(timestamp, usegmt=True)
    return _http_date()


def log_date_time_string(self: http.server.BaseHTTPRequestHandler) -> str:
    """`BaseHTTPRequestHandler.log_date_time_string` (local time, "25/Nov/2026 02:00:00") once a second."""
    return _log_time()


_ORIGINAL_LOG_DATE_TIME_STRING = http.server.BaseHTTPRequestHandler.log_date_time_string  # what the tests compare with

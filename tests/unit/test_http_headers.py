"""http_headers.parse_headers gives what http.client's email-based parser gives, and fails where it fails."""
from __future__ import annotations

import http.client
import http.server
import inspect
import io

import pytest

from scones.local.emulator import http_headers

BLOCKS = [
    b"Host: 127.0.0.1:5000\r\nContent-Length: 12\r\nX-Amz-Target: AWSStepFunctions.StartExecution\r\n\r\nbody",
    b"Authorization: AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/s3/aws4_request, SignedHeaders=host\r\n\r\n",
    b"X-Dup: one\r\nx-dup: two\r\nEmpty:\r\nSpaced:   padded value  \r\n\r\n",
    b"Folded: first\r\n  second\r\n\tthird\r\nNext: n\r\n\r\n",
    b"Bare-LF: yes\nOther: 1\n\n",
    b"Colon: a:b:c\r\n\r\n",
    b"\r\n",
    b"",
]


def _stdlib(block: bytes) -> http.client.HTTPMessage:
    headers = http.client._read_headers(io.BytesIO(block))  # type: ignore[attr-defined]
    import email.parser

    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(b"".join(headers).decode("iso-8859-1"))


@pytest.mark.parametrize("block", BLOCKS)
def test_same_headers_as_the_email_parser(block: bytes):
    ours, theirs = http_headers.parse_headers(io.BytesIO(block)), _stdlib(block)
    assert ours.items() == theirs.items()
    assert ours.get("content-length") == theirs.get("content-length")
    assert ours.get_all("x-dup") == theirs.get_all("x-dup")


def test_reads_the_header_block_and_no_further():
    stream = io.BytesIO(BLOCKS[0])
    http_headers.parse_headers(stream)
    assert stream.read() == b"body"


def test_limits_are_the_stdlibs():
    assert (http_headers.MAX_LINE, http_headers.MAX_HEADERS) == (http.client._MAXLINE, http.client._MAXHEADERS)  # type: ignore[attr-defined]
    with pytest.raises(http.client.LineTooLong):
        http_headers.parse_headers(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        http_headers.parse_headers(io.BytesIO(b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n"))


def test_http_server_parses_requests_through_http_client_parse_headers():
    source = inspect.getsource(http.server.BaseHTTPRequestHandler.parse_request)
    assert "http.client.parse_headers(" in source, "http.server no longer calls http.client.parse_headers: re-check http_headers"
    assert "self.date_time_string()" in inspect.getsource(http.server.BaseHTTPRequestHandler.send_response)


def test_date_is_the_stdlibs():
    import email.utils
    import time

    now = email.utils.parsedate_to_datetime(http_headers.date_time_string(None)).timestamp()
    assert abs(now - time.time()) < 2
    assert http_headers.date_time_string(None, 0) == "Thu, 01 Jan 1970 00:00:00 GMT"



def test_log_time_is_the_stdlibs_formatted_once_a_second():
    import time

    handler = object.__new__(http.server.BaseHTTPRequestHandler)
    while time.time() % 1 > 0.5:  # both calls in one second
        time.sleep(0.1)
    cached = http_headers.log_date_time_string(handler)
    assert cached == http_headers._ORIGINAL_LOG_DATE_TIME_STRING(handler)
    assert http_headers.log_date_time_string(handler) is cached

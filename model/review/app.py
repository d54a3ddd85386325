"""HTTP in and out for `scones review`: the page, its JSON API and the photos, over a ReviewStore.

The page is static (HTML, JS, CSS from this package); everything from S3 reaches it as JSON and
is put into the page as text, never as markup, and the Content-Security-Policy allows no inline
script. Requests must name this server's own host (no DNS rebinding) and writes must be JSON
from this server's own origin (no cross-site form posts).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .documents import InvalidAnswer
from .store import ConcurrentAnswers, ImageUnavailable, ItemNotFound, ReviewStore

STATIC = {"": ("page.html", "text/html; charset=utf-8"), "review.js": ("review.js", "text/javascript"),
          "review.css": ("review.css", "text/css")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ERROR_STATUS = {ItemNotFound: 404, ImageUnavailable: 404, InvalidAnswer: 400, ConcurrentAnswers: 409}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


async def error_response(request: Request, error: Exception) -> Response:
    """Named errors to HTTP, once: a missing item 404, a bad answer 400, S3 trouble 502."""
    status = next((code for kind, code in ERROR_STATUS.items() if isinstance(error, kind)), 502)
    return JSONResponse({"error": type(error).__name__, "message": str(error)}, status, headers=SECURITY_HEADERS)


def parse_time(value: Any, now: datetime) -> datetime:
    """The page's own clock for when it showed an item, kept within [now - 1 day, now]."""
    try:
        shown = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return now
    shown = shown if shown.tzinfo else shown.replace(tzinfo=timezone.utc)
    return now if shown > now or (now - shown).days >= 1 else shown


def item_view(item: str, record: dict) -> dict:
    """What the page shows of a review record; only plain values, never markup."""
    return {
        "item": item,
        "image": record.get("image"),
        "labels": list(record.get("labels") or []),
        "probabilities": list(record.get("inferences") or []),
        "label": record.get("label"),
        "confidence": record.get("confidence"),
        "threshold": record.get("threshold"),
        "reason": record.get("reason"),
        "recorded_at": record.get("recorded_at"),
        "execution_arn": record.get("execution_id"),
    }


def create_app(store: ReviewStore, reviewer: str, *, second_opinion: bool = False, host: str = "127.0.0.1") -> Starlette:
    # Bound to every interface, the page is reached by names we cannot know: the Host check is off then.
    allowed_hosts = None if host in ("0.0.0.0", "::") else {*LOCAL_HOSTS, host}

    async def static(request: Request) -> Response:
        if request.path_params.get("name", "") not in STATIC:
            return JSONResponse({"error": "NotFound", "message": "no such file"}, 404, headers=SECURITY_HEADERS)
        name, media_type = STATIC[request.path_params.get("name", "")]
        body = files(__package__).joinpath("static", name).read_bytes()
        return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

    async def queue(request: Request) -> Response:
        state = await run_in_threadpool(store.queue, reviewer if second_opinion else None)
        return JSONResponse({
            "reviewer": reviewer, "bucket": store.bucket, "total": state.total, "answered": state.answered,
            "waiting": [{"item": item, "since": when.isoformat()} for item, when in state.waiting],
        }, headers=SECURITY_HEADERS)

    async def item(request: Request) -> Response:
        name = request.path_params["item"]
        return JSONResponse(item_view(name, await run_in_threadpool(store.record, name)), headers=SECURITY_HEADERS)

    async def image(request: Request) -> Response:
        png = await run_in_threadpool(store.image_png, request.path_params["item"])
        return Response(png, media_type="image/png", headers=SECURITY_HEADERS)

    async def answer(request: Request) -> Response:
        body, now = await json_body(request), datetime.now(timezone.utc)
        document = await run_in_threadpool(store.answer, request.path_params["item"], str(body.get("label")), reviewer,
                                           parse_time(body.get("shown_at"), now), now)
        return JSONResponse(document["humanAnswers"][-1], headers=SECURITY_HEADERS)

    async def undo(request: Request) -> Response:
        body = await json_body(request)
        document = await run_in_threadpool(store.undo, request.path_params["item"], reviewer, str(body.get("submissionTime")))
        return JSONResponse({"remaining_answers": len((document or {}).get("humanAnswers", []))}, headers=SECURITY_HEADERS)

    async def json_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidAnswer(f"the request body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise InvalidAnswer("the request body must be a JSON object")
        return body

    app = Starlette(routes=[
        Route("/", static), Route("/static/{name:str}", static),
        Route("/api/queue", queue), Route("/api/items/{item:str}", item), Route("/api/items/{item:str}/image", image),
        Route("/api/items/{item:str}/answer", answer, methods=["POST"]),
        Route("/api/items/{item:str}/undo", undo, methods=["POST"]),
    ], exception_handlers={kind: error_response for kind in (*ERROR_STATUS, ClientError, BotoCoreError)})
    app.add_middleware(GuardMiddleware, allowed_hosts=allowed_hosts)
    return app


class GuardMiddleware:
    """Refuses foreign Host headers (DNS rebinding) and cross-origin or non-JSON writes (cross-site posts)."""

    def __init__(self, app: Any, allowed_hosts: set[str] | None):
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await JSONResponse({"error": "Forbidden", "message": refusal}, 403, headers=SECURITY_HEADERS)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> str | None:
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return f"host {host!r} is not served here"
        if request.method != "GET":
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return "writes must be application/json"
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
                return f"origin {origin!r} may not write here"
        return None

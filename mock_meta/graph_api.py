"""The Graph surface: any ``/vNN.N/`` prefix or none, answered in Graph's envelopes.

A tiny dispatcher (not one FastAPI route per endpoint) so that batch requests run the very
same handlers as direct calls. Unknown paths answer Graph's 400 envelopes, never a 500.

>>> split_version(["v25.0", "me", "messages"])
('v25.0', ['me', 'messages'])
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_meta.graph_call import GraphAnswer, GraphCall, error_answer
from mock_meta.graph_errors import GraphError, base_headers, graph_error, new_fbtrace_id
from mock_meta.graph_nodes import (
    app_subscriptions,
    debug_token,
    me_accounts,
    messenger_profile,
    node_get,
    page_subscribed_apps,
)
from mock_meta.graph_send import handle_send
from mock_meta.runtime import MockRuntime
from mock_meta.send_validation import decode_form_value, parse_send_body

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 50
_VERSION = re.compile(r"^v\d{1,3}(\.\d{1,3})?$")
_METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH")

Handler = Callable[[MockRuntime, GraphCall], Awaitable[GraphAnswer]]


def split_version(segments: list[str]) -> tuple[str | None, list[str]]:
    if segments and _VERSION.match(segments[0]):
        return segments[0], segments[1:]
    return None, segments


# Paths the FastAPI app answers; everything else is Graph.
_EXACT = frozenset({"/metrics", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"})
_PREFIX = "/_mock/"


class GraphSurface:
    """Pure ASGI middleware answering every Graph path itself (the load-test hot path skips
    FastAPI routing) and passing ``/_mock/``, ``/metrics`` and the docs to the app."""

    def __init__(self, app: ASGIApp, runtime: MockRuntime) -> None:
        self.app = app
        self.rt = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in _EXACT or path.startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        trace_id = new_fbtrace_id()
        version, segments = split_version([s for s in path.split("/") if s])
        served = version or self.rt.settings.graph_version
        try:
            raw = await _read_body(request)
            fields = parse_send_body(request.headers.get("content-type", ""), raw)
            call = GraphCall(
                method=request.method,
                segments=segments,
                query=dict(request.query_params),
                fields=fields,
                authorization=request.headers.get("authorization"),
                version=served,
                traceparent=request.headers.get("traceparent"),
            )
            answer = await dispatch(self.rt, call)
        except GraphError as err:
            answer = error_answer(err)
        await _http_response(answer, served, trace_id)(scope, receive, send)


async def dispatch(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """Route one Graph call (direct or from a batch) to its handler."""
    try:
        handler = _route(call)
        return await handler(rt, call)
    except GraphError as err:
        return error_answer(err)


def _route(call: GraphCall) -> Handler:
    seg, method = call.segments, call.method
    if not seg:
        if method == "POST" and call.param("batch") is not None:
            return handle_batch
        raise graph_error(100, None, "Unsupported request: the root path needs a batch parameter")
    if len(seg) == 2:
        edge = seg[1]
        if edge == "messages" and method == "POST":
            return handle_send
        if edge == "accounts" and seg[0] == "me" and method == "GET":
            return me_accounts
        if edge == "subscriptions" and method in ("GET", "POST", "DELETE"):
            return app_subscriptions
        if edge == "subscribed_apps" and method in ("GET", "POST", "DELETE"):
            return page_subscribed_apps
        if edge == "messenger_profile" and method in ("GET", "POST", "DELETE"):
            return messenger_profile
    if len(seg) == 1 and method == "GET":
        return debug_token if seg[0] == "debug_token" else node_get
    if len(seg) == 1:
        raise graph_error(
            100,
            33,
            f"Unsupported {method.lower()} request. Object with ID '{seg[0][:64]}' "
            "does not exist, cannot be loaded due to missing permissions, or does not support "
            "this operation.",
        )
    raise graph_error(2500, None, f"Unknown path components: /{'/'.join(seg[1:])[:100]}")


async def handle_batch(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``POST /`` with ``batch=[{method, relative_url, body?}]`` (≤ 50), answered in order."""
    batch = call.param("batch")
    if isinstance(batch, str):
        batch = decode_form_value(batch)
    if not isinstance(batch, list) or not batch:
        raise graph_error(100, None, "param batch must be a non-empty JSON array")
    if len(batch) > MAX_BATCH:
        raise graph_error(
            100, None, f"Too many requests in batch message. Maximum batch size is {MAX_BATCH}"
        )
    include_headers = str(call.param("include_headers", "true")).lower() != "false"
    answers = []
    for item in batch:
        sub = _batch_call(item, call)
        answer = await dispatch(rt, sub) if isinstance(sub, GraphCall) else error_answer(sub)
        part: dict[str, Any] = {"code": answer.status, "body": json.dumps(answer.body)}
        if include_headers:
            headers = {"Content-Type": "application/json; charset=UTF-8", **answer.headers}
            part["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
        answers.append(part)
    return GraphAnswer(200, answers)


def _batch_call(item: Any, parent: GraphCall) -> GraphCall | GraphError:
    if not isinstance(item, dict) or not isinstance(item.get("relative_url"), str):
        return graph_error(100, None, "Each batch item needs a relative_url")
    method = str(item.get("method", "GET")).upper()
    if method not in _METHODS:
        return graph_error(100, None, f"Unsupported batch method {method[:10]}")
    url = urlsplit(item["relative_url"])
    _, segments = split_version([s for s in url.path.split("/") if s])
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    body = item.get("body") or ""
    try:
        fields = {k: decode_form_value(v) for k, v in parse_qsl(str(body), keep_blank_values=True)}
    except ValueError:
        return graph_error(100, None, "Invalid batch item body")
    # The batch's own token applies to items that carry none.
    token = parent.token()
    if token and "access_token" not in query and "access_token" not in fields:
        fields["access_token"] = token
    return GraphCall(method, segments, query, fields, None, parent.version, parent.traceparent)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise graph_error(100, None, "Request body is too large")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise graph_error(100, None, "Request body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _http_response(answer: GraphAnswer, version: str, trace_id: str) -> Response:
    body = answer.body
    if answer.status >= 400 and isinstance(body, dict) and "error" in body:
        body["error"]["fbtrace_id"] = trace_id
    headers = {**base_headers(version, trace_id), **answer.headers}
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        status_code=answer.status,
        headers=headers,
        media_type="application/json; charset=UTF-8",
    )

"""``POST /{page-id|me}/messages``: validate → faults → rate limit → answer → receipts.

This is the load test's hot path, so it does only what an answer needs: O(1) state lookups,
one journal record (no copy of the request), one counter and one histogram observation; the
counter's label children and the usage header are cached. Echo, delivery and read webhooks
are handed to the delivery engine (queued, not awaited).
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from typing import Any

from mock_meta.attachments import cdn_url, check_attachment_ids, media_attachments
from mock_meta.graph_assets import check_persona
from mock_meta.graph_body import UploadedFile
from mock_meta.graph_call import GraphAnswer, GraphCall, error_answer
from mock_meta.graph_errors import GraphError, business_use_case_usage
from mock_meta.graph_threads import send_thread_control
from mock_meta.metrics import MockMetrics, send_error_code_label
from mock_meta.runtime import MockRuntime
from mock_meta.send_validation import ValidSend, authorize, validate_send

# Per-metrics cache of counter children by error-code label: ``.labels()`` costs several times
# the increment. Weak keys, so a mock's cache goes with its metrics.
_request_counters: weakref.WeakKeyDictionary[MockMetrics, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


async def handle_send(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    started = time.perf_counter()
    fields = call.send_fields()
    valid: ValidSend | None = None
    usage_pct = 0
    sent = False
    try:
        grant = authorize(
            call.token(),
            call.param("appsecret_proof"),
            directory=rt.state,
            require_proof=rt.policy.require_appsecret_proof,
        )
        valid = validate_send(
            fields,
            node=call.segments[0],
            grant=grant,
            directory=rt.state,
            now=rt.clock.now(),
            rules=rt.policy.send_rules(),
        )
        check_persona(rt, valid.page_id, fields)
        if rt.thread_owner(valid.page_id, valid.psid) not in (None, valid.app_id):
            raise GraphError(2018300)  # another app owns the conversation (reference §9.7)
        routing = send_thread_control(rt, valid.page_id, valid.psid, valid.app_id, fields)
        if valid.message is not None:
            check_attachment_ids(valid.message, rt.attachments, valid.page_id, now=rt.clock.now())
        late_error: GraphError | None = None
        fault = rt.faults.take(valid.psid)
        if fault is not None:
            if fault.spec.latency_ms:
                await asyncio.sleep(fault.spec.latency_ms / 1000)
            late_error = fault.error()
            if late_error is not None and not fault.spec.sent:
                raise late_error
        decision = rt.limiter.check(valid.page_id, now=rt.clock.now())
        usage_pct = decision.usage_pct
        if not decision.allowed:
            rt.metrics.rate_limit_hits.inc()
            raise GraphError(613)
        answer = _succeed(rt, call, valid, fields)
        sent = True
        rt.threads.touch(valid.page_id, valid.psid, now=rt.clock.now())
        if routing is not None:
            routing()
        if late_error is not None:  # sent, but the caller is told it failed (1/1357046)
            raise late_error
    except GraphError as err:
        answer = error_answer(err)
        if not sent:  # a sent-anyway fault is journalled as the message the user got
            _journal(rt, call, fields, valid, answer, err)
        _count(rt.metrics, send_error_code_label(err.code))
    else:
        _count(rt.metrics, "none")
    if valid is not None:
        answer.headers["x-business-use-case-usage"] = _usage_header(valid.page_id, usage_pct)
    rt.metrics.send_api_duration.observe(time.perf_counter() - started)
    return answer


def _count(metrics: MockMetrics, error_code: str) -> None:
    children = _request_counters.get(metrics)
    if children is None:
        children = _request_counters[metrics] = {}
    child = children.get(error_code)
    if child is None:
        child = children[error_code] = metrics.send_api_requests.labels(error_code=error_code)
    child.inc()


@functools.lru_cache(maxsize=1024)
def _usage_header(page_id: str, usage_pct: int) -> str:
    # A pure function of its arguments; pages and usage percentages are few.
    return business_use_case_usage(page_id, usage_pct)


def _succeed(
    rt: MockRuntime, call: GraphCall, valid: ValidSend, fields: dict[str, Any]
) -> GraphAnswer:
    if not valid.is_message:
        body: dict[str, Any] = {"recipient_id": valid.psid}
        _journal(rt, call, fields, valid, GraphAnswer(200, body), None)
        return GraphAnswer(200, body)
    message_id = rt.builder.new_mid()
    body = {"recipient_id": valid.psid, "message_id": message_id}
    upload = fields.get("filedata")
    upload = upload if isinstance(upload, UploadedFile) else None
    reusable = _reusable(valid.message or {})
    if reusable is not None:  # is_reusable: the answer carries the saved id (reference §5.4)
        url = reusable["payload"].get("url") or (cdn_url(upload) if upload else "")
        body["attachment_id"] = rt.attachments.save(
            valid.page_id, reusable["type"], url, now=rt.clock.now()
        )
    answer = GraphAnswer(200, body)
    _journal(rt, call, fields, valid, answer, None, message_id=message_id)
    rt.emit_receipts(valid, message_id, upload=upload)
    return answer


def _journal(
    rt: MockRuntime,
    call: GraphCall,
    fields: dict[str, Any],
    valid: ValidSend | None,
    answer: GraphAnswer,
    err: GraphError | None,
    *,
    message_id: str | None = None,
    traceparent: str | None = None,
) -> None:
    psid = valid.psid if valid is not None else _psid_of(fields)
    rt.journal.record_send(
        page_id=valid.page_id if valid is not None else None,
        psid=psid,
        request=fields,
        response=answer.body,
        status=answer.status,
        error_code=err.code if err is not None else None,
        error_subcode=err.subcode if err is not None else None,
        message_id=message_id,
        kind="sender_action" if fields.get("sender_action") is not None else "message",
        call=call.provenance(),
    )


def _reusable(message: dict[str, Any]) -> dict[str, Any] | None:
    attachment = message.get("attachment")
    if attachment in media_attachments(message) and attachment["payload"].get("is_reusable"):
        return dict(attachment)
    return None


def _psid_of(fields: dict[str, Any]) -> str | None:
    recipient = fields.get("recipient")
    if isinstance(recipient, dict) and isinstance(recipient.get("id"), str | int):
        return str(recipient["id"])[:64]
    return None

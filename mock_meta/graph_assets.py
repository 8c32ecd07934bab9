"""Graph endpoints for a Page's reusable assets: the Attachment Upload API and personas.

Reference §9.5 (``POST /{page|me}/message_attachments``) and §9.6 (``/{page}/personas``,
``GET|DELETE /{persona-id}``). Handlers share the :class:`GraphCall` shape with batch items.
"""

from __future__ import annotations

from typing import Any

from mock_meta.attachments import MEDIA_TYPES, cdn_url
from mock_meta.graph_body import UploadedFile
from mock_meta.graph_call import GraphAnswer, GraphCall
from mock_meta.graph_errors import graph_error
from mock_meta.graph_nodes import page_grant, page_of, unknown_object
from mock_meta.personas import MAX_NAME_CHARS
from mock_meta.runtime import MockRuntime


async def upload_attachment(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """Save an attachment by URL or as an uploaded ``filedata`` part; answer its id."""
    grant = page_of(rt, call)
    message = call.param("message")
    attachment = message.get("attachment") if isinstance(message, dict) else None
    if not isinstance(attachment, dict) or attachment.get("type") not in MEDIA_TYPES:
        raise graph_error(
            100,
            None,
            f"param message[attachment][type] must be one of {{{', '.join(MEDIA_TYPES)}}}",
        )
    payload = attachment.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    upload = call.param("filedata")
    url = payload.get("url")
    if isinstance(upload, UploadedFile):
        url = cdn_url(upload)
    if not isinstance(url, str) or not url:
        raise graph_error(100, None, "param message[attachment][payload][url] or filedata needed")
    attachment_id = rt.attachments.save(grant.page_id, attachment["type"], url, now=rt.clock.now())
    return GraphAnswer(200, {"attachment_id": attachment_id})


async def page_personas(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET`` lists the Page's personas; ``POST`` creates one (name <= 50 chars)."""
    grant = page_of(rt, call)
    if call.method == "GET":
        data = [p.public() for p in rt.personas.of_page(grant.page_id)]
        return GraphAnswer(200, {"data": data, "paging": {"cursors": {"before": "", "after": ""}}})
    name = call.param("name")
    picture = call.param("profile_picture_url")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise graph_error(100, None, f"param name must be 1 to {MAX_NAME_CHARS} characters")
    if not isinstance(picture, str) or not picture.startswith(("http://", "https://")):
        raise graph_error(100, None, "param profile_picture_url must be a URL")
    persona = rt.personas.create(grant.page_id, name, picture)
    return GraphAnswer(200, {"id": persona.persona_id})


def is_persona(rt: MockRuntime, node: str) -> bool:
    return rt.personas.get(node) is not None


async def persona_node(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /{persona-id}`` reads it, ``DELETE`` soft-deletes it (its Page's token only)."""
    page_id = page_grant(rt, call).page_id
    persona = rt.personas.get(call.segments[0])
    if persona is None or persona.page_id != page_id:
        raise unknown_object(call, call.segments[0])
    if call.method == "DELETE":
        rt.personas.delete(persona.persona_id)
        return GraphAnswer(200, {"success": True})
    return GraphAnswer(200, persona.public())


def check_persona(rt: MockRuntime, page_id: str, fields: dict[str, Any]) -> None:
    """A Send API ``persona_id`` must be a live persona of the sending Page [U: Meta's code]."""
    persona_id = fields.get("persona_id")
    if persona_id is not None and not rt.personas.usable(page_id, str(persona_id)):
        raise graph_error(100, None, "param persona_id must be a persona of this Page")

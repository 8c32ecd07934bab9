"""One Graph call and its answer, independent of HTTP (batch items are calls too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mock_meta.graph_errors import GraphError, new_fbtrace_id
from mock_meta.send_validation import decode_form_value, extract_token


@dataclass
class GraphCall:
    method: str
    segments: list[str]
    query: dict[str, str]
    fields: dict[str, Any]
    authorization: str | None
    version: str
    # The caller's W3C trace context, kept in the journal (batch items share the batch's).
    traceparent: str | None = None

    def param(self, name: str, default: Any = None) -> Any:
        """A parameter from the body, else the query string (Graph accepts both)."""
        if name in self.fields:
            return self.fields[name]
        return self.query.get(name, default)

    def token(self) -> str | None:
        return extract_token(self.query, self.fields, self.authorization)

    def send_fields(self) -> dict[str, Any]:
        """Body fields plus query parameters other than credentials (for the Send API)."""
        if len(self.query) <= 2:  # the usual case: only access_token (and appsecret_proof)
            extra = {k: v for k, v in self.query.items() if k not in _CREDENTIALS}
            if not extra:
                return self.fields
        merged = {k: decode_form_value(v) for k, v in self.query.items() if k not in _CREDENTIALS}
        merged.update(self.fields)
        return merged


_CREDENTIALS = frozenset({"access_token", "appsecret_proof"})


@dataclass
class GraphAnswer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(err: GraphError) -> GraphAnswer:
    return GraphAnswer(err.http_status, err.body(new_fbtrace_id()), err.headers())

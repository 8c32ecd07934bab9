"""One Graph call and its answer, independent of HTTP (batch items are calls too)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mock_meta.graph_body import decode_form_value
from mock_meta.graph_errors import GraphError, new_fbtrace_id
from mock_meta.send_validation import TokenSource, locate_token

# Request headers the journal keeps (trace context and client identity; never credentials).
OBSERVED_HEADERS = ("traceparent", "tracestate", "baggage", "user-agent", "content-type")


@dataclass
class GraphCall:
    method: str
    segments: list[str]
    query: dict[str, str]
    fields: dict[str, Any]
    authorization: str | None
    version: str
    # Provenance for the journal: the path as called, the version asked for (None when
    # unversioned), the observed headers, and a batch item's inherited token.
    path: str = ""
    requested_version: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    inherited_token: bool = False

    def param(self, name: str, default: Any = None) -> Any:
        """A parameter from the body, else the query string (Graph accepts both)."""
        if name in self.fields:
            return self.fields[name]
        return self.query.get(name, default)

    def token(self) -> str | None:
        return locate_token(self.query, self.fields, self.authorization)[0]

    def token_source(self) -> TokenSource | None:
        if self.inherited_token:
            return "batch"
        return locate_token(self.query, self.fields, self.authorization)[1]

    def provenance(self) -> dict[str, Any]:
        """What the journal records about how the call was made (no token, no proof)."""
        return {
            "method": self.method,
            "path": self.path,
            "version": self.version,
            "requested_version": self.requested_version,
            "token_source": self.token_source(),
            "headers": self.headers,
        }

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


_OBSERVED = frozenset(name.encode() for name in OBSERVED_HEADERS)


def observed_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The :data:`OBSERVED_HEADERS` among an ASGI scope's raw headers (values capped).

    One pass over the raw pairs: this runs on every Send API call.
    """
    return {
        name.decode("latin-1"): value[:512].decode("latin-1")
        for name, value in raw
        if name in _OBSERVED
    }


@dataclass
class GraphAnswer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(err: GraphError) -> GraphAnswer:
    return GraphAnswer(err.http_status, err.body(new_fbtrace_id()), err.headers())

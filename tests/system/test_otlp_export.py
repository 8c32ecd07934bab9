"""A real bot process exports its trace over OTLP/HTTP, configured only by ``OTEL_*`` variables.

An in-test receiver on loopback decodes each export with ``opentelemetry-proto`` (the wire
format a collector reads), and the test checks the whole chain of one message:
server ``POST /webhook`` -> producer -> consumer (child and link) -> Send API client span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

pytestmark = pytest.mark.system

PSID = "6100000000000042"


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf trace exports on 127.0.0.1 and keeps the decoded spans."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _accept(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            for resource_spans in request.resource_spans:
                self.resources.append(_attributes(resource_spans.resource.attributes))
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._accept(body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _attributes(pairs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


def test_one_message_is_exported_as_a_server_producer_consumer_client_chain(
    start_bot: Callable[..., Any],
    send_api_recorder: Any,
    webhook_events: Any,
    poll: Callable[..., Any],
    otlp_receiver: OtlpReceiver,
) -> None:
    bot = start_bot(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp_receiver.endpoint,
        OTEL_SERVICE_NAME="bot-under-test",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    assert bot.post_events([webhook_events.text("m_otlp_1", psid=PSID)]).status_code == 200
    assert send_api_recorder.wait_for(lambda r: r.replies_to(PSID))

    def chain() -> dict[int, Span] | None:
        by_kind = {s.kind: s for s in list(otlp_receiver.spans)}
        wanted = (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER)
        wanted += (Span.SPAN_KIND_CLIENT,)
        return by_kind if all(k in by_kind for k in wanted) else None

    spans = poll(chain, timeout=30, what="four span kinds exported")
    server = spans[Span.SPAN_KIND_SERVER]
    producer = spans[Span.SPAN_KIND_PRODUCER]
    consumer = spans[Span.SPAN_KIND_CONSUMER]
    client = spans[Span.SPAN_KIND_CLIENT]

    assert server.name == "POST /webhook"
    assert producer.parent_span_id == server.span_id
    assert consumer.parent_span_id == producer.span_id
    assert [link.span_id for link in consumer.links] == [producer.span_id]
    assert client.parent_span_id == consumer.span_id
    assert {s.trace_id for s in (server, producer, consumer, client)} == {server.trace_id}

    resource = otlp_receiver.resources[0]
    assert resource["service.name"] == "bot-under-test"
    assert resource["deployment.environment"] == "ci"

    # One semantic-convention version (the stable HTTP one), and no raw user id anywhere.
    client_attributes = _attributes(client.attributes)
    assert client_attributes["http.request.method"] == "POST"
    assert client_attributes["http.response.status_code"] == 200
    all_attributes = [_attributes(s.attributes) for s in otlp_receiver.spans]
    assert not any(k in a for a in all_attributes for k in ("http.method", "http.status_code"))
    assert "user.hash" in _attributes(consumer.attributes)
    assert not any(PSID in str(v) for a in all_attributes for v in a.values())

"""Graph error envelopes, statuses and headers as Meta sends them (reference §5.7)."""

from __future__ import annotations

import json

from mock_meta.graph_errors import (
    GraphError,
    base_headers,
    business_use_case_usage,
    graph_error,
    new_fbtrace_id,
)


def test_outside_window_error_has_meta_envelope_and_400() -> None:
    err = graph_error(10, 2018278)
    body = err.body("AbCdEfGhIjK")["error"]
    assert err.http_status == 400
    assert body["message"].startswith("(#10) This message is sent outside of allowed window")
    assert body == {
        "message": body["message"],
        "type": "OAuthException",
        "code": 10,
        "error_subcode": 2018278,
        "fbtrace_id": "AbCdEfGhIjK",
    }


def test_transient_codes_answer_500_with_is_transient() -> None:
    for code in (1, 2):
        err = graph_error(code)
        assert err.http_status == 500
        assert err.body("t")["error"]["is_transient"] is True


def test_risky_1_1357046_is_a_400_without_is_transient() -> None:
    err = graph_error(1, 1357046)
    assert err.http_status == 400
    assert "is_transient" not in err.body("t")["error"]


def test_subcode_is_omitted_when_there_is_none() -> None:
    assert "error_subcode" not in graph_error(613).body("t")["error"]


def test_token_errors_have_no_prefix_and_a_www_authenticate_header() -> None:
    err = graph_error(190)
    assert err.message == "Invalid OAuth access token - Cannot parse access token"
    assert err.headers()["WWW-Authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')
    assert graph_error(100).headers() == {}


def test_custom_message_status_and_type_are_kept() -> None:
    err = GraphError(100, None, "boom", type_="GraphMethodException", http_status=403)
    body = err.body("t")["error"]
    assert (err.http_status, body["message"], body["type"]) == (
        403,
        "(#100) boom",
        "GraphMethodException",
    )


def test_unknown_codes_still_produce_a_well_formed_envelope() -> None:
    body = graph_error(424242).body("t")["error"]
    assert body["code"] == 424242 and body["message"].startswith("(#424242)")


def test_headers_name_the_served_version_and_trace_id() -> None:
    trace = new_fbtrace_id()
    headers = base_headers("v25.0", trace)
    assert headers["facebook-api-version"] == "v25.0"
    assert headers["x-fb-trace-id"] == trace and len(trace) == 11


def test_business_use_case_usage_is_json_keyed_by_page() -> None:
    usage = json.loads(business_use_case_usage("104501234567890", 150))
    entry = usage["104501234567890"][0]
    assert entry["type"] == "messenger" and entry["call_count"] == 100

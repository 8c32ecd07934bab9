"""Graph endpoints other than the Send API (reference §9): identity, subscriptions, profile.

Each handler takes the runtime and a :class:`GraphCall` and returns a :class:`GraphAnswer`
or raises :class:`GraphError`, so batch items and direct calls share them.
"""

from __future__ import annotations

from typing import Any

from mock_meta.graph_call import GraphAnswer, GraphCall
from mock_meta.graph_errors import GraphError, graph_error
from mock_meta.runtime import MockRuntime
from mock_meta.send_validation import authorize
from mock_meta.state import MESSAGING_FIELDS, App, TokenGrant

PROFILE_FIELDS = (
    "get_started",
    "greeting",
    "persistent_menu",
    "ice_breakers",
    "whitelisted_domains",
    "account_linking_url",
    "commands",
    "subject_to_new_eu_privacy_rules",
    "title",
    "description",
)
DEFAULT_USER_FIELDS = ("first_name", "last_name", "profile_pic", "id")
USER_FIELDS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "profile_pic",
    "locale",
    "timezone",
    "gender",
)


def page_grant(rt: MockRuntime, call: GraphCall) -> TokenGrant:
    grant: TokenGrant = authorize(
        call.token(),
        call.param("appsecret_proof"),
        directory=rt.state,
        require_proof=rt.policy.require_appsecret_proof,
    )
    return grant


def unknown_object(call: GraphCall, node: str) -> GraphError:
    return graph_error(
        100,
        33,
        f"Unsupported {call.method.lower()} request. Object with ID '{node[:64]}' does not "
        "exist, cannot be loaded due to missing permissions, or does not support this operation.",
    )


def page_of(rt: MockRuntime, call: GraphCall) -> TokenGrant:
    """The page a page-token call addresses (``me`` or its own id)."""
    grant = page_grant(rt, call)
    node = call.segments[0]
    if node not in ("me", grant.page_id):
        raise unknown_object(call, node)
    return grant


def fields_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [f.strip() for f in value.split(",") if f.strip()]
    return []


async def me_accounts(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /me/accounts``: the pages this token can act for, with their tokens."""
    token = call.token() or ""
    app = rt.state.app_for_app_token(token)
    grant = rt.state.token_grant(token)
    if app is None and grant is None:
        raise graph_error(190)
    data = []
    for page in rt.state.pages.values():
        owned = [t for t, app_id in page.tokens.items() if app is not None and app_id == app.app_id]
        if grant is not None and page.page_id == grant.page_id:
            owned = [token]
        if owned:
            data.append(
                {
                    "access_token": owned[0],
                    "category": "Business",
                    "category_list": [{"id": "2500", "name": "Business"}],
                    "name": page.name,
                    "id": page.page_id,
                    "tasks": [
                        "ADVERTISE",
                        "ANALYZE",
                        "CREATE_CONTENT",
                        "MESSAGING",
                        "MODERATE",
                        "MANAGE",
                    ],
                }
            )
    return GraphAnswer(
        200, {"data": data, "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}}}
    )


async def node_get(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /me``, ``GET /{page-id}`` and the User Profile API ``GET /{psid}``."""
    grant = page_grant(rt, call)
    node = call.segments[0]
    wanted = fields_list(call.param("fields"))
    if node in ("me", grant.page_id):
        page = rt.state.pages[grant.page_id]
        body: dict[str, Any] = {"name": page.name, "id": page.page_id}
        if "messaging_feature_status" in wanted:
            body["messaging_feature_status"] = {
                "hop_v2": False,
                "msgr_multi_app": True,
                "ig_multi_app": False,
            }
        return GraphAnswer(200, body)
    user = rt.state.user(grant.page_id, node)
    if user is None:
        raise unknown_object(call, node)
    profile = user.profile()
    unknown = [f for f in wanted if f not in USER_FIELDS]
    if unknown:
        raise graph_error(
            100, None, f"Tried accessing nonexisting field ({unknown[0][:40]}) on node type (User)"
        )
    selected = wanted or list(DEFAULT_USER_FIELDS)
    return GraphAnswer(200, {f: profile[f] for f in selected if f in profile} | {"id": user.psid})


async def debug_token(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``GET /debug_token?input_token=…`` with an app token (``APP_ID|APP_SECRET``)."""
    if rt.state.app_for_app_token(call.token() or "") is None:
        raise graph_error(190)
    grant = rt.state.token_grant(str(call.param("input_token", "")))
    if grant is None:
        data: dict[str, Any] = {
            "is_valid": False,
            "error": {"code": 190, "message": "Invalid OAuth access token."},
        }
        return GraphAnswer(200, {"data": data})
    data = {
        "app_id": grant.app_id,
        "type": "PAGE",
        "application": rt.state.apps[grant.app_id].name if grant.app_id in rt.state.apps else "",
        "expires_at": 0,
        "is_valid": True,
        "profile_id": grant.page_id,
        "scopes": ["pages_messaging", "pages_manage_metadata", "pages_show_list"],
    }
    return GraphAnswer(200, {"data": data})


def _app_of(rt: MockRuntime, call: GraphCall) -> App:
    app = rt.state.app_for_app_token(call.token() or "")
    if app is None:
        raise graph_error(190)
    if call.segments[0] != app.app_id:
        raise unknown_object(call, call.segments[0])
    return app


async def app_subscriptions(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``/{app-id}/subscriptions``: POST runs the verification handshake synchronously."""
    app = _app_of(rt, call)
    if call.method == "GET":
        data = []
        if app.fields:
            listed = [{"name": f, "version": rt.settings.graph_version} for f in sorted(app.fields)]
            data.append(
                {
                    "object": "page",
                    "callback_url": app.callback_url,
                    "active": True,
                    "fields": listed,
                }
            )
        return GraphAnswer(200, {"data": data})
    obj = call.param("object")
    if obj != "page":
        raise graph_error(100, None, "param object must be 'page' for Messenger subscriptions")
    if call.method == "DELETE":
        fields = fields_list(call.param("fields")) or None
        rt.state.unsubscribe_app(app.app_id, fields)
        for page_id in _pages_of_app(rt, app.app_id):
            rt.journal.record_subscription(app.app_id, page_id, "unsubscribed", fields=fields)
        return GraphAnswer(200, {"success": True})
    fields = fields_list(call.param("fields"))
    unknown = [f for f in fields if f not in MESSAGING_FIELDS]
    if not fields or unknown:
        raise graph_error(100, None, f"param fields must be a list of valid fields: {unknown[:3]}")
    callback_url = str(call.param("callback_url") or app.callback_url)
    verify_token = str(call.param("verify_token") or "")
    result = await rt.run_handshake(callback_url, verify_token)
    if not result.ok:
        raise graph_error(2200, None, result.graph_error_message())
    rt.state.subscribe_app(
        app.app_id, fields=fields, callback_url=callback_url, verify_token=verify_token
    )
    for page_id in _pages_of_app(rt, app.app_id):
        rt.journal.record_subscription(
            app.app_id, page_id, "fields_changed", fields=sorted(app.fields)
        )
    return GraphAnswer(200, {"success": True})


def _pages_of_app(rt: MockRuntime, app_id: str) -> list[str]:
    return [p.page_id for p in rt.state.pages.values() if app_id in p.subscriptions]


async def page_subscribed_apps(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``/{page-id}/subscribed_apps``: a disabled subscription is gone until POSTed again."""
    grant = page_of(rt, call)
    page = rt.state.pages[grant.page_id]
    if call.method == "GET":
        data = [
            {
                "category": "Business",
                "link": "https://example.com/",
                "name": rt.state.apps[sub.app_id].name if sub.app_id in rt.state.apps else "",
                "id": sub.app_id,
                "subscribed_fields": sorted(sub.fields),
            }
            for sub in page.subscriptions.values()
            if sub.active
        ]
        return GraphAnswer(200, {"data": data})
    if call.method == "DELETE":
        rt.state.unsubscribe_page(page.page_id, grant.app_id)
        rt.journal.record_subscription(grant.app_id, page.page_id, "unsubscribed")
        return GraphAnswer(200, {"success": True})
    fields = fields_list(call.param("subscribed_fields"))
    unknown = [f for f in fields if f not in MESSAGING_FIELDS]
    if not fields or unknown:
        raise graph_error(100, None, "param subscribed_fields must list valid webhook fields")
    rt.state.subscribe_page(page.page_id, grant.app_id, fields)
    rt.journal.record_subscription(grant.app_id, page.page_id, "subscribed", fields=fields)
    return GraphAnswer(200, {"success": True})


async def messenger_profile(rt: MockRuntime, call: GraphCall) -> GraphAnswer:
    """``/me/messenger_profile``: GET selected properties, POST merges, DELETE removes."""
    grant = page_of(rt, call)
    profile = rt.state.pages[grant.page_id].messenger_profile
    if call.method == "GET":
        wanted = fields_list(call.param("fields")) or list(PROFILE_FIELDS)
        selected = {k: profile[k] for k in wanted if k in profile}
        return GraphAnswer(200, {"data": [selected] if selected else []})
    if call.method == "DELETE":
        fields = fields_list(call.param("fields"))
        if not fields:
            raise graph_error(100, None, "param fields must be a non-empty array")
        for name in fields:
            profile.pop(name, None)
        return GraphAnswer(200, {"result": "success"})
    updates = {k: v for k, v in call.fields.items() if k not in ("access_token", "appsecret_proof")}
    unknown = [k for k in updates if k not in PROFILE_FIELDS]
    if not updates or unknown:
        raise graph_error(100, None, f"Invalid messenger profile properties: {sorted(unknown)[:3]}")
    if "persistent_menu" in updates and "get_started" not in {**profile, **updates}:
        raise graph_error(100, None, "A get_started button is required to set a persistent menu")
    profile.update(updates)
    return GraphAnswer(200, {"result": "success"})

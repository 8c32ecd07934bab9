"""What ``mock-meta serve`` prints at start: where everything is and which credentials work.

Only the documented public test defaults are ever printed; a secret set to anything else is
named by its environment variable, never shown.

>>> print(startup_banner(MockSettings(), "http://127.0.0.1:8081").splitlines()[0])
mock-meta: the fake Messenger Platform (Graph v25.0) at http://127.0.0.1:8081
"""

from __future__ import annotations

from pydantic import SecretStr

from mock_meta.settings import (
    DEFAULT_APP_SECRET,
    DEFAULT_PAGE_TOKEN,
    DEFAULT_VERIFY_TOKEN,
    MockSettings,
)


def startup_banner(settings: MockSettings, base_url: str) -> str:
    s = settings
    lines = [
        f"mock-meta: the fake Messenger Platform (Graph {s.graph_version}) at {base_url}",
        f"  Send API      POST {base_url}/{s.graph_version}/me/messages"
        f"  (bot: GRAPH_API_BASE={base_url})",
        f"  Control API   {base_url}/_mock/  (reference: {base_url}/docs)",
        f"  Metrics       {base_url}/metrics",
    ]
    if s.console:
        lines.insert(1, f"  Web console   {base_url}/")
    if s.seed_file is not None:
        lines.append(
            f"  World         apps, pages and users from {s.seed_file} (secrets not shown)"
        )
        return "\n".join(lines)
    lines += [
        f"  Webhooks to   {s.callback_url}  (app {s.app_id}, page {s.page_id})",
        "  Credentials   "
        + ", ".join(
            [
                _shown("app secret", s.app_secret, DEFAULT_APP_SECRET, "MOCK_META_APP_SECRET"),
                _shown(
                    "verify token", s.verify_token, DEFAULT_VERIFY_TOKEN, "MOCK_META_VERIFY_TOKEN"
                ),
                _shown("page token", s.page_token, DEFAULT_PAGE_TOKEN, "MOCK_META_PAGE_TOKEN"),
            ]
        ),
        f"  Test user     PSID {s.user_psid}",
    ]
    return "\n".join(lines)


def _shown(name: str, value: SecretStr, default: str, env: str) -> str:
    if value.get_secret_value() == default:
        return f"{name} {default}"
    return f"{name} from {env} (not shown)"

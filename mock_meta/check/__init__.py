"""``mock-meta check``: a conformance run against any Messenger bot, in any language.

The bot talks to this mock as its Graph API; the checks drive it through the mock (and a few
raw POSTs) and grade it on the platform's rules. See ``runner.run_checks`` and ``catalog.CHECKS``.
"""

from mock_meta.check.conversation import DEFAULT_CONVERSATION, Conversation, load_conversation
from mock_meta.check.report import CheckResult, ReportCard, Status
from mock_meta.check.runner import CheckOptions, check_ids, run_checks

__all__ = [
    "DEFAULT_CONVERSATION",
    "CheckOptions",
    "CheckResult",
    "Conversation",
    "ReportCard",
    "Status",
    "check_ids",
    "load_conversation",
    "run_checks",
]

"""Everything one running mock holds, wired once by ``create_app`` and shared by its routes.

Also the few operations that span collaborators: fan an event out to every subscribed app,
emit the receipts of a sent message, run a handshake, reset to the seed.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import httpx

from mock_meta.attachments import AttachmentStore, echo_attachments
from mock_meta.builders import STANDBY_TYPES, BuiltEvent, EventBuilder, as_standby
from mock_meta.chaos import Chaos
from mock_meta.clock import ControllableClock
from mock_meta.delivery import AppTarget, DeliveryEngine
from mock_meta.faults import FaultBook
from mock_meta.graph_body import UploadedFile
from mock_meta.graph_versions import ExpiredVersionPolicy
from mock_meta.handshake import HandshakeResult, verify_callback
from mock_meta.journal import Journal
from mock_meta.metrics import MockMetrics
from mock_meta.personas import PersonaBook
from mock_meta.rate_limit import PageRateLimiter
from mock_meta.retry_profile import PROFILES, RetryProfile
from mock_meta.send_validation import SendRules, ValidSend
from mock_meta.settings import MockSettings
from mock_meta.state import App, PlatformState
from mock_meta.threads import ThreadOwners


@dataclass
class Policy:
    """The Send API switches that ``PUT /_mock/settings`` may change at run time."""

    emit_echoes: bool
    emit_deliveries: bool
    emit_reads: bool
    require_appsecret_proof: bool
    enforce_retired_tags: bool
    require_messaging_type: bool
    window_seconds: float
    human_agent_window_seconds: float
    expired_graph_versions: ExpiredVersionPolicy

    @classmethod
    def from_settings(cls, settings: MockSettings) -> Policy:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: getattr(settings, name) for name in names})

    def send_rules(self) -> SendRules:
        return self._rules

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        # Cached so the hot path does not build a SendRules per call.
        self._rules = SendRules(
            require_appsecret_proof=self.require_appsecret_proof,
            enforce_retired_tags=self.enforce_retired_tags,
            require_messaging_type=self.require_messaging_type,
            window_seconds=self.window_seconds,
            human_agent_window_seconds=self.human_agent_window_seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def profile_from_settings(settings: MockSettings) -> RetryProfile:
    base = PROFILES.get(settings.retry_profile)
    if base is None:
        raise ValueError(
            f"unknown retry profile {settings.retry_profile!r}; known: {sorted(PROFILES)}"
        )
    return base.with_overrides(
        timeout_seconds=settings.delivery_timeout_seconds, success=settings.success_rule
    )


class MockRuntime:
    """The collaborators of one mock instance (no globals: one per ``create_app``)."""

    def __init__(
        self,
        settings: MockSettings,
        *,
        clock: ControllableClock,
        metrics: MockMetrics,
        http_client: httpx.AsyncClient,
        webhook_client: httpx.AsyncClient | None = None,
    ) -> None:
        """``http_client`` runs handshakes; webhooks go through the engine's own HTTP/1.1
        client unless ``webhook_client`` is given (tests pass a ``MockTransport`` one)."""
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.http_client = http_client
        self.state = PlatformState.from_settings(settings, metrics=metrics)
        self.journal = Journal(
            clock,
            metrics,
            retention=settings.journal_max_entries,
            reply_expected=settings.reply_expected_kinds,
        )
        self.faults = FaultBook()
        self.attachments = AttachmentStore()
        self.personas = PersonaBook()
        self.threads = ThreadOwners()
        self.limiter = PageRateLimiter(settings.rate_limit_per_page_per_second)
        self.policy = Policy.from_settings(settings)
        self.builder = EventBuilder(clock, random.Random())
        self.chaos = Chaos()
        self.profile = profile_from_settings(settings)
        self.engine = DeliveryEngine(
            clock=clock,
            journal=self.journal,
            metrics=metrics,
            profile=self.profile,
            chaos=self.chaos,
            subscriptions=self.state,
            client=webhook_client,
            max_in_flight=settings.delivery_concurrency,
            propagate_traceparent=settings.propagate_traceparent,
            timestamp_unit=settings.timestamp_unit,
        )

    # --- delivery ----------------------------------------------------------------------

    def deliver(self, built: BuiltEvent) -> list[str]:
        """Queue ``built`` for every app subscribed to its field; returns the delivery ids.

        While an app owns the thread, the others get it on ``standby[]`` (reference §3.14).
        """
        return [
            self._enqueue(app, event, built.mid)
            for app, event in self._routed(built)
            if self.state.is_delivering(app.app_id, built.page_id, event.field)
        ]

    def deliver_action(self, built: BuiltEvent, *, mid: str) -> list[str]:
        """Queue a user action for every app on the page, journaling unsubscribed ones as
        ``skipped`` (so a test sees *why* its bot got nothing). ``mid`` keys the journal."""
        routed = self._routed(built)
        if not routed:
            self.journal.action_not_delivered(mid, f"no app is subscribed to page {built.page_id}")
        return [self._enqueue(app, event, mid) for app, event in routed]

    def deliver_to(self, app_id: str, built: BuiltEvent) -> list[str]:
        """Queue an event meant for one app (a handover notice), if it is subscribed."""
        app = self.state.apps.get(app_id)
        if app is None or not self.state.is_delivering(app_id, built.page_id, built.field):
            return []
        return [self._enqueue(app, built, built.mid)]

    def note_owner_change(self, built: BuiltEvent) -> None:
        """A simulated Page Inbox handover moves the thread as the Graph endpoints would."""
        for key in ("pass_thread_control", "take_thread_control"):
            change = built.event.get(key)
            if isinstance(change, dict) and built.psid is not None:
                new_owner = change.get("new_owner_app_id")
                owner = None if new_owner is None else str(new_owner)
                self.threads.set_owner(built.page_id, built.psid, owner, now=self.clock.now())

    def thread_owner(self, page_id: str, psid: str | None) -> str | None:
        return None if psid is None else self.threads.owner(page_id, psid, now=self.clock.now())

    def _routed(self, built: BuiltEvent) -> list[tuple[App, BuiltEvent]]:
        page = self.state.pages.get(built.page_id)
        if page is None:
            return []
        apps = [self.state.apps[a] for a in page.subscriptions if a in self.state.apps]
        owner = self.thread_owner(built.page_id, built.psid)
        if owner is None or built.standby or built.event_type not in STANDBY_TYPES:
            return [(app, built) for app in apps]
        standby = as_standby(built)
        return [(app, built if app.app_id == owner else standby) for app in apps]

    def _enqueue(self, app: App, built: BuiltEvent, mid: str | None) -> str:
        return self.engine.enqueue(
            AppTarget(app.app_id, app.secret, app.callback_url),
            built.page_id,
            built.event,
            field=built.field,
            psid=built.psid,
            mid=mid,
            standby=built.standby,
            event_type=built.event_type.value,
        )

    def emit_receipts(
        self, valid: ValidSend, message_id: str, *, upload: UploadedFile | None = None
    ) -> None:
        """After a sent message: echo, then delivery, then (optionally) read — if subscribed."""
        policy = self.policy
        message = valid.message or {}
        if policy.emit_echoes:
            self.deliver(
                self.builder.echo(
                    valid.page_id,
                    valid.psid,
                    app_id=valid.app_id,
                    text=message.get("text"),
                    attachments=echo_attachments(
                        message, self.attachments, valid.page_id, upload=upload
                    ),
                    metadata=message.get("metadata"),
                    mid=message_id,
                )
            )
        watermark = self.builder.now_ms()
        if policy.emit_deliveries:
            self.deliver(self.builder.delivery(valid.page_id, valid.psid, [message_id], watermark))
        if policy.emit_reads:
            self.deliver(self.builder.read(valid.page_id, valid.psid, watermark))

    async def run_handshake(self, callback_url: str, verify_token: str) -> HandshakeResult:
        """The verification GET; an unusable URL is a failed handshake, not an exception."""
        try:
            url = httpx.URL(callback_url)
            usable = url.scheme in ("http", "https") and bool(url.host)
        except httpx.InvalidURL:
            usable = False
        if not usable:
            reason = f"callback URL {callback_url[:200]!r} is not a valid http(s) URL"
            return HandshakeResult(
                False, callback_url, "", None, None, reason, "connection_error", 0.0
            )
        return await verify_callback(
            callback_url,
            verify_token,
            client=self.http_client,
            timeout=self.profile.timeout_seconds,
        )

    # --- control -----------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seed: state, journal, faults, chaos, clock, limiter and policy."""
        self.state.reset()
        self.engine.reset()
        self.journal.clear()
        self.faults.reset()
        self.attachments.clear()
        self.personas.clear()
        self.threads.clear()
        self.chaos.configure(type(self.chaos.config)())
        self.clock.reset()
        self.limiter.configure(self.settings.rate_limit_per_page_per_second)
        self.policy = Policy.from_settings(self.settings)
        self.set_profile(profile_from_settings(self.settings))
        self.engine.timestamp_unit = self.settings.timestamp_unit

    def set_profile(self, profile: RetryProfile) -> None:
        self.profile = profile
        self.engine.profile = profile

"""The web console in a real browser, against a real bot process on loopback.

Each test acts as a person would (labels, buttons, the navigation) and writes screenshots of
the screens it visits under ``reports/browser/``.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from mock_meta.settings import DEFAULT_PAGE_TOKEN, DEFAULT_PSID
from tests.browser.conftest import ConsolePage, ConsoleWorld, point_seed_app_at
from tests.polling import eventually

pytestmark = pytest.mark.system

try:
    from playwright.async_api import expect
except ImportError:  # the fixtures skip (or fail under REQUIRE_SERVICES=1) with the reason
    expect = None


async def say(console: ConsolePage, text: str) -> None:
    field = console.page.get_by_label("Message", exact=True)
    await field.fill(text)
    await field.press("Enter")


async def sender_action(mock_url: str, action: str) -> None:
    async with httpx.AsyncClient(trust_env=False) as graph:
        response = await graph.post(
            f"{mock_url}/v25.0/me/messages",
            params={"access_token": DEFAULT_PAGE_TOKEN},
            json={"recipient": {"id": DEFAULT_PSID}, "sender_action": action},
        )
    assert response.status_code == 200, response.text


def thread(console: ConsolePage) -> Any:
    return console.page.get_by_role("log", name="Messages")


async def test_a_user_says_hi_and_the_bots_reply_appears(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    await console_page.open(console_world.url)

    await say(console_page, "hi")

    await expect(thread(console_page).get_by_text("You said: hi", exact=True)).to_be_visible()
    await expect(thread(console_page).locator(".msg.user")).to_have_text("hi")

    # Sender actions, as a bot sends them through the Send API: seen, then typing.
    for action in ("mark_seen", "typing_on"):
        await sender_action(console_world.url, action)
    await expect(thread(console_page).locator(".msg.user .seen")).to_have_text("Seen")
    await expect(thread(console_page).get_by_label("The bot is typing")).to_be_visible()
    await console_page.shoot("conversation")


async def test_a_new_user_sends_emoji_an_attachment_a_reaction_and_a_read(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    page = console_page.page
    await console_page.open(console_world.url)
    users = page.get_by_label("User", exact=True)
    await expect(users.locator("option")).to_have_count(1)
    await page.get_by_role("button", name="New user").click()
    await expect(users.locator("option")).to_have_count(2)
    psid = await users.input_value()
    assert psid != DEFAULT_PSID

    await page.get_by_role("button", name="Insert thumbs up").click()
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(thread(console_page).get_by_text("You said: 👍")).to_be_visible()
    await page.get_by_label("Attachment URL").fill("https://example.com/cat.jpg")
    await page.get_by_role("button", name="Send attachment").click()
    await expect(thread(console_page).get_by_text("I received your attachment.")).to_be_visible()
    await thread(console_page).get_by_role("button", name="React with a heart").last.click()
    await expect(thread(console_page)).to_contain_text("reacted love to a message")
    await expect(thread(console_page).get_by_label("You reacted love")).to_be_visible()
    await page.get_by_role("button", name="Mark as read").click()
    await expect(thread(console_page)).to_contain_text("read the conversation")

    actions = console_world.mock.runtime.journal.actions(psid=psid)
    assert [a.event_type for a in actions] == ["text", "attachment", "reaction", "read"]
    await console_page.shoot("user-actions")


async def test_tapping_a_quick_reply_sends_a_quick_reply_the_bot_receives(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    await console_page.open(console_world.url)
    await say(console_page, "menu")
    chips = thread(console_page).get_by_role("group", name="Quick replies")
    await expect(thread(console_page).get_by_role("group", name="Carousel")).to_contain_text(
        "Green shirt"
    )
    await console_page.shoot("templates")

    await chips.get_by_role("button", name="Green").focus()  # from the keyboard
    await console_page.page.keyboard.press("Enter")

    # The bot answers "You picked GREEN" only to a quick_reply event carrying that payload.
    await expect(thread(console_page).get_by_text("You picked GREEN")).to_be_visible()
    actions = console_world.mock.runtime.journal.actions(psid=DEFAULT_PSID)
    assert [a.event_type for a in actions] == ["text", "quick_reply"]
    await expect(chips).to_have_count(0)  # chips belong to the latest message only

    await thread(console_page).get_by_role("button", name="Buy Red").click()
    await expect(thread(console_page).get_by_text("Postback received: BUY_RED")).to_be_visible()
    await console_page.shoot("conversation")


async def a_text_delivery(world: ConsoleWorld, console: ConsolePage, text: str) -> Any:
    """The user says ``text`` and gets its reply; the Deliveries screen is shown, and the
    returned locator is the text's delivery."""
    await console.open(world.url)
    await say(console, text)
    await expect(thread(console).get_by_text(f"You said: {text}")).to_be_visible()
    await console.screen("Deliveries")
    return console.page.locator("details.delivery", has_text=" text → app")


async def test_a_delivery_shows_its_signed_bytes_and_can_be_redelivered_or_sent_raw(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    page = console_page.page
    text_delivery = await a_text_delivery(console_world, console_page, "show me the bytes")
    await text_delivery.locator("summary").click()
    headers = text_delivery.get_by_label("Headers")
    await expect(headers).to_contain_text("X-Hub-Signature-256: sha256=")
    await expect(text_delivery.get_by_label("Body bytes")).to_contain_text(
        '"text":"show me the bytes"'
    )
    await console_page.shoot("deliveries")
    await text_delivery.get_by_role("button", name="Redeliver").click()
    await expect(page.locator("details.delivery", has_text=" text → app")).to_have_count(2)

    await page.get_by_text("Send a raw signed event").click()
    raw = page.get_by_role("form", name="Raw signed event")
    await raw.get_by_role("button", name="POST to the callback").click()
    await expect(raw.locator("#raw-result")).to_contain_text('"status": 200')
    await raw.get_by_label("Signature").select_option("wrong")
    await raw.get_by_role("button", name="POST to the callback").click()
    await expect(raw.locator("#raw-result")).to_contain_text('"ok": false')


async def test_a_delivery_opened_just_before_a_refresh_stays_open(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    """A details element's toggle event comes a task after the click: a refresh in between
    built it closed again and hid its Redeliver button (seen once in CI)."""
    page = console_page.page
    text_delivery = await a_text_delivery(console_world, console_page, "keep me open")
    await expect(text_delivery).to_have_count(1)
    await page.evaluate(
        """() => {
            const text = [...document.querySelectorAll("details.delivery")]
                .find((d) => d.textContent.includes(" text → app"));
            text.querySelector("summary").click();
            delete renderedKeys.deliveries;  // a snapshot with news arrives before the toggle
            renderDeliveries();
        }"""
    )
    await text_delivery.get_by_role("button", name="Redeliver").click(timeout=5000)
    await expect(page.locator("details.delivery", has_text=" text → app")).to_have_count(2)


async def test_a_send_api_fault_armed_in_the_console_shows_a_failed_call_then_its_retry(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    page = console_page.page
    await console_page.open(console_world.url, "control")
    await page.get_by_label("Graph error code").fill("2")  # transient: the bot retries
    await page.get_by_label("Times (empty: until cleared)").fill("1")
    await page.get_by_role("button", name="Arm fault").click()
    await expect(page.get_by_role("list", name="Armed faults")).to_contain_text("code 2")
    await console_page.shoot("control")

    await console_page.screen("Conversation")
    await say(console_page, "still there?")
    await expect(thread(console_page).get_by_text("You said: still there?")).to_be_visible()
    await expect(thread(console_page).locator(".msg.bot.failed")).to_have_count(1)

    await console_page.screen("Send API")
    calls = page.locator("#send-list details.send")
    failed = calls.and_(page.locator("[data-ok=false]"))
    retry = calls.and_(page.locator("[data-retry=true]"))
    await expect(failed).to_contain_text("error 2")
    await expect(retry).to_contain_text("retry of #")
    await expect(retry).to_contain_text("“You said: still there?”")
    await retry.locator("summary").click()
    await expect(retry.get_by_role("heading", name="Answer")).to_be_visible()
    await console_page.shoot("sends")


async def test_advancing_the_clock_shows_the_alert_then_the_unsubscribe(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    page = console_page.page
    with socket.socket() as closed:  # a port nobody listens on: every webhook is refused
        closed.bind(("127.0.0.1", 0))
        point_seed_app_at(console_world.mock, f"http://127.0.0.1:{closed.getsockname()[1]}")
    await console_page.open(console_world.url, "control")
    await page.get_by_role("button", name="Freeze").click()
    await expect(page.locator("#clock")).to_contain_text("frozen")

    await console_page.screen("Conversation")
    await say(console_page, "anyone?")
    await console_page.screen("Deliveries")
    subscriptions = page.get_by_role("list", name="Subscriptions")
    await expect(page.locator("details.delivery[data-state=retrying]")).to_contain_text(
        "next retry"
    )
    await expect(subscriptions).to_contain_text("alert at")

    await console_page.screen("Control")
    await page.get_by_role("button", name="+15 min").click()
    await console_page.screen("Deliveries")
    alerts = page.get_by_role("list", name="Alerts")
    await expect(alerts).to_contain_text("failing_15m")
    await expect(subscriptions).to_contain_text("unsubscribe at")
    await console_page.shoot("deliveries-alert")

    await console_page.screen("Control")
    await page.get_by_role("button", name="+1 hour").click()
    await console_page.screen("Deliveries")
    await expect(alerts).to_contain_text("webhooks_disabled")
    await expect(subscriptions).to_contain_text("UNSUBSCRIBED")
    await console_page.shoot("deliveries-unsubscribed")

    await console_page.screen("Control")
    await page.get_by_role("button", name="Re-subscribe the app").click()
    await expect(page.locator("#world-detail")).to_contain_text(": subscribed")


async def test_the_console_works_against_the_express_peer(
    express_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    await console_page.open(express_world.url)

    await say(console_page, "hi from the console")

    reply = thread(console_page).get_by_text("You said: hi from the console")
    await expect(reply).to_be_visible()
    journal = express_world.mock.runtime.journal
    delivered = await eventually(
        lambda: [d for d in journal.deliveries() if d.state == "delivered"],
        what="the Express peer acknowledged the webhook",
    )
    assert delivered[0].attempts[0].status == 200
    await console_page.shoot("express")


async def test_every_control_is_labelled_and_screens_switch_from_the_keyboard(
    console_world: ConsoleWorld, console_page: ConsolePage
) -> None:
    page = console_page.page
    await console_page.open(console_world.url)
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                && !el.textContent.trim())
            .map((el) => el.outerHTML)"""
    )
    assert unlabelled == []
    await page.set_viewport_size({"width": 1024, "height": 700})  # a small laptop
    for screen in ("Deliveries", "Send API", "Control", "Conversation"):
        await console_page.screen(screen)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{screen} scrolls sideways at 1024 px"

    await page.get_by_role("link", name="Conversation").focus()
    await page.keyboard.press("Tab")  # to "Deliveries"
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("heading", name="Webhook deliveries")).to_be_visible()
    await expect(page.get_by_role("log", name="Messages")).to_be_hidden()

"""An FAQ bot: topics as quick replies, questions matched by regex, answers from one table.

python -m examples faq                              # a scripted chat against the mock
PYTHONPATH=. BOT_HANDLERS_MODULE=examples.faq_bot messenger-bot serve
"""

from __future__ import annotations

from bot.context import Context
from bot.messages import QuickReply, text
from bot.reply import Reply
from bot.routing import Handler, Router

# payload -> (quick-reply title, pattern a question matches, answer)
FAQ: dict[str, tuple[str, str, str]] = {
    "FAQ_HOURS": ("Opening hours", r"\b(hours?|open|close)", "We're open 9:00-18:00, Mon-Sat."),
    "FAQ_DELIVERY": ("Delivery", r"\b(deliver|shipping|ship)", "Delivery is free over 30 EUR."),
    "FAQ_RETURNS": ("Returns", r"\b(return|refund)", "Send anything back within 30 days."),
}

router = Router(name="faq")


def topics(prompt: str) -> Reply:
    return text(
        prompt, quick_replies=[QuickReply(title, key) for key, (title, _, _) in FAQ.items()]
    )


@router.on_postback("GET_STARTED")
def welcome(ctx: Context) -> Reply:
    return topics("Hi! What would you like to know?")


def answering(answer: str) -> Handler:
    def handler(ctx: Context) -> list[Reply]:
        return [Reply.text(answer), topics("Anything else?")]

    return handler


# A topic tapped (quick reply, or an ice breaker / menu postback), or a question typed.
for key, (_, pattern, answer) in FAQ.items():
    router.on_quick_reply(key)(answering(answer))
    router.on_postback(key)(answering(answer))
    router.on_text(regex=f"(?i){pattern}")(answering(answer))


@router.on_text
def not_understood(ctx: Context) -> Reply:
    return topics("Sorry, I didn't get that. Pick a topic:")

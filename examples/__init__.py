"""Example bots built on ``bot.routing``; run one against the mock: ``python -m examples faq``."""

"""Production Messenger webhook service: HTTP edge -> durable inbox -> workers -> Send API."""

__version__ = "0.1.0"

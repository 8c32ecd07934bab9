"""The web console: chat with a bot as a Messenger user, watch deliveries and Send API calls.

Plain HTML, CSS and JavaScript shipped in ``static/`` (no build step, no CDN: works offline),
fed by a server-sent-event stream of snapshots. ``install`` wires it into a mock app:

>>> app.graph = install(app, runtime, graph=app.graph, framework=app.framework)  # doctest: +SKIP
>>> # GET / is the console; its API lives under /_mock/console/
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from mock_meta.console.capture import WireCapture
from mock_meta.console.feed import ConsoleFeed
from mock_meta.console.routes import PREFIX, STATIC_DIR, RootPage, build_router
from mock_meta.runtime import MockRuntime

__all__ = ["PREFIX", "ConsoleFeed", "WireCapture", "install"]


def install(app: FastAPI, runtime: MockRuntime, *, graph: ASGIApp, framework: ASGIApp) -> ASGIApp:
    """Add the console's routes and files to ``app``; returns ``graph`` wrapped so that
    ``GET /`` reaches ``framework`` (the app's routing). Also starts the console's feed of
    journal records and its capture of webhook bytes."""
    feed, capture = ConsoleFeed(), WireCapture()
    runtime.journal.subscribe(feed)
    runtime.engine.observers.extend((feed, capture))
    app.include_router(build_router(runtime, feed, capture))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    return RootPage(graph, framework)

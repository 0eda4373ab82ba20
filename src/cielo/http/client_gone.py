"""Hearing that a request's client has gone, without a task per request where the server can say so.

`cielo up`'s HTTP protocol (api/server.py) puts WATCH_KEY in each request's scope: a function that takes a
callback and returns a function that unregisters it. The callback is called from the event loop when the
connection is lost while the callback is registered (at once, by `call_soon`, if it was lost already). Under
another ASGI server, or in-process tests, the key is absent and a handler waits for `http.disconnect` from
`receive()` in a task of its own instead (api/openai.py), which costs about 5 µs a request more.
"""

from __future__ import annotations

from collections.abc import Callable

WATCH_KEY = "cielo.watch_client_gone"

Watch = Callable[[Callable[[], None]], Callable[[], None]]

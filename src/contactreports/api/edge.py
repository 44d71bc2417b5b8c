"""The request body at the edge: what the server does not do about it, this middleware does.

Granian times out a request's head (server.py), but once the head is in, a client may send
its body a byte at a time for as long as it likes, holding a connection and a handler. The
body must have arrived within `Settings.body_timeout_seconds` of the handler's first read;
else the request is answered 408. Only the body is timed: after it, `receive` waits for the
client to go away, which a streamed export listens for as long as it runs.

An answer given before the body was read (a 413 for a body over the limit, a 401) must also
reach the client: a server that closes a connection with unread bytes makes the kernel reset
it, and the client, still sending, may lose the answer. So what is left of the body is read
and dropped after the answer (a "lingering close", as nginx does), within the same deadline
and up to `max_body_bytes`.
"""

from __future__ import annotations

import asyncio

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from contactreports.api.errors import ProblemError


class BodyDeadline:
    """ASGI middleware: a request's body must all arrive within `seconds` of its first read;
    what the app left unread is drained, up to `max_drain_bytes`, after its answer."""

    def __init__(self, app: ASGIApp, seconds: float, max_drain_bytes: int):
        self.app = app
        self.seconds = seconds
        self.max_drain_bytes = max_drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, self.seconds)
        await self.app(scope, body.receive, send)
        await body.drain(self.max_drain_bytes)


class _Body:
    def __init__(self, receive: Receive, seconds: float):
        self._receive = receive
        self._seconds = seconds
        self._deadline: float | None = None
        self._done = False

    async def receive(self) -> Message:
        if self._done:
            return await self._receive()
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._seconds
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise ProblemError(
                408, f"The request body did not arrive within {self._seconds:g} s. Nothing was stored."
            ) from None
        self._done = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    async def drain(self, max_bytes: int) -> None:
        """Read and drop the rest of the body, within the deadline; give up past `max_bytes`."""
        drained = 0
        try:
            while not self._done and drained <= max_bytes:
                drained += len((await self.receive()).get("body", b""))
        except ProblemError:  # the deadline: the answer is sent; the server closes the connection
            pass

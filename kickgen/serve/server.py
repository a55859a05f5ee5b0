"""The HTTP server under ``kickgen serve``: uvicorn's h11 protocol with a deadline on request heads.

uvicorn closes a keep-alive connection that stays idle after a response
(``timeout_keep_alive``), but not one that never finishes its request line and headers: a
client that connects and sends nothing, or trickles a partial head, holds its connection (and a
file descriptor) for as long as it likes. :class:`HeadTimeoutProtocol` closes such a connection
when its request head is not complete ``head_timeout_s`` after the connection opened, or after
the first byte of a later request on a keep-alive connection arrived. Trickling bytes does not
move the deadline. Bodies that stall are the app's business (``BodyLimit``: 408).

``limit_concurrency`` caps the connections and requests uvicorn serves at once; requests beyond
it get 503 (uvicorn's own plain-text answer).
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kickgen.serve.cli import HEAD_TIMEOUT_S, MAX_CONNECTIONS


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol; closes a connection whose request head is late (module docstring)."""

    head_timeout_s: float = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()  # a new connection owes a request head

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first byte of a later request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a head still owed, e.g. after a body's last bytes
            self._arm_head_timer()
        else:  # the head is in (or the connection is done)
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info(
                "closing a connection whose request head took over %g s", self.head_timeout_s
            )
            self.transport.close()


def server_config(
    app,
    head_timeout_s: float = HEAD_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    log_level: str = "warning",
) -> uvicorn.Config:
    """The uvicorn config ``kickgen serve`` runs ``app`` with (tests start the same)."""
    if not head_timeout_s > 0 or max_connections < 1:
        raise ValueError(
            f"head_timeout_s={head_timeout_s!r}, max_connections={max_connections!r}: use positive values"
        )
    protocol = type(
        "HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout_s": float(head_timeout_s)}
    )
    return uvicorn.Config(
        app, http=protocol, limit_concurrency=max_connections, log_level=log_level
    )

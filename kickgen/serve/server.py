"""The HTTP server under ``kickgen serve``: uvicorn's h11 protocol with every connection state bounded.

uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``,
5 s), but leaves three states unbounded, and closes in a way that loses its own refusals.
:class:`BoundedProtocol` adds:

- **A deadline on request heads.** A connection whose request line and headers are not complete
  ``head_timeout_s`` after it opened, or after the first byte of a later request on a keep-alive
  connection arrived, is closed. Trickling bytes does not move the deadline.
- **A graceful close.** When the server closes a connection while the client may still be sending
  a request body (a ``413``/``408`` answered from the headers or mid-body, a ``401``/``403``, the
  ``503`` of the connection cap), closing the socket with unread bytes makes the kernel reset the
  connection, and a client that reads the answer only after sending its body (httpx) gets a
  connection error instead of the answer. Like nginx's lingering close, the server instead sends
  the answer, half-closes (FIN after the answer's last byte) and reads and discards what the
  client still sends, until the client closes, for at most ``linger_s`` in all, ``linger_idle_s``
  without a byte, and ``linger_bytes``. The same holds when an answer goes out on a keep-alive
  connection before its request's body is in (e.g. ``GET /healthz`` with a ``Content-Length``):
  the body is discarded within those bounds and the connection closed, where uvicorn would wait
  for it with no deadline at all. A lingering connection is closed as soon as the client closes
  its side (asyncio closes a transport on EOF), and at once when the server stops. A client that sends ``Expect: 100-continue`` gets such a
  refusal instead of ``100 Continue``, before it sends its body.
- **A deadline on answers the client does not read.** A connection whose answer stays unsent
  (the client's window closed) for ``send_timeout_s`` is aborted, so a route never waits on
  it for ever.

Bodies that stall or trickle while the app reads them are the app's business (``BodyLimit``: 408).
``limit_concurrency`` caps the connections and requests uvicorn serves at once; requests beyond
it get 503 (uvicorn's own plain-text answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kickgen.serve.limits import (
    HEAD_TIMEOUT_S,
    LINGER_BYTES,
    LINGER_IDLE_S,
    LINGER_S,
    MAX_CONNECTIONS,
    SEND_TIMEOUT_S,
)


class GracefulTransport:
    """The connection's transport as uvicorn sees it: ``close()`` half-closes and lingers when
    the client may still be sending (:meth:`BoundedProtocol.close_gracefully`)."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedProtocol):
        self._transport, self._protocol = transport, protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        self._protocol.close_gracefully()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class BoundedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a bound on every connection state (module docstring)."""

    head_timeout_s: float = HEAD_TIMEOUT_S
    linger_s: float = LINGER_S
    linger_idle_s: float = LINGER_IDLE_S
    linger_bytes: int = LINGER_BYTES
    send_timeout_s: float = SEND_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.raw_transport = transport
        self.lingering = False
        self._lost = False
        self._discarded = 0  # bytes read and dropped while lingering
        self._linger_end = 0.0  # loop time
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        super().connection_made(GracefulTransport(transport, self))  # type: ignore[arg-type]
        self._arm_head_timer()  # a new connection owes a request head

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._discard(len(data))
            return
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first byte of a later request on a kept-alive connection
        super().data_received(data)
        if self.lingering:
            return
        if self.conn.their_state is h11.IDLE:  # a head still owed, e.g. after a body's last bytes
            self._arm_head_timer()
        else:  # the head is in (or the connection is done)
            self._cancel_head_timer()

    def shutdown(self) -> None:
        if self.lingering:  # the server stops: no need to wait for the client's last bytes
            self.raw_transport.close()
        else:
            super().shutdown()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # answered before the request's body was in (the app did not read it): discard the
            # rest within the linger bounds, rather than wait for it with no deadline
            self.close_gracefully()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        for timer in (self._head_timer, self._linger_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = self._send_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout_s, self._send_timed_out)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def close_gracefully(self) -> None:
        """Close the connection; when the client may still be sending, first half-close and
        discard its bytes within the linger bounds, so that it reads the answer before the FIN
        instead of a reset."""
        if self._lost or self.lingering or self.raw_transport.is_closing():
            return
        unfinished = self.conn.their_state in (h11.SEND_BODY, h11.ERROR)
        if not unfinished or not self.raw_transport.can_write_eof():
            self.raw_transport.close()
            return
        self.lingering = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        self.raw_transport.write_eof()  # sent once the answer's bytes are out
        self.flow.resume_reading()
        self._linger_end = self.loop.time() + self.linger_s
        self._arm_linger_timer()

    def _discard(self, n: int) -> None:
        self._discarded += n
        if self._discarded > self.linger_bytes:
            self.logger.info(
                "closing a connection that sent over %d bytes after its answer", self.linger_bytes
            )
            self.raw_transport.close()
        else:
            self._arm_linger_timer()

    def _arm_linger_timer(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        wait = min(self.linger_idle_s, self._linger_end - self.loop.time())
        self._linger_timer = self.loop.call_later(max(wait, 0.0), self._linger_over)

    def _linger_over(self) -> None:
        self._linger_timer = None
        self.raw_transport.close()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        self.logger.info(
            "dropping a connection that read nothing of its answer for %g s", self.send_timeout_s
        )
        self.raw_transport.abort()

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
            self.raw_transport.close()


def server_config(
    app,
    head_timeout_s: float = HEAD_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
    log_level: str = "warning",
    linger_s: float = LINGER_S,
    linger_idle_s: float = LINGER_IDLE_S,
    send_timeout_s: float = SEND_TIMEOUT_S,
) -> uvicorn.Config:
    """The uvicorn config ``kickgen serve`` runs ``app`` with (tests start the same, with
    shorter bounds)."""
    bounds = {"head_timeout_s": head_timeout_s, "linger_s": linger_s, "linger_idle_s": linger_idle_s,
              "send_timeout_s": send_timeout_s}  # fmt: skip
    if not all(v > 0 for v in bounds.values()) or max_connections < 1:
        raise ValueError(f"{bounds}, max_connections={max_connections!r}: use positive values")
    protocol = type("BoundedProtocol", (BoundedProtocol,), {k: float(v) for k, v in bounds.items()})
    return uvicorn.Config(
        app, http=protocol, limit_concurrency=max_connections, log_level=log_level
    )

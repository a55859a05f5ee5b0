"""Hostile clients and pages (issue 38, its server half): refusals that reach the client,
connections held past their bounds, cross-site requests, a server bound beyond loopback. Each
test names the point it checks and fails without its fix. Servers are real (uvicorn on a free
loopback port, a stub pipeline) with bounds short enough for a test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from types import SimpleNamespace

import pytest

from kickgen.audio import SAMPLE_RATE as SR

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

BIG_JSON = b'{"prompt": "' + b" " * 5_000_000 + b'"}'  # 5 MB, over the 64 KiB cap
BIG_UPLOAD = b"\0" * 60_000_000  # 60 MB, over the 20 MB cap


class StubPipeline:
    """Stands in for KickPipeline in the server; counts the kicks it was asked for."""

    vocab = ["808", "deep"]

    def __init__(self):
        import torch

        self.device = torch.device("cpu")
        self.rendered = 0

    def parse_prompt(self, prompt):
        return SimpleNamespace(
            matched=prompt.split(), unknown=[], suggestions={}, warning_text=lambda: ""
        )

    def render(self, rows, *args, **kwargs):
        import torch

        self.rendered += len(rows)
        return SimpleNamespace(raw=torch.full((len(rows), SR * 2), 0.1))


@pytest.fixture()
def real_server(serve_in_thread):
    """``real_server(max_connections=256, **bounds)``: ``kickgen serve``'s uvicorn server (stub
    pipeline) on a free loopback port, in a thread, as a context manager. ``bounds`` are
    ``server_config``'s (``linger_s``, ...) and ``ServeConfig``'s (``body_timeout_s``, ...)."""
    from kickgen.serve.app import ServeConfig, create_app
    from kickgen.serve.server import server_config

    def start(max_connections: int = 256, **bounds):
        serve = {k: bounds.pop(k) for k in list(bounds) if k in ServeConfig.__dataclass_fields__}
        app = create_app(StubPipeline(), ServeConfig(**serve))
        return serve_in_thread(server_config(app, max_connections=max_connections, **bounds))

    return start


def status_of(conn: socket.socket, within_s: float = 5.0) -> bytes:
    """The status line of the next response on ``conn`` (b"" when the server closed it first)."""
    conn.settimeout(within_s)
    data = b""
    while b"\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return b"reset"
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def closed_within(conn: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes ``conn`` (reading and dropping what it sends), or None
    when it is still open after ``seconds``."""
    start = time.monotonic()
    conn.settimeout(0.05)
    while time.monotonic() - start < seconds:
        try:
            if conn.recv(65536) == b"":
                return time.monotonic() - start
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except TimeoutError:
            pass
    return None


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


# --------------------------------------------------------------------------- 2: refusals reach the client


def test_2_httpx_clients_receive_every_413_and_408(real_server):
    """The server used to close with the body unread, so the kernel reset the connection and
    httpx saw ReadError / RemoteProtocolError instead of the 413 (async: 4 of 4 at 60 MB)."""

    def trickled_upload():  # a body that stalls past the body timeout, then sends 10 MB
        yield b"\0" * 65536
        time.sleep(0.6)
        for _ in range(160):
            yield b"\0" * 65536

    with real_server(body_timeout_s=0.3) as (host, port):
        base = f"http://{host}:{port}"
        json_type = {"content-type": "application/json"}
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(2):
                assert (
                    c.post("/api/generate", content=BIG_JSON, headers=json_type).status_code == 413
                )
                assert c.post("/api/vary", files={"file": ("k.wav", BIG_UPLOAD)}).status_code == 413
            chunked = c.post("/api/vary", content=iter([b"\0" * 2**20] * 60))  # 413 mid-body
            assert chunked.status_code == 413
            late = c.post("/api/vary", content=trickled_upload())
            assert late.status_code == 408 and "stalled" in late.json()["detail"]
            assert c.get("/healthz").status_code == 200

        async def async_client() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                statuses = []
                for _ in range(2):
                    res = await c.post("/api/generate", content=BIG_JSON, headers=json_type)
                    statuses.append(res.status_code)
                    res = await c.post("/api/vary", files={"file": ("k.wav", BIG_UPLOAD)})
                    statuses.append(res.status_code)
                return statuses

        assert asyncio.run(async_client()) == [413] * 4


def test_2_expect_100_continue_gets_the_refusal_before_the_body(real_server):
    with real_server() as address, socket.create_connection(address) as conn:
        conn.sendall(head("POST", "/api/vary", "Content-Length: 30000000", "Expect: 100-continue",
                          "Content-Type: multipart/form-data; boundary=x"))  # fmt: skip
        assert status_of(conn) == b"HTTP/1.1 413 Request Entity Too Large"  # no 100 Continue
        assert closed_within(conn, 2.0) is not None  # half-closed after the answer


# --------------------------------------------------------------------------- 3: bounded connections


def test_3_a_trickled_body_gets_408_within_its_whole_bound(real_server):
    """One byte every 0.3 s, under the 0.5 s stall timeout: the stall timer used to restart with
    each byte, so the 1,000-byte body held its connection (and an upload slot) for 300 s."""
    with real_server(body_timeout_s=0.5, body_min_rate=1000) as address:
        with socket.create_connection(address) as conn:
            conn.sendall(head("POST", "/api/generate", "Content-Type: application/json",
                              "Content-Length: 1000"))  # fmt: skip
            start = time.monotonic()
            conn.settimeout(0.3)
            answer = b""
            while not answer and time.monotonic() - start < 5:
                conn.sendall(b" ")
                try:
                    answer = conn.recv(65536)
                except TimeoutError:
                    pass
            took = time.monotonic() - start
        assert answer.startswith(b"HTTP/1.1 408") and b"too slow" in answer
        assert took < 2.0  # 0.5 s plus 1 s per 1,000 bytes: about 0.5 s


def test_3_an_answered_request_whose_body_trickles_is_closed(real_server):
    """GET /healthz with Content-Length: 60000, then a byte after the answer: the byte cancelled
    the keep-alive timer and nothing else ran, so the connection was held for ever; three of
    those filled a server of four connections, which answered 503 to everyone."""
    with real_server(max_connections=4, linger_s=1.0, linger_idle_s=0.5) as address:
        held = []
        for _ in range(3):
            conn = socket.create_connection(address)
            conn.sendall(head("GET", "/healthz", "Content-Length: 60000"))
            assert status_of(conn) == b"HTTP/1.1 200 OK"
            conn.sendall(b"x")
            held.append(conn)
        trickle = held[0]
        for _ in range(8):  # a byte every 0.2 s does not extend the 1 s bound
            time.sleep(0.2)
            try:
                trickle.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert all(closed_within(c, 2.5) is not None for c in held)
        with socket.create_connection(address) as conn:
            conn.sendall(head("GET", "/healthz"))
            assert status_of(conn) == b"HTTP/1.1 200 OK"
        for c in held:
            c.close()


def test_3_a_client_that_never_reads_its_answers_is_dropped(real_server):
    """Pipelined requests whose answers are never read: the route waited on the full socket
    for ever, holding its connection."""
    with real_server(send_timeout_s=0.5) as address:
        conn = socket.socket()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(address)
        conn.sendall(head("GET", "/static/app.js") * 400)  # 18 MB of answers, none read
        time.sleep(2.0)
        conn.settimeout(1.0)
        got = 0
        with contextlib.suppress(ConnectionResetError):  # aborted after what the buffers held
            while chunk := conn.recv(2**20):
                got += len(chunk)
        assert got < 400 * 45_000 / 2
        conn.close()

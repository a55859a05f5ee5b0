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

        async def async_trickled_upload():
            yield b"\0" * 65536
            await asyncio.sleep(0.6)
            for _ in range(160):
                yield b"\0" * 65536

        async def async_client() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                statuses = []
                for _ in range(2):
                    res = await c.post("/api/generate", content=BIG_JSON, headers=json_type)
                    statuses.append(res.status_code)
                    res = await c.post("/api/vary", files={"file": ("k.wav", BIG_UPLOAD)})
                    statuses.append(res.status_code)
                res = await c.post("/api/vary", content=async_trickled_upload())
                return [*statuses, res.status_code]

        assert asyncio.run(async_client()) == [413] * 4 + [408]


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
            conn.settimeout(2.0)  # the answer's body may follow its head in another packet
            while b"too slow" not in answer:
                more = conn.recv(65536)
                if not more:
                    break
                answer += more
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


# --------------------------------------------------------------------------- 5: cross-site requests


def cross_site_client():
    from fastapi.testclient import TestClient

    from kickgen.serve.app import create_app

    pipe = StubPipeline()
    return pipe, TestClient(create_app(pipe), base_url="http://127.0.0.1:8000")


def test_5_state_changing_requests_from_another_origin_are_refused():
    """A page on another origin POSTed a URL-encoded form to /api/vary (no CORS preflight for
    forms) and the studio generated the kicks."""
    pipe, c = cross_site_client()
    with c:
        kick = c.post("/api/generate", json={"n": 1, "steps": 1}).json()["ids"][0]
        pipe.rendered = 0
        form = {"kick": kick, "n": "8", "steps": "1"}
        for origin in ("http://evil.example", "http://127.0.0.1:8001", "null"):
            res = c.post("/api/vary", data=form, headers={"Origin": origin})
            assert res.status_code == 403 and "cross-site" in res.json()["detail"], origin
        res = c.post("/api/vary", files={"file": ("k.wav", b"RIFF")}, data={"n": "8"},
                     headers={"Origin": "http://evil.example"})  # fmt: skip
        assert res.status_code == 403
        res = c.post("/api/vary", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert res.status_code == 403
        for path in (
            "/api/generate",
            "/api/generate.wav",
            "/api/morph",
            "/api/regenerate",
            "/api/pack",
        ):
            res = c.post(path, json={}, headers={"Origin": "https://evil.example"})
            assert res.status_code == 403, path
        assert pipe.rendered == 0
        own = c.post("/api/vary", data=form, headers={"Origin": "http://127.0.0.1:8000"})
        assert own.status_code == 200 and pipe.rendered == 8  # the studio's own page
        assert c.post("/api/vary", data=form).status_code == 200  # curl, scripts: no Origin
        assert c.get("/healthz", headers={"Origin": "http://evil.example"}).status_code == 200


# --------------------------------------------------------------------------- 6: beyond loopback


def token_client(base_url: str = "http://192.168.1.5:8000", token: str = "s3cret-token"):
    from fastapi.testclient import TestClient

    from kickgen.serve.app import ServeConfig, create_app
    from kickgen.serve.cli import access_config

    config = ServeConfig(**access_config("0.0.0.0", ("studio.lan",), token=token))
    return TestClient(create_app(StubPipeline(), config), base_url=base_url, follow_redirects=False)


def test_6_a_server_beyond_loopback_needs_its_token_and_its_own_names():
    """--host 0.0.0.0 used to answer anyone on the network, under any Host."""
    from kickgen.serve.cli import access_config

    assert access_config("127.0.0.1")["token"] is None
    tokens = {access_config(host)["token"] for host in ("0.0.0.0", "::", "192.168.1.5")}
    assert len(tokens) == 3 and all(t and len(t) >= 32 for t in tokens)  # random, unguessable

    with token_client() as c:
        for path in ("/", "/healthz", "/api/vocab", "/static/app.js", "/openapi.json"):
            assert c.get(path).status_code == 401, path
        assert c.post("/api/generate", json={"n": 1, "steps": 1}).status_code == 401
        assert c.get("/healthz", params={"token": "wrong"}).status_code == 401
        assert (
            c.get("/healthz", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        )
        assert c.get("/healthz", params={"token": "s3cret-token"}).status_code == 200
        signed_in = c.get("/", params={"token": "s3cret-token"})  # the URL kickgen serve prints
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert c.get("/").status_code == 200  # the page, by the cookie alone
        made = c.post("/api/generate", json={"n": 1, "steps": 1})
        assert made.status_code == 200
        assert c.get(made.json()["urls"][0]).status_code == 200
    for base, status in [
        ("http://192.168.1.5:8000", 200),
        ("http://[fe80::1]:8000", 200),
        ("http://studio.lan:8000", 200),  # --allow-host
        (f"http://{socket.gethostname()}:8000", 200),
        ("http://attacker.example:8000", 400),  # a rebound name, even with the token
    ]:
        with token_client(base) as c:
            assert c.get("/healthz", params={"token": "s3cret-token"}).status_code == status, base


@pytest.mark.slow  # one interpreter start and checkpoint load
def test_6_serve_beyond_loopback_prints_the_url_with_its_token(tiny_checkpoint_dir, repo_root):
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "kickgen", "serve", "--host", "0.0.0.0", "--port", str(port),
           "--checkpoints", str(tiny_checkpoint_dir)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=repo_root, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "kickgen serve exited before it served"
            if line.startswith("kickgen serving on http://127.0.0.1:"):
                url = line.split()[3]
        assert url is not None and "/?token=" in url
        plain = url.split("?")[0]
        for _ in range(100):  # the URL is printed just before uvicorn starts
            try:
                assert httpx.get(plain + "healthz").status_code == 401
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        with httpx.Client() as c:
            page = c.get(url, follow_redirects=True)  # the cookie carries the token on
            assert page.status_code == 200 and "/static/app.js" in page.text
            assert c.get(plain + "api/vocab").status_code == 200
        assert (
            httpx.get(plain + "api/vocab", headers={"Host": "attacker.example"}).status_code == 400
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()

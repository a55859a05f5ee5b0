"""Who may use the studio: the Host, Origin and token checks of ``kickgen serve``.

:class:`RequestGuard` (ASGI middleware, the app's outermost layer) answers before any route,
and before any body is read:

- **Host** (``400``): a server bound to a loopback address answers loopback names only, so a
  page whose DNS name is rebound to 127.0.0.1 cannot reach it; one bound beyond loopback
  answers those, the machine's own names, names the operator allows, and IP addresses (an
  address cannot be rebound).
- **Origin** (``403``): a state-changing request (any method but GET, HEAD and OPTIONS) that a
  browser sends from a page of another origin is refused: its ``Origin`` header, when present,
  must name this server as the request's ``Host`` does (browsers send multipart and
  URL-encoded forms across origins without a CORS preflight), and without one its
  ``Sec-Fetch-Site`` must not say ``cross-site`` or ``same-site``.
- **Token** (``401``): when the server has one (``kickgen serve`` makes one when it binds beyond
  loopback, as Jupyter does), every request must carry it: ``?token=`` in the URL (opening the
  printed ``/?token=...`` sets a cookie and redirects to ``/``), ``Authorization: Bearer``, or
  that cookie (``HttpOnly``, ``SameSite=Strict``, so other sites' pages cannot send it).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import urllib.parse

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # methods no route changes state on
TOKEN_COOKIE = "kickgen-token"  # the cookie's name is this plus the server's port


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:8000`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


class RequestGuard:
    """ASGI middleware: the Host, Origin and token checks (module docstring).

    ``allowed_hosts`` None answers any Host; ``ip_hosts`` also answers any IP-address Host;
    ``token`` None asks for none."""

    def __init__(
        self,
        app,
        allowed_hosts: tuple[str, ...] | None = None,
        ip_hosts: bool = False,
        token: str | None = None,
    ):
        self.app, self.ip_hosts, self.token = app, ip_hosts, token
        self.allowed_hosts = (
            None if allowed_hosts is None else {host_name(h) for h in allowed_hosts}
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return await answer(send, 400, f"Host {host[:100]!r} is not a name of this server")
        refused = self.cross_site(scope["method"], host, headers)
        if refused:
            return await answer(send, 403, refused)
        if self.token is None:
            return await self.app(scope, receive, send)
        cookie = f"{TOKEN_COOKIE}-{(scope.get('server') or ('', 0))[1]}"
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        in_query = self.valid(query.get("token", [""])[-1])
        auth = headers.get("authorization", "")
        if not (
            in_query
            or self.valid(auth.partition(" ")[2] if auth.lower().startswith("bearer ") else "")
            or self.valid(cookies(headers.get("cookie", "")).get(cookie, ""))
        ):
            return await answer(
                send,
                401,
                "this server needs its token: open the URL that kickgen serve printed "
                "(…/?token=…), or send the header Authorization: Bearer <token>",
                [(b"www-authenticate", b"Bearer")],
            )
        if in_query and scope["method"] == "GET" and scope["path"] == "/":
            # the page: keep the token in a cookie and out of the address bar (and Referer)
            set_cookie = f"{cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            return await answer(send, 303, "signed in: go to /",
                                [(b"location", b"/"), (b"set-cookie", set_cookie.encode())])  # fmt: skip
        return await self.app(scope, receive, send)

    def host_allowed(self, host: str) -> bool:
        if self.allowed_hosts is None:
            return True
        name = host_name(host)
        return name in self.allowed_hosts or (self.ip_hosts and is_ip_address(name))

    def valid(self, supplied: str) -> bool:
        return bool(supplied) and secrets.compare_digest(supplied.encode(), self.token.encode())

    @staticmethod
    def cross_site(method: str, host: str, headers: dict[str, str]) -> str | None:
        """Why a state-changing request comes from another site's page, or None."""
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            if urllib.parse.urlsplit(origin).netloc.lower() != host.strip().lower():
                return f"cross-site request refused: Origin {origin[:100]!r} is not this server ({host[:100]})"
        elif headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return "cross-site request refused: send it from this server's own page"
        return None


def cookies(header: str) -> dict[str, str]:
    """A ``Cookie`` header's name=value pairs."""
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}


async def answer(
    send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` and close the connection (a body the request
    may have is not read: the server discards it as it closes)."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})

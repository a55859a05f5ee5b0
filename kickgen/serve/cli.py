"""``kickgen serve``: the HTTP API and the studio page on http://127.0.0.1:8000."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
import urllib.parse
import warnings
from typing import Any

from kickgen.errors import CommandError
from kickgen.serve.limits import HEAD_TIMEOUT_S, MAX_CONNECTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    from kickgen.commands.common import add_checkpoints_argument, add_value_argument

    p = subparsers.add_parser(
        "serve",
        help="serve the API and the studio page (serve extra)",
        description="Load the pipeline once and serve the HTTP API and the studio page (generate, vary, morph, crate, export).",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: localhost only); beyond loopback, requests need the token "
        "printed at start",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (e.g. a name your DNS or a proxy gives the "
        "machine); may be repeated",
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    add_checkpoints_argument(p, "vae_epoch_100.pt, diffusion_step_100000.pt, vocoder_epoch_50.pt")
    p.add_argument(
        "--device",
        default=None,
        help="torch device: auto (CUDA > MPS > CPU, the default), cpu, cuda, mps",
    )
    p.add_argument("--queue-size", type=int, default=8, help="requests waiting before 503")
    p.add_argument("--store-mb", type=int, default=64, help="memory kept for generated kicks (MiB)")
    p.add_argument(
        "--head-timeout",
        type=float,
        default=HEAD_TIMEOUT_S,
        metavar="S",
        help=f"close a connection whose request line and headers take longer (default {HEAD_TIMEOUT_S:g} s)",
    )
    add_value_argument(
        p,
        "--max-connections",
        int,
        MAX_CONNECTIONS,
        "connections served at once; requests beyond get 503",
    )
    p.set_defaults(func=serve)


# Host headers a loopback-bound server answers (with any port).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
MIN_STORE_MB = 11  # MiB: 16 kicks (a morph) of 705,680 bytes, so no answer's kicks are evicted before it is read
TOKEN_ENV = "KICKGEN_SERVE_TOKEN"  # a fixed token for a server beyond loopback (else a random one)


def access_config(
    host: str, allow_hosts: tuple[str, ...] = (), token: str | None = None
) -> dict[str, Any]:
    """The :class:`~kickgen.serve.context.ServeConfig` fields that say who may use a server bound
    to ``host``: on loopback, loopback host names and no token; beyond, a token (``token``,
    else $KICKGEN_SERVE_TOKEN, else a random one) and the Host names of :func:`allowed_hosts`
    plus any IP address."""
    if is_loopback(host):
        return {"allowed_hosts": allowed_hosts(host, allow_hosts), "ip_hosts": False, "token": None}
    token = token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    return {"allowed_hosts": allowed_hosts(host, allow_hosts), "ip_hosts": True, "token": token}


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Host names answered on ``host``: loopback names, the bound address itself (e.g.
    127.0.0.2) and the ``extra`` names (``--allow-host``); beyond loopback also the machine's
    name (``gethostname()``, and with ``.local``). A page whose DNS name an attacker rebinds to
    this machine names none of them."""
    names = [*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host, *extra]
    if not is_loopback(host) and socket.gethostname():
        names += [socket.gethostname(), f"{socket.gethostname()}.local"]
    return tuple(dict.fromkeys(name.lower() for name in names))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_urls(host: str, port: int, token: str | None) -> list[str]:
    """The URLs to open: with ``?token=`` beyond loopback; a wildcard address (0.0.0.0, ::)
    as the machine's name and as 127.0.0.1."""
    query = f"?token={urllib.parse.quote(token)}" if token else ""
    if host in ("0.0.0.0", "::"):
        names = [socket.gethostname() or "localhost", "127.0.0.1"]
    else:
        names = [f"[{host}]" if ":" in host else host]
    return [f"http://{name}:{port}/{query}" for name in names]


def serve(args: argparse.Namespace) -> int:
    """Load the pipeline, then run uvicorn until Ctrl-C."""
    if not 0 < args.port < 65536:
        raise CommandError(f"--port {args.port} is not a TCP port: pick one in 1-65535")
    if args.queue_size < 0 or args.store_mb < MIN_STORE_MB:
        raise CommandError(
            f"--queue-size {args.queue_size} / --store-mb {args.store_mb}: use a queue of 0 or more and at least "
            f"{MIN_STORE_MB} MiB (one answer of 16 kicks)"
        )
    if not 0 < args.head_timeout <= 3600 or args.max_connections < 1:  # NaN fails too
        raise CommandError(
            f"--head-timeout {args.head_timeout} / --max-connections {args.max_connections}: use more than 0 "
            "and at most 3600 s, and at least 1 connection"
        )
    try:
        import uvicorn

        from kickgen.serve.app import ServeConfig, create_app
        from kickgen.serve.server import server_config
        from kickgen.serve.studio import add_studio_routes  # noqa: F401 (python-multipart)
    except ModuleNotFoundError as exc:
        raise CommandError(
            f"kickgen serve needs {exc.name}: install the serve extra with pip install 'kickgen[serve]'"
        ) from None
    from kickgen.pipeline import KickPipeline
    from kickgen.prompts import UnknownKeywordWarning
    from kickgen.weights import find_checkpoints

    files = find_checkpoints(args.checkpoints, vocoder_hint=None)
    try:  # bind first: a busy port fails in one line, before the checkpoints load
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.create_server((args.host, args.port), family=family)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port} ({os.strerror(exc.errno) if exc.errno else exc}): "
            "pick another --port or --host"
        ) from None
    with sock:
        print(f"loading checkpoints from {files.directory} ...", file=sys.stderr)
        pipe = KickPipeline.from_checkpoints(files.diffusion, files.vae, files.vocoder, args.device)
        access = access_config(args.host, tuple(args.allow_host))
        config = ServeConfig(
            queue_size=args.queue_size, store_bytes=args.store_mb * 2**20, **access
        )
        app = create_app(pipe, config)
        # Each answer lists the prompt words the model ignored; the server log need not warn too.
        warnings.filterwarnings("ignore", category=UnknownKeywordWarning)
        for url in server_urls(args.host, args.port, access["token"]):
            print(f"kickgen serving on {url} (Ctrl-C stops)", file=sys.stderr)
        if access["token"] is not None:
            print(
                f"serving on {args.host}: anyone on the network who has this token can generate; "
                "requests without it get 401",
                file=sys.stderr,
            )
        http = server_config(app, args.head_timeout, args.max_connections)
        uvicorn.Server(http).run(sockets=[sock])
    return 0

"""``kickgen serve``: the HTTP API and the studio page on http://127.0.0.1:8000."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import warnings

from kickgen.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    from kickgen.commands.common import add_checkpoints_argument, add_value_argument

    p = subparsers.add_parser(
        "serve",
        help="serve the API and the studio page (serve extra)",
        description="Load the pipeline once and serve the HTTP API and the studio page (generate, vary, morph, crate, export).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
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
HEAD_TIMEOUT_S = 10.0  # a connection's request line and headers must arrive within this
MAX_CONNECTIONS = 256  # connections served at once (well under the usual limit of 1024 open files)


def allowed_hosts(host: str) -> tuple[str, ...] | None:
    """Host headers answered on ``host``: loopback names and the bound address itself (e.g.
    127.0.0.2) on a loopback address, any on another."""
    if not is_loopback(host):
        return None
    own = (f"[{host}]",) if ":" in host else (host,)
    return tuple(dict.fromkeys((*LOOPBACK_NAMES, *own)))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        config = ServeConfig(
            queue_size=args.queue_size,
            store_bytes=args.store_mb * 2**20,
            allowed_hosts=allowed_hosts(args.host),
        )
        app = create_app(pipe, config)
        # Each answer lists the prompt words the model ignored; the server log need not warn too.
        warnings.filterwarnings("ignore", category=UnknownKeywordWarning)
        if not is_loopback(args.host):
            print(
                f"warning: serving on {args.host}: anyone who can reach this machine can generate",
                file=sys.stderr,
            )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"kickgen serving on http://{shown}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
        http = server_config(app, args.head_timeout, args.max_connections)
        uvicorn.Server(http).run(sockets=[sock])
    return 0

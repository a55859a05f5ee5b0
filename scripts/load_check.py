"""Load check of ``kickgen serve``: N concurrent generation requests on the loopback interface.

Starts ``python -m kickgen serve`` on a free loopback port (or uses ``--url`` of a running one,
which must be a loopback address), sends ``--requests`` (default 50) ``POST /api/generate`` at
once, and checks every answer: a 200 must list its kicks and each WAV must be a 2 s, 44.1 kHz,
mono file of finite samples; a 503 must carry ``Retry-After`` and a message. Prints latency
percentiles and exits 1 if any answer was neither.

    python scripts/load_check.py --random-weights          # shipped-size models, random weights
    python scripts/load_check.py --checkpoints checkpoints
    python scripts/load_check.py --url http://127.0.0.1:8000

Bounded: at most 200 requests, each with a time limit, to 127.0.0.1 / ::1 / localhost only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing kickgen
MAX_REQUESTS = 200


@dataclass
class Answer:
    status: int  # HTTP status, 0 when the request failed
    seconds: float  # request sent -> JSON answer (WAV downloads not included)
    valid: bool
    note: str = ""


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


def check_wav(data: bytes) -> str:
    """'' if ``data`` is a 2 s, 44.1 kHz, mono WAV of finite samples, else what is wrong."""
    import soundfile as sf

    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32")
    except Exception as exc:  # noqa: BLE001 - any decoding failure makes the answer invalid
        return f"unreadable WAV ({exc})"
    if sr != 44100 or wave.ndim != 1 or wave.shape[0] != 88200:
        return f"WAV is {sr} Hz, shape {wave.shape}; expected 44100 Hz, (88200,)"
    if not np.isfinite(wave).all() or np.abs(wave).max() > 1.0:
        return "WAV holds non-finite or clipped samples"
    return ""


async def one_request(client, url: str, payload: dict, timeout: float) -> Answer:
    start = time.perf_counter()
    try:
        res = await client.post(f"{url}/api/generate", json=payload, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a failed request is reported, not raised
        return Answer(0, time.perf_counter() - start, False, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    if res.status_code == 503:
        retry = res.headers.get("retry-after", "")
        detail = (
            res.json().get("detail", "") if "json" in res.headers.get("content-type", "") else ""
        )
        ok = retry.isdigit() and int(retry) >= 1 and detail.startswith("server busy")
        return Answer(
            503, seconds, ok, "" if ok else f"503 without Retry-After/detail: {retry!r} {detail!r}"
        )
    if res.status_code != 200:
        return Answer(res.status_code, seconds, False, res.text[:200])
    body = res.json()
    if len(body.get("urls", [])) != payload["n"]:
        return Answer(200, seconds, False, f"expected {payload['n']} kicks, got {body}")
    for wav_url in body["urls"]:
        wav = await client.get(url + wav_url, timeout=timeout)
        problem = (
            check_wav(wav.content)
            if wav.status_code == 200
            else f"GET {wav_url}: {wav.status_code}"
        )
        if problem:
            return Answer(200, seconds, False, problem)
    return Answer(200, seconds, True)


async def run_load(
    url: str, requests: int, payload: dict, timeout: float
) -> tuple[list[Answer], float]:
    import httpx

    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        (await client.get(f"{url}/healthz", timeout=timeout)).raise_for_status()
        start = time.perf_counter()
        answers = await asyncio.gather(
            *(
                one_request(client, url, {**payload, "seed": 1000 * i}, timeout)
                for i in range(requests)
            )
        )
        return list(answers), time.perf_counter() - start


def is_loopback_url(url: str) -> bool:
    from kickgen.serve.cli import is_loopback

    parsed = urlparse(url)
    return parsed.scheme == "http" and parsed.hostname is not None and is_loopback(parsed.hostname)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoints: Path, port: int, queue_size: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "kickgen", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--checkpoints", str(checkpoints), "--device", "cpu",
        "--queue-size", str(queue_size),
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"load_check: the server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(
        f"load_check: the server at {url} did not answer /healthz within {timeout:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="a running kickgen serve on a loopback address")
    src.add_argument("--checkpoints", type=Path, help="start kickgen serve on these checkpoints")
    src.add_argument(
        "--random-weights",
        action="store_true",
        help="start kickgen serve on seeded random weights at the shipped model sizes",
    )
    ap.add_argument(
        "--requests", type=int, default=50, help=f"concurrent requests (<= {MAX_REQUESTS})"
    )
    ap.add_argument("--n", type=int, default=1, help="kicks per request")
    ap.add_argument("--steps", type=int, default=50, help="sampler steps per request")
    ap.add_argument("--prompt", default="punchy 808")
    ap.add_argument("--queue-size", type=int, default=8, help="server queue (when started here)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per request")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS:
        ap.error(f"--requests must be 1-{MAX_REQUESTS}")

    proc = None
    tmp = None
    try:
        if args.url:
            url = args.url.rstrip("/")
            if not is_loopback_url(url):
                ap.error(
                    f"--url {args.url} is not a loopback http:// address: this check stays local"
                )
        else:
            checkpoints = args.checkpoints
            if args.random_weights:
                from kickgen.checkpoints import write_random_checkpoints

                tmp = tempfile.TemporaryDirectory(prefix="kickgen-load-")
                checkpoints = Path(tmp.name)
                write_random_checkpoints(checkpoints, seed=0)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = start_server(checkpoints, port, args.queue_size)
            wait_healthy(url, proc)

        payload = {"prompt": args.prompt, "n": args.n, "steps": args.steps, "cfg_scale": 3.0}
        answers, wall = asyncio.run(run_load(url, args.requests, payload, args.timeout))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()

    ok = [a for a in answers if a.status == 200 and a.valid]
    busy = [a for a in answers if a.status == 503 and a.valid]
    bad = [a for a in answers if not a.valid]
    report = {
        "requests": args.requests,
        "payload": payload,
        "server": args.url or f"kickgen serve --queue-size {args.queue_size}",
        "wall_seconds": wall,
        "ok_200": len(ok),
        "clean_503": len(busy),
        "invalid": len(bad),
        "latency_200_s": percentiles([a.seconds for a in ok]),
        "latency_503_s": percentiles([a.seconds for a in busy]),
        "problems": [f"{a.status}: {a.note}" for a in bad][:10],
    }
    print(
        f"{args.requests} concurrent POST /api/generate (n={args.n}, steps={args.steps}) in {wall:.2f} s"
    )
    print(
        f"  200 with valid WAVs: {len(ok)}   clean 503 + Retry-After: {len(busy)}   invalid: {len(bad)}"
    )
    for name, key in (("200", "latency_200_s"), ("503", "latency_503_s")):
        if report[key]:
            p = report[key]
            print(
                f"  {name} latency s: p50 {p['p50']:.3f}  p90 {p['p90']:.3f}  p99 {p['p99']:.3f}  max {p['max']:.3f}"
            )
    for line in report["problems"]:
        print(f"  invalid: {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())

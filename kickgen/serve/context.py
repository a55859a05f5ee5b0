"""What the routes of ``kickgen serve`` share: the validated ranges of a request, the request
and answer models, the generation queue (a small thread pool behind a bounded queue) and the
:class:`StudioContext` every route reads. :mod:`kickgen.serve.app` builds the app and the
generation routes from it, :mod:`kickgen.serve.studio` the producer-loop routes; neither
imports the other's routes."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, create_model

from kickgen.audio import NUM_SAMPLES
from kickgen.pipeline import MAX_CFG_SCALE
from kickgen.producer.hygiene import HygieneConfig, HygieneError
from kickgen.producer.recall import MAX_STEPS
from kickgen.serve.store import InitStore, KickStore

# Validated ranges of a request (the page reads them from /api/limits).
MAX_PROMPT_CHARS = 200
MAX_N = 8  # kicks per request
MAX_FRAMES = 16  # kicks in one morph series (the largest answer)
MIN_STEPS = 1  # sampler steps, up to recall's MAX_STEPS: a kick's recipe must regenerate it
MIN_CFG, MAX_CFG = 0.0, MAX_CFG_SCALE  # classifier-free guidance scale (1 = no guidance)
MAX_SEED = 2**31 - 1 - MAX_N  # kick i uses seed + i; keeps every seed a positive int32
DEFAULT_N, DEFAULT_STEPS, DEFAULT_CFG = 4, 50, 3.0
RANDOM_SEEDS = 1_000_000  # a random seed is drawn below this: short enough to note down
MAX_BODY_BYTES = 64 * 1024  # a request body (JSON); larger ones get 413 before they are parsed
MAX_UPLOAD_BYTES = 20 * 2**20  # an uploaded audio file (POST /api/vary)
MAX_UPLOAD_SECONDS = 30.0  # the longest upload decoded (the loaders' own bound is 60 s)
UPLOAD_PATHS = ("/api/vary",)  # bodies of these may be an upload plus its form fields
BODY_TIMEOUT_S = 10.0  # a body that stalls this long between chunks gets 408 ...
BODY_MIN_RATE = 64 * 1024  # ... as does one not in by then plus 1 s per this many bytes (bytes/s)
WAV_BYTES = 352_880  # one 2 s float32 WAV ...
KICK_BYTES = WAV_BYTES + 4 * NUM_SAMPLES  # ... and its raw vocoder output: one stored kick
DISCONNECT_POLL_S = 0.1  # how often a queued request checks that its client is still there
PRIVATE_CONFIG = ("allowed_hosts", "ip_hosts", "token")  # ServeConfig fields /api/limits leaves out

T = TypeVar("T")


class Pipeline(Protocol):
    """The part of ``KickPipeline`` the server (through :mod:`kickgen.producer`) uses."""

    vocab: list[str]
    device: Any  # torch.device: recipes name its type

    def parse_prompt(self, prompt: str) -> Any: ...

    def render(self, rows: Any, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class ServeConfig:
    """Capacity of the server; the defaults suit one CPU machine and one producer."""

    concurrency: int = 1  # worker threads (KickPipeline runs one generation at a time anyway)
    queue_size: int = 8  # requests waiting behind them before new ones get 503
    store_items: int = 512  # generated kicks kept for /api/kicks/{id}.wav ...
    store_bytes: int = 64 * 2**20  # ... and their total size (a stored kick is 705,680 bytes)
    init_items: int = 64  # uploaded init kicks kept in memory (352,800 bytes each)
    # Host headers accepted (None: any). `kickgen serve` on a loopback address accepts only
    # loopback names, so a web page cannot reach the server through DNS rebinding.
    allowed_hosts: tuple[str, ...] | None = None
    ip_hosts: bool = False  # also accept any IP address as Host (`kickgen serve` beyond loopback)
    token: str | None = None  # every request must carry it (`kickgen serve` beyond loopback)
    body_timeout_s: float = BODY_TIMEOUT_S  # a request body stalled this long gets 408 ...
    body_min_rate: float = BODY_MIN_RATE  # ... as does one slower than this on the whole (bytes/s)


@dataclass
class StudioContext:
    """What the studio routes (:mod:`kickgen.serve.studio`) share with the generation routes."""

    pipe: Any
    queue: GenerationQueue
    store: KickStore
    inits: InitStore  # uploads and other init kicks held in memory, by memory: name
    parse: Callable[[str], Any]  # prompt -> ParseResponse
    queued: Callable[..., Awaitable[Any]]  # queued(job, request, work) -> job's result
    keep: Callable[[list[Any], list[str]], list[Any]]  # producer kicks -> stored API kicks
    answer: Callable[..., Any]  # (kicks, request, words, seconds) -> GenerateResponse


class QueueFull(Exception):
    """Every worker is busy and the queue is full; ``retry_after`` is in seconds."""

    def __init__(self, in_flight: int, retry_after: int):
        super().__init__(f"{in_flight} requests in flight")
        self.in_flight = in_flight
        self.retry_after = retry_after


class GenerationFailed(Exception):
    """The pipeline gave no usable audio; answered as a JSON 500 naming why."""


class ClientGone(Exception):
    """The client of a queued request disconnected; the request was dropped unrun."""


class GenerationQueue:
    """Runs blocking jobs on ``concurrency`` threads, admitting at most ``queue_size`` waiting."""

    def __init__(self, concurrency: int, queue_size: int):
        if concurrency < 1 or queue_size < 0:
            raise ValueError(
                f"need concurrency >= 1 and queue_size >= 0, got {concurrency}, {queue_size}"
            )
        self.concurrency = concurrency
        self.capacity = concurrency + queue_size
        self.executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="kickgen-gen"
        )
        self._lock = threading.Lock()
        self._in_flight = 0  # admitted jobs not finished (running or waiting)
        self._running = 0
        self._seconds_per_job: float | None = None  # moving average of finished jobs' times

    def state(self) -> dict[str, int]:
        with self._lock:
            return {
                "running": self._running,
                "queued": self._in_flight - self._running,
                "capacity": self.capacity,
            }

    def retry_after(self) -> int:
        """Seconds until a slot is likely free, from the measured time of recent jobs (the fixed
        per-kick VAE and vocoder cost dominates, so kicks x steps is no measure), at least 1 s."""
        if self._seconds_per_job is None:
            return 5
        # the queue is full: one slot frees when the oldest of the in-flight jobs finishes
        wait = (
            self._seconds_per_job
            * max(self._in_flight - self.concurrency + 1, 1)
            / self.concurrency
        )
        return int(min(max(math.ceil(wait), 1), 3600))

    async def run(
        self,
        job: Callable[[], T],
        work: float = 1.0,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> T:
        """Run ``job()`` on a worker thread; raise :class:`QueueFull` when no slot is left.

        ``gone()`` is polled while the job waits: a request whose client has disconnected is
        dropped from the queue (:class:`ClientGone`); one abandoned while running finishes (torch
        cannot be interrupted) and frees its slot when done. ``work`` is kept for callers.
        """
        with self._lock:
            if self._in_flight >= self.capacity:
                raise QueueFull(self._in_flight, self.retry_after())
            self._in_flight += 1

        def timed() -> T:
            with self._lock:
                self._running += 1
            start = time.perf_counter()
            try:
                return job()
            finally:
                seconds = time.perf_counter() - start
                with self._lock:
                    self._running -= 1
                    prev = self._seconds_per_job
                    self._seconds_per_job = seconds if prev is None else 0.7 * prev + 0.3 * seconds

        def release(_future: object) -> None:
            with self._lock:
                self._in_flight -= 1

        future = self.executor.submit(timed)
        future.add_done_callback(release)
        waiting = asyncio.wrap_future(future)
        while gone is not None and not future.running() and not future.done():
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), DISCONNECT_POLL_S)
            except asyncio.TimeoutError:
                if await gone() and future.cancel():  # still queued: drop it
                    raise ClientGone() from None
        return await waiting

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class KickRequest(BaseModel):
    """One kick: the reference's ``generate_kick(prompt, cfg_scale, steps)`` plus a seed."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description="keywords, e.g. 'punchy 808'")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="null picks a random seed")
    cfg_scale: float = Field(DEFAULT_CFG, ge=MIN_CFG, le=MAX_CFG, allow_inf_nan=False)
    steps: int = Field(DEFAULT_STEPS, ge=MIN_STEPS, le=MAX_STEPS)
    hygiene: Hygiene | None = Field(  # type: ignore[valid-type]
        None,
        description="one-shot clean-up (and key) of each kick; null: the reference output stage",
    )


class GenerateRequest(KickRequest):
    """``n`` kicks; kick i uses ``seed + i``."""

    n: int = Field(DEFAULT_N, ge=1, le=MAX_N, description="how many kicks")


def _hygiene_model() -> type[BaseModel]:
    """The request form of :class:`~kickgen.producer.hygiene.HygieneConfig`: its fields, types
    and defaults, unknown fields refused."""
    hints = typing.get_type_hints(HygieneConfig)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(HygieneConfig)}
    return create_model("Hygiene", __config__=ConfigDict(extra="forbid"), **fields)


Hygiene = _hygiene_model()


def hygiene_config(options: BaseModel | None) -> HygieneConfig | None:
    """The checked :class:`HygieneConfig` of a request's ``hygiene`` (None: the reference output
    stage); a value it cannot use is a 422 naming it."""
    if options is None:
        return None
    cfg = HygieneConfig(**options.model_dump())
    try:
        cfg.check()
    except HygieneError as exc:
        raise HTTPException(status_code=422, detail=f"hygiene.{exc}") from None
    return cfg


class Kick(BaseModel):
    id: str
    seed: int
    url: str
    recipe: dict[str, Any] = Field(description="what made it; POST it to /api/regenerate")
    measure: dict[str, Any] = Field(
        description="lufs, true_peak_dbtp, peak_dbfs, decay_40_s, body_pitch_hz, root_note, ..."
    )


class GenerateResponse(BaseModel):
    ids: list[str]
    seeds: list[int]
    urls: list[str]
    kicks: list[Kick]
    prompt: str
    matched: list[str] = Field(description="prompt keywords the model knows")
    ignored: list[str] = Field(description="prompt words it does not know (no effect)")
    suggestions: dict[str, list[str]]
    cfg_scale: float
    steps: int
    seconds: float = Field(description="wall time of the generation")


class ParseResponse(BaseModel):
    matched: list[str]
    ignored: list[str]
    suggestions: dict[str, list[str]]
    read_as: dict[str, list[str]] = Field(
        default_factory=dict,
        description="words outside the vocabulary read as keywords: producer words, plurals, near-misses",
    )


def to_list(value: Any) -> list[str]:
    return [str(v) for v in (value or [])]


def suggestions(info: Any) -> dict[str, list[str]]:
    """``parse_prompt(...).suggestions`` as {unknown word: [close vocabulary entries]}."""
    raw = getattr(info, "suggestions", None) or {}
    if isinstance(raw, dict):
        return {str(k): to_list(v) for k, v in raw.items()}
    return {}


def request_limits() -> dict[str, Any]:
    """The validated ranges and defaults of a request, as ``GET /api/limits`` gives them to the page."""
    return {
        "max_prompt_chars": MAX_PROMPT_CHARS,
        "n": {"min": 1, "max": MAX_N, "default": DEFAULT_N},
        "frames": {"min": 2, "max": MAX_FRAMES, "default": 8},
        "steps": {"min": MIN_STEPS, "max": MAX_STEPS, "default": DEFAULT_STEPS},
        "cfg_scale": {"min": MIN_CFG, "max": MAX_CFG, "default": DEFAULT_CFG},
        "seed": {"min": 0, "max": MAX_SEED},
        "upload": {"max_bytes": MAX_UPLOAD_BYTES, "max_seconds": MAX_UPLOAD_SECONDS},
    }

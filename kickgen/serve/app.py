"""The HTTP API and the page of ``kickgen serve``, built around an injected pipeline.

``create_app(pipe)`` takes anything with the :class:`~kickgen.pipeline.KickPipeline` interface
(``vocab``, ``device``, ``parse_prompt(prompt)``, ``render(rows, ...)``), so the pipeline is
loaded once, by the caller, before the server starts. Every route makes its kicks with the
producer functions the CLI calls (:mod:`kickgen.producer`: ``generate_kicks``, ``vary_init``,
``morph``, ``morph_kicks``, ``render_recipe``, ``pack_zip``); each answer's kicks carry their
recipe and their measurements (loudness, true peak, decay, body pitch and root note). The
producer-loop routes (the studio) live in :mod:`kickgen.serve.studio`.

Generation runs on a small thread pool (``ServeConfig.concurrency`` workers) behind a bounded
queue: when ``concurrency + queue_size`` requests are already in flight, a new one is answered
``503`` with a ``Retry-After`` estimated from recent generation times, and the event loop stays
free to serve the page, the WAVs and ``/healthz`` meanwhile.

Routes::

    GET  /                      the page (static/index.html)
    GET  /api/vocab             {"vocab": [...]}
    GET  /api/limits            the validated ranges and the defaults
    GET  /api/parse?prompt=...  which words of a prompt the model knows
    POST /api/generate          JSON -> ids, seeds, URLs of the WAVs, matched/ignored keywords
    POST /api/generate.wav      JSON -> one kick as audio/wav (the reference system's contract)
    POST /api/vary              multipart (an audio file or a kick id) -> variations, like /api/generate
    POST /api/morph             JSON (two kick ids, seeds or prompts) -> a series, like /api/generate
    POST /api/regenerate        JSON (a kick's recipe) -> the kick again, like /api/generate
    POST /api/pack              JSON (kick ids, format, rate, clean-up) -> application/zip
    GET  /api/kicks/{id}.wav    a generated kick (kept in a bounded store, oldest evicted)
    GET  /healthz               liveness and queue state
    GET  /docs, /openapi.json   the OpenAPI schema
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import threading
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, create_model

from kickgen import __version__
from kickgen.audio import NUM_SAMPLES
from kickgen.errors import KickgenError
from kickgen.keywords import PRODUCER_WORDS
from kickgen.pipeline import MAX_CFG_SCALE
from kickgen.producer.hygiene import HygieneConfig, HygieneError
from kickgen.producer.pack import measure_kick
from kickgen.producer.recall import kick_bytes
from kickgen.serve.guard import RequestGuard, answer
from kickgen.serve.store import InitStore, KickStore, kick_filename

STATIC_DIR = Path(__file__).parent / "static"

# Validated ranges of a request (the page reads them from /api/limits).
MAX_PROMPT_CHARS = 200
MAX_N = 8  # kicks per request
MAX_FRAMES = 16  # kicks in one morph series (the largest answer)
MIN_STEPS, MAX_STEPS = 1, 200  # sampler steps
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


def _to_list(value: Any) -> list[str]:
    return [str(v) for v in (value or [])]


def _suggestions(info: Any) -> dict[str, list[str]]:
    """``parse_prompt(...).suggestions`` as {unknown word: [close vocabulary entries]}."""
    raw = getattr(info, "suggestions", None) or {}
    if isinstance(raw, dict):
        return {str(k): _to_list(v) for k, v in raw.items()}
    return {}


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` (``upload_bytes`` on ``upload_paths``)
    is answered 413 before it is parsed (by its Content-Length, or as soon as a chunked body
    passes the limit), and one that is late is answered 408: it stalls ``timeout_s`` between
    chunks, or is not all in ``timeout_s + bytes / min_rate`` after its head (trickling bytes
    buys no more than ``min_rate`` pays for). The server closes such connections gracefully
    (:mod:`kickgen.serve.server`), so the client reads the answer."""

    def __init__(
        self,
        app,
        max_bytes: int,
        timeout_s: float,
        upload_bytes: int | None = None,
        upload_paths: tuple[str, ...] = (),
        min_rate: float = BODY_MIN_RATE,
    ):
        self.app, self.max_bytes = app, max_bytes
        self.timeout_s, self.min_rate = timeout_s, min_rate
        self.upload_bytes, self.upload_paths = upload_bytes or max_bytes, upload_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope.get("path") in self.upload_paths
        limit = self.upload_bytes if upload else self.max_bytes
        what = (
            f"upload over {limit // 2**20} MB: send a one-shot kick of at most {MAX_UPLOAD_SECONDS:g} s"
            if upload
            else f"request body over {limit} bytes"
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await answer(send, 413, what)
        start = time.monotonic()
        seen = 0
        body_done = False
        started = False

        async def limited_receive():
            nonlocal seen, body_done
            if body_done:  # later calls wait for a disconnect: no deadline of the body's
                return await receive()
            late = start + self.timeout_s + seen / self.min_rate - time.monotonic()
            try:
                if late <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), min(self.timeout_s, late))
            except asyncio.TimeoutError:
                detail = (
                    f"request body stalled for {self.timeout_s:g} s"
                    if late > self.timeout_s
                    else f"request body too slow: {seen} bytes in {time.monotonic() - start:.0f} s "
                    f"(send it within {self.timeout_s:g} s plus 1 s per {self.min_rate / 1024:g} KiB)"
                )
                raise _BodyRefused(408, detail) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyRefused(413, what)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyRefused as refused:
            if not started:
                await answer(send, refused.status, refused.detail)


class _BodyRefused(HTTPException):
    """Raised from the body stream; an HTTPException, so the route answers it as JSON itself."""

    def __init__(self, status: int, detail: str):
        super().__init__(status_code=status, detail=detail)
        self.status = status


def create_app(pipe: Pipeline, config: ServeConfig | None = None) -> FastAPI:
    """Build the FastAPI app serving ``pipe`` (loaded once by the caller)."""
    config = config or ServeConfig()
    if config.store_bytes < MAX_FRAMES * KICK_BYTES:
        raise ValueError(
            f"store_bytes={config.store_bytes}: hold at least one answer of {MAX_FRAMES} kicks ({MAX_FRAMES * KICK_BYTES} bytes)"
        )
    queue = GenerationQueue(config.concurrency, config.queue_size)
    store = KickStore(config.store_items, config.store_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        queue.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="kickgen",
        version=__version__,
        description="Kick-drum one-shots (2 s, 44.1 kHz mono WAV) from keywords.",
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, timeout_s=config.body_timeout_s,
                       upload_bytes=MAX_UPLOAD_BYTES + MAX_BODY_BYTES, upload_paths=UPLOAD_PATHS,
                       min_rate=config.body_min_rate)  # fmt: skip
    # outermost: strangers, other sites' pages and rebound names are refused before any body is read
    app.add_middleware(RequestGuard, allowed_hosts=config.allowed_hosts, ip_hosts=config.ip_hosts,
                       token=config.token)  # fmt: skip

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        # anything unforeseen (a generation failing mid-batch) is still the API's JSON error
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return JSONResponse(status_code=500, content={"detail": f"generation failed: {reason}"})

    app.state.pipe = pipe
    app.state.queue = queue
    app.state.store = store

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable line ("n: Input should be less than or equal to 8") plus the details,
        # without echoing the input back (it may be large, or NaN, which JSON cannot carry).
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            field, message = ".".join(loc) or "body", str(err.get("msg", "invalid"))
            if err.get("type") == "json_invalid":  # loc is ("body", character position)
                reason = (err.get("ctx") or {}).get("error", "")
                field, message = (
                    "body",
                    f"invalid JSON at character {loc[-1] if loc else 0}: {reason}",
                )
            elif field == "body" and "json" not in request.headers.get("content-type", ""):
                message = "send a JSON object with Content-Type: application/json"
            errors.append({"field": field, "message": message})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})

    def parse(prompt: str) -> ParseResponse:
        info = pipe.parse_prompt(prompt)
        return ParseResponse(
            matched=_to_list(info.matched),
            ignored=_to_list(info.unknown),
            suggestions=_suggestions(info),
            read_as={
                str(k): _to_list(v) for k, v in (getattr(info, "read_as", None) or {}).items()
            },
        )

    async def queued(job: Callable[[], T], request: Request, work: float = 1.0) -> T:
        """Run ``job()`` on the generation queue; its refusals become the API's answers."""
        try:
            return await queue.run(job, work=work, gone=request.is_disconnected)
        except ClientGone:
            raise HTTPException(
                status_code=408, detail="client disconnected; request dropped"
            ) from None
        except QueueFull as full:
            raise HTTPException(
                status_code=503,
                detail=f"server busy: {full.in_flight} requests in flight fill the queue; retry in {full.retry_after} s",
                headers={"Retry-After": str(full.retry_after)},
            ) from None
        except KickgenError as exc:  # a request the producer rejects (e.g. its own step limit)
            raise HTTPException(status_code=422, detail=str(exc)) from None

    def keep(kicks: list[Any], keywords: list[str]) -> list[Kick]:
        """Check, store and describe finished kicks (:class:`kickgen.producer.Kick`); runs on
        the worker thread, since measuring a kick takes a few milliseconds."""
        out = []
        for k in kicks:
            wave = np.asarray(k.wave, dtype=np.float32)
            if wave.ndim != 1 or not 0 < wave.size <= NUM_SAMPLES:
                raise GenerationFailed(
                    f"the pipeline returned a kick of shape {wave.shape}, expected at most ({NUM_SAMPLES},)"
                )
            if not np.isfinite(wave).all():
                raise GenerationFailed(
                    "the pipeline returned NaN or infinite samples (check the checkpoints)"
                )
            raw = np.asarray(k.raw, dtype=np.float32).reshape(-1)
            stored = store.add(kick_bytes(wave, k.recipe), k.seed, tuple(keywords), k.recipe, raw)
            url = f"/api/kicks/{stored.id}.wav"
            out.append(Kick(id=stored.id, seed=k.seed, url=url, recipe=k.recipe,
                            measure=measure_kick(wave)))  # fmt: skip
        return out

    def answer(
        kicks: list[Kick], req: KickRequest, words: ParseResponse, seconds: float
    ) -> GenerateResponse:
        return GenerateResponse(
            ids=[k.id for k in kicks],
            seeds=[k.seed for k in kicks],
            urls=[k.url for k in kicks],
            kicks=kicks,
            prompt=req.prompt,
            matched=words.matched,
            ignored=words.ignored,
            suggestions=words.suggestions,
            cfg_scale=req.cfg_scale,
            steps=req.steps,
            seconds=round(seconds, 3),
        )

    async def generate(
        req: KickRequest, n: int, request: Request
    ) -> tuple[list[Kick], ParseResponse, float]:
        """Generate and store ``n`` kicks off the event loop: (kicks, prompt words, seconds)."""
        from kickgen.producer.kicks import generate_kicks

        words = parse(req.prompt)
        seed = req.seed if req.seed is not None else secrets.randbelow(RANDOM_SEEDS)
        hygiene = hygiene_config(req.hygiene)

        def job() -> tuple[list[Kick], float]:
            start = time.perf_counter()
            kicks = generate_kicks(pipe, req.prompt, n=n, seed=seed, cfg_scale=req.cfg_scale,
                                   steps=req.steps, hygiene=hygiene)  # fmt: skip
            return keep(kicks, words.matched), time.perf_counter() - start

        kicks, seconds = await queued(job, request, work=n * req.steps)
        return kicks, words, seconds

    context = StudioContext(
        pipe, queue, store, InitStore(config.init_items), parse, queued, keep, answer
    )

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            **queue.state(),
            "stored_kicks": len(store),
            "stored_bytes": store.nbytes,
            "vocab_size": len(pipe.vocab),
        }

    @app.get("/api/vocab")
    def vocab() -> dict[str, Any]:
        """The keywords, and the producer words that read as them ({"boomy": ["deep", "long"]})."""
        words = list(pipe.vocab)
        aliases = {
            w: list(k) for w, k in PRODUCER_WORDS.items() if w not in words and set(k) <= set(words)
        }
        return {"vocab": words, "aliases": aliases}

    @app.get("/api/limits")
    def limits() -> dict[str, Any]:
        return {
            "max_prompt_chars": MAX_PROMPT_CHARS,
            "n": {"min": 1, "max": MAX_N, "default": DEFAULT_N},
            "frames": {"min": 2, "max": MAX_FRAMES, "default": 8},
            "steps": {"min": MIN_STEPS, "max": MAX_STEPS, "default": DEFAULT_STEPS},
            "cfg_scale": {"min": MIN_CFG, "max": MAX_CFG, "default": DEFAULT_CFG},
            "seed": {"min": 0, "max": MAX_SEED},
            "upload": {"max_bytes": MAX_UPLOAD_BYTES, "max_seconds": MAX_UPLOAD_SECONDS},
            "hygiene": HygieneConfig().to_dict(),
            "server": {k: v for k, v in asdict(config).items() if k not in PRIVATE_CONFIG},
        }

    @app.get("/api/parse", response_model=ParseResponse)
    def parse_route(prompt: str = Query("", max_length=MAX_PROMPT_CHARS)) -> ParseResponse:
        return parse(prompt)

    @app.post("/api/generate", response_model=GenerateResponse)
    async def generate_route(req: GenerateRequest, request: Request) -> GenerateResponse:
        kicks, words, seconds = await generate(req, req.n, request)
        return answer(kicks, req, words, seconds)

    wav_response = {
        200: {"content": {"audio/wav": {}}, "description": "a 2 s, 44.1 kHz, mono float32 WAV"}
    }

    @app.post("/api/generate.wav", response_class=Response, responses=wav_response)
    async def generate_wav_route(req: KickRequest, request: Request) -> Response:
        kicks, words, _ = await generate(req, 1, request)
        kick = store.get(kicks[0].id)
        return Response(
            kick.wav if kick is not None else b"",
            media_type="audio/wav",
            headers={
                "Content-Disposition": f'attachment; filename="{kick_filename(words.matched, kicks[0].seed)}"',
                "X-Kickgen-Seed": str(kicks[0].seed),
                "X-Kickgen-Matched": " ".join(words.matched),
            },
        )

    @app.get("/api/kicks/{kick_id}.wav", response_class=Response, responses=wav_response)
    def kick_wav(kick_id: str = PathParam(pattern=r"^[0-9a-f]{16}$")) -> Response:
        kick = store.get(kick_id)
        if kick is None:
            raise HTTPException(
                status_code=404,
                detail=f"kick {kick_id} not found: the server keeps only its newest kicks; generate it again",
            )
        return Response(
            kick.wav,
            media_type="audio/wav",
            headers={
                "Content-Disposition": f'inline; filename="{kick.filename}"',
                "Cache-Control": "private, max-age=86400, immutable",
                "X-Kickgen-Seed": str(kick.seed),
            },
        )

    from kickgen.serve.studio import add_studio_routes

    add_studio_routes(app, context)
    return app

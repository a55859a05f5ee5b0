"""The HTTP API and the page of ``kickgen serve``, built around an injected pipeline.

``create_app(pipe)`` takes anything with the :class:`~kickgen.pipeline.KickPipeline` interface
(``vocab``, ``device``, ``parse_prompt(prompt)``, ``render(rows, ...)``), so the pipeline is
loaded once, by the caller, before the server starts. Every route makes its kicks with the
producer functions the CLI calls (:mod:`kickgen.producer`: ``generate_kicks``, ``vary_init``,
``morph``, ``morph_kicks``, ``render_recipe``, ``pack_zip``); each answer's kicks carry their
recipe and their measurements (loudness, true peak, decay, body pitch and root note). The
producer-loop routes (the studio) live in :mod:`kickgen.serve.studio`; what both share (limits,
models, the queue, :class:`~kickgen.serve.context.StudioContext`) in :mod:`kickgen.serve.context`.

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
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from kickgen import __version__
from kickgen.audio import NUM_SAMPLES
from kickgen.errors import KickgenError
from kickgen.keywords import PRODUCER_WORDS
from kickgen.producer.hygiene import HygieneConfig
from kickgen.producer.pack import measure_kick
from kickgen.producer.recall import kick_bytes
from kickgen.serve.context import (
    BODY_MIN_RATE,
    KICK_BYTES,
    MAX_BODY_BYTES,
    MAX_FRAMES,
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_SECONDS,
    PRIVATE_CONFIG,
    RANDOM_SEEDS,
    UPLOAD_PATHS,
    ClientGone,
    GenerateRequest,
    GenerateResponse,
    GenerationFailed,
    GenerationQueue,
    Kick,
    KickRequest,
    ParseResponse,
    Pipeline,
    QueueFull,
    ServeConfig,
    StudioContext,
    hygiene_config,
    request_limits,
    suggestions,
    to_list,
)
from kickgen.serve.guard import RequestGuard, answer
from kickgen.serve.store import InitStore, KickStore, kick_filename

STATIC_DIR = Path(__file__).parent / "static"
T = TypeVar("T")


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
            matched=to_list(info.matched),
            ignored=to_list(info.unknown),
            suggestions=suggestions(info),
            read_as={str(k): to_list(v) for k, v in (getattr(info, "read_as", None) or {}).items()},
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
            **request_limits(),
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

"""The studio: the producer's loop behind the page (vary, morph, regenerate, pack).

Each route describes its kicks to the producer functions the CLI calls and answers like
``/api/generate`` (ids, URLs, each kick's recipe and measurements), except ``/api/pack``,
which answers a zip:

    POST /api/vary        multipart: ``file`` (WAV/FLAC/AIFF/OGG) or ``kick`` (an id), ``strength``,
                          ``prompt``, ``n``, ``seed``, ``cfg_scale``, ``steps``, ``hygiene`` (JSON)
    POST /api/morph       JSON: ``a`` and ``b`` (kick ids), or ``seeds`` or ``prompts``; ``frames``
    POST /api/regenerate  JSON: ``recipe`` (as a kick's answer gave it)
    POST /api/pack        JSON: ``ids``, ``format``, ``sample_rate``, ``hygiene`` -> application/zip

An upload is checked before any model runs, in this order: at most ``MAX_UPLOAD_BYTES`` (413,
by :class:`~kickgen.serve.app.BodyLimit` before the body is read), a well-formed form, valid
fields (422), then decodable audio of at most ``MAX_UPLOAD_SECONDS`` that is not silent (422,
:func:`kickgen.producer.variations.init_from_bytes`). The body is parsed in memory and the
decoded kick is held in the bounded :class:`~kickgen.serve.store.InitStore` under its
``memory:`` name, so its variations stay regenerable while it is there; nothing touches the
disk. Every route runs its model work on the one generation queue, whose bounds (503) apply.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import urllib.parse
from typing import Annotated, Any, Literal

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from kickgen.audio import SAMPLE_RATE, resample
from kickgen.errors import KickgenError
from kickgen.producer.engine import is_memory_name, memory_name
from kickgen.producer.kicks import Kick as ProducerKick
from kickgen.producer.pack import FIRST_KEY, LAST_KEY, measure_kick, pack_zip, slug
from kickgen.producer.recall import FORMATS, SAMPLE_RATES, finish
from kickgen.producer.variations import init_from_samples
from kickgen.serve.context import (
    DEFAULT_CFG,
    DEFAULT_N,
    DEFAULT_STEPS,
    DISCONNECT_POLL_S,
    MAX_CFG,
    MAX_FRAMES,
    MAX_N,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_SECONDS,
    MIN_CFG,
    MIN_STEPS,
    RANDOM_SEEDS,
    ClientGone,
    GenerateResponse,
    Hygiene,
    KickRequest,
    StudioContext,
    hygiene_config,
)

KICK_ID = r"^[0-9a-f]{16}$"
MAX_PACK = LAST_KEY - FIRST_KEY + 1  # kicks in one pack: one MIDI key each
DEFAULT_STRENGTH = 0.5  # a dropped kick; the page's "more like this" asks for less
MAX_FORM_PARTS = 16
UPLOAD_FIELDS = ("file", "kick", "strength", "prompt", "n", "seed", "cfg_scale", "steps", "hygiene")


class VaryForm(BaseModel):
    """The fields of ``POST /api/vary`` besides ``file``."""

    model_config = ConfigDict(extra="forbid")
    kick: str | None = Field(None, pattern=KICK_ID, description="vary this kick instead of a file")
    strength: float = Field(DEFAULT_STRENGTH, ge=0.0, le=1.0, allow_inf_nan=False,
                            description="0 = the kick through our models, 1 = ignore it")  # fmt: skip
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    n: int = Field(DEFAULT_N, ge=1, le=MAX_N)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    cfg_scale: float = Field(DEFAULT_CFG, ge=MIN_CFG, le=MAX_CFG, allow_inf_nan=False)
    steps: int = Field(DEFAULT_STEPS, ge=MIN_STEPS, le=MAX_STEPS)
    hygiene: Hygiene | None = Field(None, description="JSON, as in /api/generate")  # type: ignore[valid-type]


class VaryResponse(GenerateResponse):
    strength: float
    source: dict[str, Any] | None = Field(
        description="the uploaded kick as it is (level, root note), for loudness-matched A/B"
    )


class MorphRequest(BaseModel):
    """Two endpoints: kick ids ``a`` and ``b`` (from the crate), or ``seeds`` (with ``prompt``),
    or ``prompts`` (with ``seed``)."""

    model_config = ConfigDict(extra="forbid")
    a: str | None = Field(None, pattern=KICK_ID)
    b: str | None = Field(None, pattern=KICK_ID)
    seeds: list[int] | None = Field(None, min_length=2, max_length=2)
    prompts: list[Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]] | None = Field(
        None, min_length=2, max_length=2
    )
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    frames: int = Field(8, ge=2, le=MAX_FRAMES)
    cfg_scale: float = Field(DEFAULT_CFG, ge=MIN_CFG, le=MAX_CFG, allow_inf_nan=False)
    steps: int = Field(DEFAULT_STEPS, ge=MIN_STEPS, le=MAX_STEPS)
    hygiene: Hygiene | None = None  # type: ignore[valid-type]


class RegenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: dict[str, Any] = Field(description="a kick's recipe, as an answer gave it")


class PackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=KICK_ID)]] = Field(min_length=1, max_length=MAX_PACK)
    format: Literal[tuple(FORMATS)] = "pcm24"  # type: ignore[valid-type]
    sample_rate: Literal[SAMPLE_RATES] = SAMPLE_RATE  # type: ignore[valid-type]
    hygiene: Hygiene | None = Field(  # type: ignore[valid-type]
        None, description="clean every kick up again from its raw output; null keeps each as it is"
    )
    name: str = Field("kickgen-crate", pattern=r"^[A-Za-z0-9_-]{1,40}$")


class FormError(Exception):
    """A multipart body that cannot be read; the message says why."""


def read_form(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """A ``multipart/form-data`` body parsed in memory: ``{field: (file name or None, bytes)}``
    (a form without a file may also come URL-encoded)."""
    kind, params = parse_options_header(content_type)
    if kind == b"application/x-www-form-urlencoded":
        fields = urllib.parse.parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        if len(fields) > MAX_FORM_PARTS:
            raise FormError(f"more than {MAX_FORM_PARTS} form fields")
        if any(k == "file" for k, _ in fields):
            raise FormError("send the kick's audio file as multipart/form-data")
        return {k: (None, v.encode("latin-1")) for k, v in fields}
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormError("send the kick as multipart/form-data with a 'file' field")
    parts: list[dict[str, Any]] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        if len(parts) >= MAX_FORM_PARTS:
            raise FormError(f"more than {MAX_FORM_PARTS} form fields")
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header[0].lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data}  # fmt: skip
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except FormError:
        raise
    except Exception as exc:  # python-multipart raises its own types for malformed bodies
        raise FormError(f"the form is not well-formed multipart ({exc})") from None
    form: dict[str, tuple[str | None, bytes]] = {}
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise FormError("a form field has no name")
        filename = disposition.get(b"filename")
        form[name] = (
            None if filename is None else filename.decode("utf-8", "replace"),
            bytes(part["data"]),
        )
    return form


def _vary_schema() -> dict[str, Any]:
    schema = VaryForm.model_json_schema()
    props = {"file": {"type": "string", "format": "binary",
                      "description": f"WAV, FLAC, AIFF or OGG, at most {MAX_UPLOAD_BYTES // 2**20} MB and "
                                     f"{MAX_UPLOAD_SECONDS:g} s"}}  # fmt: skip
    for name, prop in schema["properties"].items():
        props[name] = {"type": "string", "description": "JSON"} if name == "hygiene" else prop
    return {"type": "object", "properties": props}


def add_studio_routes(app: FastAPI, ctx: StudioContext) -> None:
    """Register the studio's routes (module docstring) on ``app``."""
    pipe, store, inits = ctx.pipe, ctx.store, ctx.inits
    # Uploads read and decoded at once: no more than the queue admits, so the memory that
    # bodies of up to 20 MB take stays bounded however many connections send them.
    reading = asyncio.Semaphore(ctx.queue.capacity)

    def stored(kick_id: str) -> Any:
        kick = store.get(kick_id)
        if kick is None:
            raise HTTPException(
                status_code=404,
                detail=f"kick {kick_id} not found: the server keeps only its newest kicks; regenerate it from its recipe",
            )
        return kick

    def as_producer_kick(kick: Any) -> ProducerKick:
        raw = torch.from_numpy(kick.raw) if kick.raw is not None else torch.zeros(0)
        return ProducerKick(kick.wave(), raw, kick.recipe)

    def words_of(prompt: str) -> list[str]:
        return ctx.parse(prompt).matched

    @app.post(
        "/api/vary",
        response_model=VaryResponse,
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _vary_schema()}}}},
    )  # fmt: skip
    async def vary_route(request: Request) -> VaryResponse:
        """Variations of an uploaded kick (``file``) or of a kick of this server (``kick``)."""
        if reading.locked():
            wait = ctx.queue.retry_after()
            raise HTTPException(
                status_code=503,
                detail=f"server busy: {ctx.queue.capacity} uploads are being read; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        async with reading:
            return await vary(request)

    async def vary(request: Request) -> VaryResponse:
        from kickgen.producer.variations import decode_upload, vary_init

        try:
            body = await request.body()
        except ClientDisconnect:  # the client left mid-upload: nobody to answer, nothing to log
            raise HTTPException(status_code=400, detail="client disconnected") from None
        try:
            form = read_form(body, request.headers.get("content-type", ""))
        except FormError as exc:
            raise HTTPException(status_code=422, detail=f"body: {exc}") from None
        unknown = sorted(set(form) - set(UPLOAD_FIELDS))
        if unknown:
            raise HTTPException(
                status_code=422,
                detail=f"{unknown[0]}: unknown form field (known: {', '.join(UPLOAD_FIELDS)})",
            )
        fields: dict[str, Any] = {
            k: v.decode("utf-8", "replace") for k, (_, v) in form.items() if k != "file"
        }
        if fields.get("seed") == "":
            fields.pop("seed")
        if "hygiene" in fields:
            try:
                fields["hygiene"] = json.loads(fields["hygiene"])
            except (ValueError, RecursionError):  # not JSON, or nested too deep to read
                raise HTTPException(status_code=422, detail="hygiene: send a JSON object") from None
        try:
            req = VaryForm.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        hygiene = hygiene_config(req.hygiene)
        if ("file" in form) == (req.kick is not None):
            raise HTTPException(
                status_code=422,
                detail="file: send either an audio file or a kick id, not both or neither",
            )
        source = None
        if "file" in form:
            filename, payload = form["file"]
            if len(payload) > MAX_UPLOAD_BYTES:
                raise HTTPException(
                    status_code=413,
                    detail=f"upload over {MAX_UPLOAD_BYTES // 2**20} MB: send a one-shot kick of at most {MAX_UPLOAD_SECONDS:g} s",
                )

            def decode() -> tuple[torch.Tensor, dict[str, Any]]:
                mono, rate = decode_upload(
                    payload, f"the uploaded file {filename or ''}".strip(), MAX_UPLOAD_SECONDS
                )
                measured = measure_kick(resample(mono, rate, SAMPLE_RATE))
                return init_from_samples(mono, rate), {"name": filename, **measured}

            try:
                init, source = await asyncio.to_thread(decode)
            except KickgenError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
        else:
            init = init_from_samples(stored(req.kick).wave(), SAMPLE_RATE)
        inits.add(memory_name(init), init)
        seed = req.seed if req.seed is not None else secrets.randbelow(RANDOM_SEEDS)
        words = ctx.parse(req.prompt)

        def job() -> tuple[list[Any], float]:
            start = time.perf_counter()
            kicks = vary_init(pipe, init, prompt=req.prompt, strength=req.strength, n=req.n, seed=seed,
                              cfg_scale=req.cfg_scale, steps=req.steps, hygiene=hygiene)  # fmt: skip
            return ctx.keep(kicks, words.matched), time.perf_counter() - start

        kicks, seconds = await ctx.queued(job, request, work=req.n * req.steps)
        base = ctx.answer(
            kicks,
            KickRequest(prompt=req.prompt, cfg_scale=req.cfg_scale, steps=req.steps),
            words,
            seconds,
        )
        return VaryResponse(**base.model_dump(), strength=req.strength, source=source)

    @app.post("/api/morph", response_model=GenerateResponse)
    async def morph_route(req: MorphRequest, request: Request) -> GenerateResponse:
        """A series of ``frames`` kicks from A to B, rendered once (the page scrubs through it)."""
        from kickgen.producer.morph import morph, morph_kicks

        given = [name for name, on in (("a, b", req.a is not None or req.b is not None),
                 ("seeds", req.seeds is not None), ("prompts", req.prompts is not None)) if on]  # fmt: skip
        if len(given) != 1 or (given == ["a, b"] and (req.a is None or req.b is None)):
            raise HTTPException(
                status_code=422, detail="body: give two kick ids (a and b), or seeds, or prompts"
            )
        hygiene = hygiene_config(req.hygiene)
        settings = dict(cfg_scale=req.cfg_scale, steps=req.steps, hygiene=hygiene)
        if req.a is not None:
            a, b = as_producer_kick(stored(req.a)), as_producer_kick(stored(req.b))
            prompt = " → ".join(
                dict.fromkeys(
                    str(k.recipe["rows"][k.recipe["index"]].get("prompt", "")) for k in (a, b)
                )
            )

            def render() -> list[ProducerKick]:
                return morph_kicks(pipe, a, b, frames=req.frames, **settings)
        else:
            ends = req.seeds if req.seeds is not None else req.prompts
            kind = "seed" if req.seeds is not None else "prompt"
            prompt = req.prompt if kind == "seed" else " → ".join(req.prompts)
            seed = req.seed if req.seed is not None else secrets.randbelow(RANDOM_SEEDS)

            def render() -> list[ProducerKick]:
                return morph(
                    pipe,
                    ends[0],
                    ends[1],
                    frames=req.frames,
                    prompt=req.prompt,
                    seed=seed,
                    kind=kind,
                    **settings,
                )

        def job() -> tuple[list[Any], float]:
            start = time.perf_counter()
            kicks = render()
            return ctx.keep(kicks, words_of(prompt.replace("→", " "))), time.perf_counter() - start

        kicks, seconds = await ctx.queued(job, request, work=req.frames * req.steps)
        words = ctx.parse(prompt.replace("→", " "))
        return ctx.answer(
            kicks,
            KickRequest(prompt=prompt[:MAX_PROMPT_CHARS], cfg_scale=req.cfg_scale, steps=req.steps),
            words,
            seconds,
        )

    @app.post("/api/regenerate", response_model=GenerateResponse)
    async def regenerate_route(req: RegenerateRequest, request: Request) -> GenerateResponse:
        """The kick a recipe describes, rendered again (bit for bit on the same device type).

        The recipe's limits (rows, steps) are checked before anything runs, and only kicks
        uploaded to this server (``memory:`` names) may be its init: a server path would tell
        the client whether a file exists and what it holds. The run stops at the next sampler
        step once the client has gone."""
        from kickgen.producer.recall import check_model, check_recipe, render_recipe_raw

        try:
            recipe = check_recipe(req.recipe, "recipe")
            check_model(pipe, recipe, "recipe")
        except KickgenError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if any(not is_memory_name(name) for name in recipe.init):
            raise HTTPException(status_code=422, detail="recipe: its init kick is not an upload to this server: "
                                "only uploaded kicks (memory: names) can be regenerated here; use kickgen regenerate")  # fmt: skip
        audio = {name: wave for name in recipe.init if (wave := inits.get(name)) is not None}
        row = recipe.rows[recipe.index]
        left = threading.Event()  # set once the client has disconnected

        def step(_i: int, _n: int) -> None:
            if left.is_set():
                raise ClientGone()

        def job() -> tuple[list[Any], float]:
            start = time.perf_counter()
            raw = render_recipe_raw(pipe, recipe, "recipe", audio, callback=step)
            kick = ProducerKick(finish(raw, recipe.hygiene), raw, req.recipe)
            return ctx.keep([kick], words_of(row.prompt)), time.perf_counter() - start

        async def watch() -> None:
            while not await request.is_disconnected():
                await asyncio.sleep(DISCONNECT_POLL_S)
            left.set()

        watching = asyncio.create_task(watch())
        try:
            kicks, seconds = await ctx.queued(job, request, work=recipe.settings.steps)
        finally:
            watching.cancel()
        settings = recipe.settings
        return ctx.answer(kicks, KickRequest(prompt=row.prompt[:MAX_PROMPT_CHARS], cfg_scale=settings.cfg_scale,
                                             steps=settings.steps), ctx.parse(row.prompt), seconds)  # fmt: skip

    @app.post("/api/pack", response_class=Response,
              responses={200: {"content": {"application/zip": {}}, "description": "WAVs with their recipes, manifest.csv, an .sfz"}})  # fmt: skip
    async def pack_route(req: PackRequest, request: Request) -> Response:
        """The kicks ``ids`` as one zip (:func:`kickgen.producer.pack.pack_zip`)."""
        hygiene = hygiene_config(req.hygiene)
        kicks = [store.get(i) for i in req.ids]
        missing = [i for i, k in zip(req.ids, kicks, strict=True) if k is None]
        if missing:
            raise HTTPException(
                status_code=404,
                detail=f"kicks not held by the server any more: {', '.join(missing)}; regenerate them from their recipes",
            )

        def job() -> bytes:
            named = []
            for i, kick in enumerate(kicks):
                recipe = dict(kick.recipe or {})
                wave = kick.wave()
                if hygiene is not None and kick.raw is not None:
                    wave = finish(torch.from_numpy(kick.raw), hygiene)
                    recipe["hygiene"] = hygiene.to_dict()
                rows = recipe.get("rows") or [{}]
                prompt = str(rows[int(recipe.get("index", 0))].get("prompt", ""))
                file = f"{i + 1:02d}-{slug(prompt, pipe.vocab)}-s{kick.seed:010d}.wav"
                named.append((file, prompt, ProducerKick(wave, torch.zeros(0), recipe)))
            return pack_zip(named, req.format, req.sample_rate, req.name)

        data = await ctx.queued(job, request, work=len(kicks))
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{req.name}.zip"'})  # fmt: skip

"""KickPipeline: prompt → keywords → guided latent sampling → VAE decode → vocoder → kicks.

    pipe = KickPipeline.from_pretrained("checkpoints")          # loads the three files once
    out = pipe("punchy 808", n=16, seed=42)                      # one batched run
    out.waveforms                                                # (16, 88200) float32, peak 0.95

It is the one generation engine: :meth:`KickPipeline.render` runs a batch of :class:`Row` descriptions
(seed or seed mix, prompt or prompt mix, optional init kick and strength) through sampler → VAE
decoder → vocoder, and a plain call is the simplest such batch; the producer features
(variations, morphs, best-of, packs, regenerate), the server and eval describe rows and call it.

The pipeline is assembled from injected parts (text encoder, U-Net, noise scheduler, VAE,
vocoder or Griffin-Lim) and keeps them on one device. Kick i of seed s starts from noise drawn
with seed s + i on the CPU, so it is the same kick whatever the batch size, and on any device;
where that noise's kick swells after the hit, the hit check draws again from the seed's next
noise (:meth:`KickPipeline._hit_check`).

:func:`generate` is the guide's one-call API; it keeps the last pipeline it built, keyed by the
checkpoint paths and modification times, instead of reloading three checkpoints per call.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kickgen import griffin_lim
from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, log_mel, write_wav
from kickgen.descriptors import mel_swell_db
from kickgen.errors import PipelineError
from kickgen.models.autoencoder import fit_latent
from kickgen.output import auto_output_path, kick_file_name, variant_tag
from kickgen.prompts import PromptInfo, UnknownKeywordWarning, analyze_prompt
from kickgen.rows import Rendered, Row, checks_hit, row_noise, seed_noise, slerp, start_index
from kickgen.sampling import SamplerError, make_sampler
from kickgen.weights import (  # the guide's checkpoint names and the lookup order
    DIFFUSION_NAME,
    VAE_NAME,
    VOCODER_ALIAS,
    VOCODER_NAME,
    find_checkpoints,
    resolve_vocoder_path,
)

OUTPUT_PEAK = 0.95  # generated kicks are peak-normalised to this amplitude
FADE_START_S = 1.0  # cubic fade-out from here ...
FADE_END_S = 1.75  # ... to silence here, silent until 2.0 s
DEFAULT_BATCH = 16  # kicks per batched sampler run
SEED_RANGE = 2**31 - 1  # seeds drawn when none is given (s + n − 1 must fit the generator)
REDRAWS = 2  # other noises the hit check tries for a kick that swells after the hit, at most
MAX_REDRAWS = REDRAWS  # what a recipe may ask for: no more work than a request makes
REDRAW_SWELL_DB = 1.0  # the hit check's bar on descriptors.mel_swell_db of the decoded log-mel
MAX_CFG_SCALE = (
    20.0  # guidance above this only overflows (inf gives NaN audio); the server's bound too
)


# --------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` → CUDA if available, else MPS, else CPU; otherwise the named device.

    Raises :class:`PipelineError` when the named device is unknown or not available here.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PipelineError(
            f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(
            f"device {device!r} asked for, but CUDA is not available: use --device cpu"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PipelineError(
            f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise PipelineError(
            f"device {device!r} asked for, but MPS is not available: use --device cpu"
        )
    return dev


# --------------------------------------------------------------------------- post-processing


def fade_envelope(num_samples: int = NUM_SAMPLES, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Gain ``(num_samples,)``: 1 until 1.0 s, cubic fade ``(1 − x)³`` to 0 at 1.75 s, then 0."""
    t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    x = ((t - FADE_START_S) / (FADE_END_S - FADE_START_S)).clamp(0.0, 1.0)
    return ((1.0 - x) ** 3).float()


def postprocess(waves: torch.Tensor) -> torch.Tensor:
    """The reference's output stage on ``(B, L)`` → ``(B, 88200)`` float32.

    Trim or zero-pad to 2 s, cubic fade from 1.0 s to 1.75 s and silence after it, then scale each
    kick to a 0.95 peak (silent kicks stay silent). Normalising after the fade gives the
    reference's result whenever the peak lies in the first second, as it does for a kick, and
    guarantees the 0.95 peak of the output contract otherwise.
    """
    waves = waves.float()
    if waves.shape[-1] >= NUM_SAMPLES:
        waves = waves[..., :NUM_SAMPLES]
    else:
        waves = torch.nn.functional.pad(waves, (0, NUM_SAMPLES - waves.shape[-1]))
    waves = waves * fade_envelope().to(waves.device)
    peaks = waves.abs().amax(dim=-1, keepdim=True)  # (B, 1)
    return torch.where(peaks > 0, waves * (OUTPUT_PEAK / peaks.clamp(min=1e-12)), waves)


# --------------------------------------------------------------------------- pipeline


@dataclass
class GenerationOutput:
    """What one pipeline call produced."""

    waveforms: torch.Tensor  # (n, 88200) float32 on the CPU, 44.1 kHz, peak 0.95
    seeds: list[int]  # kick i used seed seeds[i] = seed + i
    prompt: PromptInfo  # matched / unknown keywords of the prompt
    log_mels: torch.Tensor  # (n, 128, 173) decoded log-mels, on the CPU
    settings: dict[str, object] = field(default_factory=dict)  # cfg_scale, steps, sampler, vocoder


class KickPipeline:
    """Loads the parts once and generates batches of kicks. See the module docstring."""

    def __init__(
        self,
        unet: torch.nn.Module,
        text_encoder: torch.nn.Module,
        scheduler: torch.nn.Module,
        vae: torch.nn.Module,
        vocoder: torch.nn.Module | None,
        vocab: Sequence[str],
        latent_dim: int,
        device: torch.device | str | None = None,
        sources: dict[str, Path | None] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.unet = unet.to(self.device).eval()
        self.text_encoder = text_encoder.to(self.device).eval()
        self.scheduler = scheduler.to(self.device)
        self.vae = vae.to(self.device).eval()
        if self.device.type == "cpu":  # oneDNN's preferred layout: at batch 16 the VAE decode took
            # 53 ms instead of 80, and the U-Net's cut the kick from 0.061 to 0.055 s (A/B runs,
            # docs/experiments.md, *Speed*)
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        self.vocoder = vocoder.to(self.device).eval() if vocoder is not None else None
        self.vocab = list(vocab)
        self.latent_dim = int(latent_dim)
        self.sources = dict(sources or {})  # which files the parts came from
        # the hit check's other noises per plain kick (0: off) where a call names none
        self.redraws = REDRAWS
        self._lock = threading.Lock()  # one generation at a time per pipeline (serve shares one)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoints(
        cls,
        diffusion: str | Path,
        vae: str | Path,
        vocoder: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> KickPipeline:
        """Build from the three checkpoint files; ``vocoder=None`` uses Griffin-Lim.

        Every file is loaded with ``weights_only=True``; a missing, corrupt or wrong-kind file
        raises a one-line error naming it.
        """
        from kickgen import checkpoints

        dev = resolve_device(device)
        diffusion, vae = Path(diffusion), Path(vae)
        vocoder = resolve_vocoder_path(vocoder) if vocoder is not None else None
        unet, text_encoder, scheduler, vocab, config = checkpoints.load_diffusion(diffusion)
        vae_model = checkpoints.load_vae(vae)
        voc_model = (
            checkpoints.load_vocoder(vocoder) if vocoder is not None else None
        )  # weight norm removed
        latent_dim = int(config.latent_dim)
        if int(vae_model.latent_dim) != latent_dim:
            raise PipelineError(
                f"{vae} has latent_dim {vae_model.latent_dim} but {diffusion} expects {latent_dim}: "
                "use the VAE the diffusion model was trained on"
            )
        return cls(
            unet=unet,
            text_encoder=text_encoder,
            scheduler=scheduler,
            vae=vae_model,
            vocoder=voc_model,
            vocab=vocab,
            latent_dim=latent_dim,
            device=dev,
            sources={"diffusion": diffusion, "vae": vae, "vocoder": vocoder},
        )

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path | None = None,
        device: str | torch.device | None = None,
        use_vocoder: bool = True,
    ) -> KickPipeline:
        """Build from a folder holding the guide's three checkpoint names (see from_checkpoints).

        ``directory=None`` follows kickgen's lookup order: ``$KICKGEN_CHECKPOINTS``, then
        ``./checkpoints`` when it holds the three files, then the weights installed with the
        package (:mod:`kickgen.weights`). A named folder that lacks a file is an error naming it.
        ``use_vocoder=False`` uses Griffin-Lim.
        """
        files = find_checkpoints(directory, use_vocoder=use_vocoder, named_by="checkpoint folder",
                                 vocoder_hint="use_vocoder=False")  # fmt: skip
        return cls.from_checkpoints(files.diffusion, files.vae, files.vocoder, device)

    # ------------------------------------------------------------------ prompts
    def parse_prompt(self, prompt: str) -> PromptInfo:
        """Match ``prompt`` against this model's vocabulary (no warning; see ``.unknown``)."""
        return analyze_prompt(prompt, self.vocab)

    @torch.inference_mode()
    def encode_prompt(self, token_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond, uncond)``, each ``(1, cond_dim)``, for one prompt's token ids."""
        both = self.text_encoder([list(token_ids), []], self.device)  # (2, cond_dim)
        return both[:1].clone(), both[1:].clone()

    @torch.inference_mode()
    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """VAE latents ``(B, latent_dim, 8, 11)`` of waveforms ``(B, 88200)`` (44.1 kHz,
        preprocessed): the encoder's, then fitted to the mel
        (:func:`~kickgen.models.autoencoder.fit_latent`)."""
        mel = log_mel(wave.float().to(self.device)).unsqueeze(1)  # (B, 1, 128, 173)
        return fit_latent(self.vae, mel).float()

    # ------------------------------------------------------------------ generation
    def __call__(
        self,
        prompt: str = "",
        n: int = 1,
        seed: int | None = None,
        cfg_scale: float = 3.0,
        steps: int = 50,
        sampler: str = "ddim",
        batch_size: int = DEFAULT_BATCH,
        callback: Callable[[int, int], None] | None = None,
        warn_unknown: bool = True,
    ) -> GenerationOutput:
        """Generate ``n`` kicks for ``prompt``: the simplest batch of rows, ``Row(seed + i, prompt)``.

        ``seed`` None draws one; kick i uses seed + i. ``steps`` sampler steps, ``cfg_scale`` ≥ 0
        (1 = no guidance). ``callback(done, total)`` reports sampler steps over all batches.
        Unknown prompt words trigger an :class:`~kickgen.prompts.UnknownKeywordWarning`.
        """
        check_generation_args(
            n=n, steps=steps, cfg_scale=cfg_scale, seed=seed, batch_size=batch_size
        )
        info = self.parse_prompt(prompt)
        if warn_unknown and info.warning_text():
            warnings.warn(info.warning_text(), UnknownKeywordWarning, stacklevel=2)
        if seed is None:
            seed = secrets.randbelow(SEED_RANGE - n)
        seeds = [int(seed) + i for i in range(n)]
        batches = [seeds[i : i + batch_size] for i in range(0, n, batch_size)]
        total_steps = len(batches) * steps
        waves, mels = [], []
        with self._lock, torch.inference_mode():
            for b, batch_seeds in enumerate(batches):
                step_cb = None
                if callback is not None:

                    def step_cb(i: int, _total: int, _b: int = b) -> None:
                        callback(_b * steps + i + 1, total_steps)

                rows = [Row(seed=s, prompt=prompt) for s in batch_seeds]
                out = self._render(rows, float(cfg_scale), steps, sampler, 1.0, None, step_cb)
                waves.append(postprocess(out.raw))
                mels.append(out.log_mels)
        settings = {"cfg_scale": float(cfg_scale), "steps": steps, "sampler": sampler,
                    "vocoder": "hifigan" if self.vocoder is not None else "griffin-lim"}  # fmt: skip
        return GenerationOutput(torch.cat(waves), seeds, info, torch.cat(mels), settings)

    def render(
        self,
        rows: Sequence[Row],
        cfg_scale: float = 3.0,
        steps: int = 50,
        sampler: str = "ddim",
        strength: float = 1.0,
        init_audio: Mapping[str, torch.Tensor] | None = None,
        callback: Callable[[int, int], None] | None = None,
        redraws: int | None = None,
    ) -> Rendered:
        """Run one batch of rows through sampler → VAE decoder → vocoder (one sampler call).

        Rows with an init kick (all or none of the batch) start from its VAE latent noised to the
        timestep ``strength`` selects (:func:`start_index`); ``init_audio`` maps each init file name
        to its loaded waveform ``(88200,)``. ``callback(i, n)`` runs after each sampler step.
        ``redraws``: the hit check's other noises per plain kick (None: ``self.redraws``).
        Running the same rows in the same batch again gives the same bits on the same device type.
        """
        with self._lock, torch.inference_mode():
            return self._render(rows, float(cfg_scale), steps, sampler, float(strength), init_audio,
                                callback, redraws)  # fmt: skip

    def hit_draws(self, rows: Sequence[Row], cfg_scale: float = 3.0, steps: int = 50,
                  sampler: str = "ddim", redraws: int | None = None) -> list[int]:  # fmt: skip
        """The noise draw each row of a batch renders from (``Rendered.draws``): the one the hit
        check picks for a plain row, without running the vocoder. Morphs start their endpoints
        from these, so a morph's first and last frames are the plain kicks."""
        with self._lock, torch.inference_mode():
            _, _, draws = self._latents(rows, float(cfg_scale), steps, sampler, 1.0, None, None, redraws)  # fmt: skip
            return draws

    def _render(self, rows, cfg_scale, steps, sampler, strength, init_audio, callback, redraws=None) -> Rendered:  # fmt: skip
        latents, mels, draws = self._latents(rows, cfg_scale, steps, sampler, strength, init_audio, callback, redraws)  # fmt: skip
        raw = self.vocode_raw(mels)
        return Rendered(raw, mels.float().cpu(), latents.float().cpu(), draws)

    def _latents(self, rows, cfg_scale, steps, sampler, strength, init_audio, callback, redraws):
        """Rows → ``(latents, log-mels, draws)``: sampler, VAE decoder and hit check."""
        if not rows:
            raise PipelineError("no rows to render: ask for at least 1 kick")
        has_init = [r.init is not None for r in rows]
        if any(has_init) and not all(has_init):
            raise PipelineError(
                "a batch mixes rows with and without an init kick: render them apart"
            )
        if not any(has_init) and strength != 1.0:
            raise PipelineError(f"strength={strength} needs an init kick: pass --init-audio FILE")
        noise = torch.stack(
            [row_noise(r, self.latent_dim) for r in rows]
        )  # (B, C, 8, 11) on the CPU
        cond, uncond = self._conditioning(rows)
        x0 = self._init_latents(rows, init_audio or {}) if any(has_init) else None
        first = start_index(steps, strength) if x0 is not None else 0
        if x0 is not None and first == steps:
            latents = x0  # strength 0: nothing to denoise
        else:
            solver = make_sampler(sampler, self.scheduler, steps)
            solver.timesteps = solver.timesteps[first:]  # a variation starts part-way down
            x = noise.to(self.device)
            if x0 is not None and first > 0:
                t = torch.full(
                    (len(rows),), int(solver.timesteps[0]), dtype=torch.long, device=self.device
                )
                x = self.scheduler.add_noise(x0, x, t)  # x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε
            latents = self._sample(solver, x, cond, uncond, cfg_scale, callback)
        mels = self.decode(latents)
        draws = [r.draw or 0 for r in rows]
        if x0 is None:
            redraws = self.redraws if redraws is None else int(redraws)
            latents, mels = self._hit_check(rows, draws, latents, mels, cond, uncond, cfg_scale, steps, sampler, redraws)  # fmt: skip
        return latents, mels, draws

    def _hit_check(
        self, rows, draws, latents, mels, cond, uncond, cfg_scale, steps, sampler, redraws
    ):
        """Draw again the plain kicks (:func:`~kickgen.rows.checks_hit`) whose decoded log-mel
        swells after the hit (:func:`~kickgen.descriptors.mel_swell_db` over
        ``REDRAW_SWELL_DB``): draw d of their seeds, d = 1 … ``redraws``, sampled together
        while any still swells; each keeps the draw that swells least (the first on a tie) and
        ``draws`` records it. Before the vocoder, so a redraw costs a sampler run and a VAE
        decode, not a vocoder pass; deterministic, so a recipe recalls it."""
        checked = [i for i, r in enumerate(rows) if checks_hit(r)]
        if not checked or redraws <= 0:
            return latents, mels
        swell = mel_swell_db(mels).tolist()
        for d in range(1, redraws + 1):
            again = [i for i in checked if swell[i] > REDRAW_SWELL_DB]
            if not again:
                break
            x = torch.stack([seed_noise(rows[i].seed, self.latent_dim, d) for i in again])
            solver = make_sampler(sampler, self.scheduler, steps)
            z = self._sample(solver, x.to(self.device), cond[again], uncond, cfg_scale, None)
            m = self.decode(z)
            for j, (i, s) in enumerate(zip(again, mel_swell_db(m).tolist(), strict=True)):
                if s < swell[i]:
                    latents[i], mels[i], swell[i], draws[i] = z[j], m[j], s, d
        return latents, mels

    def _sample(self, solver, x: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float,
                callback: Callable[[int, int], None] | None) -> torch.Tensor:  # fmt: skip
        """The sampler over the batch ``x (B, C, 8, 11)``, in :meth:`_in_parts`; ``callback``
        follows the first part."""

        def run(i: int, xs: torch.Tensor, cs: torch.Tensor) -> torch.Tensor:
            return solver.sample(self.unet, shape=tuple(xs.shape), cond=cs, uncond=uncond, cfg_scale=cfg_scale,
                                 device=self.device, noise=xs, callback=callback if i == 0 else None)  # fmt: skip

        return self._in_parts(run, x, cond)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, C, 8, 11)`` → log-mels ``(B, 128, 173)``: the VAE decoder, in
        :meth:`_in_parts` (eight batches of 16 kicks per process, timed whole and paired: 2.6 %
        less wall time than one two-thread pass per batch with the shipped files)."""

        def run(_: int, z: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # worker threads do not inherit it
                return self.vae.decode(z).squeeze(1)

        return self._in_parts(run, latents)

    def _in_parts(self, fn: Callable[..., torch.Tensor], *batches: torch.Tensor) -> torch.Tensor:
        """``fn(i, *parts)`` over the rows of ``batches``, concatenated. On the CPU the rows are
        split into :func:`cpu_workers` parts, each run on a thread of its own with one torch
        thread, like the vocoder's clips (see :meth:`vocode_raw`); elsewhere, one part."""
        parts = min(len(batches[0]), cpu_workers()) if self.device.type == "cpu" else 1
        if parts == 1:
            return fn(0, *batches)
        split = [b.tensor_split(parts) for b in batches]
        with torch_threads(1), ThreadPoolExecutor(parts) as pool:
            return torch.cat(list(pool.map(fn, range(parts), *split)))

    def _conditioning(self, rows: Sequence[Row]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond (B, cond_dim), uncond (1, cond_dim))``; a prompt mix is linear in the text vectors."""
        cache: dict[str, torch.Tensor] = {}
        uncond = None

        def vector(prompt: str) -> torch.Tensor:
            nonlocal uncond
            if prompt not in cache:
                c, uncond = self.encode_prompt(self.parse_prompt(prompt).token_ids)
                cache[prompt] = c[0]
            return cache[prompt]

        conds = []
        for r in rows:
            c = vector(r.prompt)
            if r.prompt_b is not None and r.t == 1.0:
                c = vector(r.prompt_b)  # the endpoint exactly
            elif r.prompt_b is not None and r.t != 0.0:
                c = (1.0 - r.t) * c + r.t * vector(r.prompt_b)
            conds.append(c)
        return torch.stack(conds), uncond

    def _init_latents(self, rows: Sequence[Row], audio: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Encoded init kicks ``(B, C, 8, 11)`` (one VAE pass over the distinct files)."""
        names: list[str] = []
        for r in rows:
            for name in (r.init, r.init_b):
                if name is not None and name not in names:
                    names.append(name)
        missing = [n for n in names if n not in audio]
        if missing:
            raise PipelineError(
                f"init kick {missing[0]} was not loaded: pass its waveform in init_audio"
            )
        z = self.encode_audio(torch.stack([audio[n] for n in names]))  # (F, C, 8, 11)
        latent = {n: z[i] for i, n in enumerate(names)}
        out = [
            latent[r.init] if r.init_b is None else slerp(latent[r.init], latent[r.init_b], r.t)
            for r in rows
        ]
        return torch.stack(out)

    @torch.inference_mode()
    def vocode_raw(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 128, T)`` → vocoder output ``(B, 88200)`` on the CPU, trimmed, not faded or normalised.

        On the CPU, HiFi-GAN runs one clip per call (its full-rate activations for several clips
        overflow the caches) on :func:`cpu_workers` threads side by side, each with one torch
        thread: clips are independent, so they need none of the synchronisation that splitting
        each convolution over threads costs (under load that synchronisation made a batch of 16
        six times slower). One clip, or one worker, runs at torch's thread count.
        """
        log_mel = log_mel.to(self.device)
        if self.vocoder is None:
            audio = griffin_lim.log_mel_to_audio(log_mel)  # (B, 88200)
        elif self.device.type == "cpu" and min(len(log_mel), cpu_workers()) > 1:
            clips, workers = log_mel.split(1), min(len(log_mel), cpu_workers())
            with torch_threads(1), ThreadPoolExecutor(workers) as pool:
                audio = torch.cat(list(pool.map(self._vocode_clip, clips)))  # (B, T·512)
        elif self.device.type == "cpu":
            audio = torch.cat([self._vocode_clip(clip) for clip in log_mel.split(1)])
        else:
            audio = self.vocoder(log_mel).squeeze(1)
        audio = audio.float().cpu()
        if audio.shape[-1] >= NUM_SAMPLES:
            return audio[:, :NUM_SAMPLES]
        return torch.nn.functional.pad(audio, (0, NUM_SAMPLES - audio.shape[-1]))

    @torch.inference_mode()  # worker threads do not inherit the caller's inference mode
    def _vocode_clip(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.vocoder(log_mel).squeeze(1)

    def vocode(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, 128, T)`` → post-processed waveforms ``(B, 88200)`` (HiFi-GAN or Griffin-Lim)."""
        return postprocess(self.vocode_raw(log_mel))


def cpu_workers() -> int:
    """How many independent jobs this process runs side by side: the cores it may use (its CPU
    affinity), at most torch's thread count (its default is the physical cores; a lower
    ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` is a request to use fewer)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, torch.get_num_threads()))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None or 0: as they are), then restore the count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_generation_args(
    n: int = 1,
    steps: int = 50,
    cfg_scale: float = 3.0,
    seed: int | None = None,
    batch_size: int = 1,
) -> None:
    """Raise :class:`PipelineError` for values generation cannot use, naming the value."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PipelineError(f"n={n!r}: ask for at least 1 kick")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise PipelineError(f"steps={steps!r}: use at least 1 sampler step (50 is the default)")
    if (
        not isinstance(cfg_scale, (int, float)) or not 0 <= cfg_scale <= MAX_CFG_SCALE
    ):  # NaN fails too
        raise PipelineError(
            f"cfg_scale={cfg_scale!r}: use a guidance scale from 0 to {MAX_CFG_SCALE:g} (3.0 is the default)"
        )
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_RANGE - n
    ):
        raise PipelineError(f"seed={seed!r}: use a whole number from 0 to {SEED_RANGE - n}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise PipelineError(f"batch_size={batch_size!r}: use at least 1")


def _file_key(path: Path | None) -> tuple:
    if path is None:
        return (None,)
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


_CACHE: dict[tuple, KickPipeline] = {}
_CACHE_LOCK = threading.Lock()


def cached_pipeline(
    diffusion: Path, vae: Path, vocoder: Path | None, device: str | torch.device | None = None
) -> KickPipeline:
    """The pipeline for these files, built once and reused while the files are unchanged.

    Keyed by the resolved paths, modification times and sizes; only the latest pipeline is kept.
    """
    diffusion, vae = Path(diffusion), Path(vae)
    vocoder = resolve_vocoder_path(vocoder) if vocoder is not None else None
    dev = resolve_device(device)
    key = (_file_key(diffusion), _file_key(vae), _file_key(vocoder), str(dev))
    with _CACHE_LOCK:
        pipe = _CACHE.get(key)
        if pipe is None:
            pipe = KickPipeline.from_checkpoints(diffusion, vae, vocoder, dev)
            _CACHE.clear()
            _CACHE[key] = pipe
        return pipe


def clear_cache() -> None:
    """Forget the cached pipeline (frees its memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def generate(
    diffusion_checkpoint: Path | None = None,
    vae_checkpoint: Path | None = None,
    vocoder_checkpoint: Path | None = None,
    prompt: str = "",
    cfg_scale: float = 3.0,
    ddim_steps: int = 50,
    output_path: Path | None = None,
    seed: int | None = None,
) -> Path:
    """Generate one kick and write it as a WAV (44.1 kHz, mono, float32, 88,200 samples, peak 0.95).

    The guide's API: ``vocoder_checkpoint=None`` uses Griffin-Lim; ``output_path=None`` writes
    ``generations/kick_<keywords>_s<seed>.wav``; ``seed=None`` draws a seed. A diffusion or VAE
    checkpoint left at None is found by kickgen's lookup order (``$KICKGEN_CHECKPOINTS``,
    ``./checkpoints``, the packaged weights; see :mod:`kickgen.weights`). The pipeline for these
    checkpoints is cached between calls. Returns the path of the written file.
    """
    check_generation_args(steps=ddim_steps, cfg_scale=cfg_scale, seed=seed)
    files = find_checkpoints(diffusion=diffusion_checkpoint, vae=vae_checkpoint,
                             use_vocoder=vocoder_checkpoint is not None, vocoder=vocoder_checkpoint)  # fmt: skip
    pipe = cached_pipeline(files.diffusion, files.vae, files.vocoder)
    if seed is None:
        seed = secrets.randbelow(SEED_RANGE)
    info = pipe.parse_prompt(prompt)
    if info.warning_text():
        warnings.warn(info.warning_text(), UnknownKeywordWarning, stacklevel=2)
    out = pipe(prompt, n=1, seed=seed, cfg_scale=cfg_scale, steps=ddim_steps, warn_unknown=False)
    if output_path is None:
        output_path = auto_output_path(info, seed, variant_tag(cfg_scale, ddim_steps))
    output_path = Path(output_path)
    try:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(output_path, out.waveforms[0])
    except OSError as exc:
        raise PipelineError(
            f"cannot write {output_path}: {exc.strerror or exc}; choose a writable path"
        ) from exc
    return output_path


__all__ = [
    "DIFFUSION_NAME",
    "VAE_NAME",
    "VOCODER_ALIAS",
    "VOCODER_NAME",
    "GenerationOutput",
    "KickPipeline",
    "PipelineError",
    "Rendered",
    "Row",
    "SamplerError",
    "auto_output_path",
    "cached_pipeline",
    "check_generation_args",
    "clear_cache",
    "generate",
    "kick_file_name",
    "postprocess",
    "resolve_device",
    "resolve_vocoder_path",
    "seed_noise",
    "slerp",
    "start_index",
    "variant_tag",
]

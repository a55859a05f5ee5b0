"""The reference's costs, as ``kickgen bench`` times them beside kickgen's.

- The rebuilt reference mode (:func:`reference_kick`): per kick, all three checkpoints loaded into
  freshly built models, batch 1, the conditional and unconditional U-Net passes one after the
  other (:class:`SequentialGuidance`) at every step; run in a warm worker process of its own
  (:class:`RebuiltReference`), with kickgen's model sizes or the reference's published ones
  (:func:`write_reference_size_checkpoints`).
- The reference's own ``generate()`` (:class:`ReferenceCode`), driven in a process of its own by
  ``reference_driver.py``, its copy named by :func:`reference_code_identity`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from kickgen.evaluation.bench_measures import peak_resident_mb


class SequentialGuidance(torch.nn.Module):
    """Runs a guidance batch ``cat([x, x])`` as two U-Net passes, one after the other (the reference)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    @property
    def prediction_type(self) -> str:
        return self.unet.prediction_type

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % 2:
            return self.unet(x, t, cond)
        n = x.shape[0] // 2
        return torch.cat([self.unet(x[:n], t[:n], cond[:n]), self.unet(x[n:], t[n:], cond[n:])])


def reference_kick(
    paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float, seed: int
) -> torch.Tensor:
    """One kick the reference's way: load all three files into freshly built models (its loader
    trusts the file: no config checks before the weights), batch 1, sequential guidance at every
    step. ``(88200,)``."""
    from kickgen import checkpoints as ck
    from kickgen.models.diffusion import NoiseScheduler
    from kickgen.models.text_encoder import KeywordEncoder
    from kickgen.pipeline import KickPipeline
    from kickgen.sampling import DDIMSampler

    diffusion = ck.load_checkpoint(paths["diffusion"], "diffusion")
    cfg = diffusion["config"]
    unet = ck.build_unet(cfg)
    unet.load_state_dict(diffusion["ema_state_dict"])
    text_encoder = KeywordEncoder(len(diffusion["vocab"]), cfg.text_embed_dim, cfg.cond_dim)
    text_encoder.load_state_dict(diffusion["text_enc_state_dict"])
    scheduler = NoiseScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    vae_ckpt, voc_ckpt = (
        ck.load_checkpoint(paths["vae"], "vae"),
        ck.load_checkpoint(paths["vocoder"], "vocoder"),
    )
    vae, vocoder = ck.build_vae(vae_ckpt["config"]), ck.build_vocoder(voc_ckpt["config"])
    vae.load_state_dict(vae_ckpt["model_state_dict"])
    vocoder.load_state_dict(voc_ckpt["generator"])
    vocoder.remove_weight_norm()
    pipe = KickPipeline(
        unet, text_encoder, scheduler, vae, vocoder, diffusion["vocab"], cfg.latent_dim, "cpu"
    )
    for module in (pipe.unet, pipe.vae):  # the reference runs torch's default layout
        module.to(memory_format=torch.contiguous_format)
    cond, uncond = pipe.encode_prompt(pipe.parse_prompt(prompt).token_ids)
    # guided at every step, as the reference is
    sampler = DDIMSampler(pipe.scheduler, steps, guidance_until=None, guidance_from=None)
    latent = sampler.sample(
        SequentialGuidance(pipe.unet), (1, pipe.latent_dim, 8, 11), cond, uncond, cfg_scale, "cpu",
        generator=[torch.Generator().manual_seed(seed)],
    )  # fmt: skip
    with torch.inference_mode():
        mel = pipe.vae.decode(latent).squeeze(1)
        return pipe.vocoder(mel)[0, 0]  # one call at torch's thread count, as the reference


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _timed_reference_kicks(paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float,
                           seeds: list[int]) -> tuple[list[float], float]:  # fmt: skip
    """Seconds of each :func:`reference_kick` (one per seed) and this process's peak resident
    memory in MiB; runs in :class:`RebuiltReference`'s worker."""
    import resource

    seconds = []
    for seed in seeds:
        start = time.perf_counter()
        reference_kick(paths, prompt, steps, cfg_scale, seed)
        seconds.append(time.perf_counter() - start)
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RebuiltReference:
    """The rebuilt reference mode in a warm process of its own, as the reference's own code runs
    (:class:`ReferenceCode`): in the bench's process, after its large batches, the same batch-1
    work ran up to a fifth slower than in a fresh one, which the reference never pays.
    ``with RebuiltReference(threads) as ref: ref.seconds(paths, prompt, steps, cfg, seeds)``."""

    def __init__(self, threads: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no forked state
        self._pool = ProcessPoolExecutor(1, context, initializer=_set_threads, initargs=(threads,))

    def __enter__(self) -> RebuiltReference:
        return self

    def seconds(self, paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float,
                seeds: list[int]) -> tuple[list[float], float]:  # fmt: skip
        """Seconds of each kick and the worker's peak resident memory so far (MiB)."""
        return self._pool.submit(
            _timed_reference_kicks, paths, prompt, steps, cfg_scale, seeds
        ).result()

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()


class ReferenceCode:
    """The reference's own ``generate()``, timed in a warm process of its own (``with
    ReferenceCode(dir, workdir) as ref: ref.seconds(kicks, seed)``); see
    :mod:`kickgen.evaluation.reference_driver`. ``directory`` is its ``pytorch/`` folder."""

    def __init__(self, directory: Path, workdir: Path, threads: int | None = None):
        self.directory, self.workdir, self.threads = Path(directory), Path(workdir), threads
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ReferenceCode:
        driver = Path(__file__).with_name("reference_driver.py")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [
            sys.executable,
            str(driver),
            str(self.directory.resolve()),
            str(self.workdir),
            str(self.threads or 0),
        ]
        # its warnings go to a file: a pipe nobody reads while it works could fill and stall it
        self._stderr = open(self.workdir / "reference_driver.err", "w+")  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, cwd=self.workdir, env=env)  # fmt: skip
        try:
            self.ready = json.loads(self._answer())
        except BaseException:
            self.__exit__()
            raise
        return self

    def _answer(self) -> str:
        line = self._proc.stdout.readline() if self._proc and self._proc.stdout else ""
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            err = self._stderr.read().strip()[-400:]
            raise RuntimeError(
                f"the reference's code in {self.directory} stopped: {err or 'no message'}"
            )
        return line

    def seconds(self, kicks: int, seed: int = 0, steps: int = 50) -> list[float]:
        """Seconds of each of ``kicks`` whole ``generate()`` calls."""
        self._proc.stdin.write(json.dumps({"kicks": kicks, "seed": seed, "steps": steps}) + "\n")
        self._proc.stdin.flush()
        return json.loads(self._answer())["seconds"]

    def peak_mb(self) -> float:
        """The driver process's peak resident memory in MiB so far (Linux ``/proc``; 0 elsewhere)."""
        return peak_resident_mb(self._proc.pid) if self._proc is not None else 0.0

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError, ValueError):  # it may have stopped already
                self._proc.stdin.write('{"quit": true}\n')
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._stderr.close()
            self._proc = None


def reference_code_identity(directory: Path) -> str:
    """What names a copy of the reference's code: the SHA-256 prefix of its generation sources."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("inference/generate.py", "models/autoencoder.py", "models/diffusion.py",
                 "models/text_encoder.py", "models/vocoder.py"):  # fmt: skip
        file = Path(directory) / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
    return digest.hexdigest()[:12]


def write_reference_size_checkpoints(directory: Path, seed: int = 0) -> dict[str, Path]:
    """Random-weight checkpoints at the reference's published sizes (REFERENCE.md): VAE 32→256
    channels, latent_dim 4 (4.25 M parameters; published 4.2 M); U-Net widths 64, 128, 224 (5.86 M;
    published 5.9 M); HiFi-GAN with 256 initial channels, upsampling 8·8·2·2·2, kernels 16,16,4,4,4
    (3.66 M; published 3.7 M).

    The U-Net matches the reference's parameter count, not its widths: kickgen's block design at
    the published widths 64, 128, 256 has 7.2 M parameters, and at batch 1 a U-Net pass costs in
    proportion to its weights (measured on a 2-core Zen 5: 4.4 ms for kickgen's 7.2 M, 3.2 ms for
    its 4.7 M, 3.7–4.2 ms for the reference's own 5.9 M and 3.9–4.2 ms for this 5.86 M).
    """
    from kickgen import checkpoints as ck
    from kickgen.models.autoencoder import VAEConfig
    from kickgen.models.diffusion import DiffusionConfig
    from kickgen.models.text_encoder import KeywordEncoder
    from kickgen.models.vocoder import VocoderConfig

    vocab = list(ck.DEFAULT_TEST_VOCAB)
    diff_cfg = DiffusionConfig(latent_dim=4, base_channels=32, channel_mult=(2, 4, 7))
    vae_cfg = VAEConfig(latent_dim=4, channels=(32, 64, 128, 256))
    voc_cfg = VocoderConfig(upsample_initial_channel=256, upsample_rates=(8, 8, 2, 2, 2),
                            upsample_kernel_sizes=(16, 16, 4, 4, 4), istft_n_fft=0,
                            source_harmonics=0, noise_source=False, refine_iters=0)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = ck.build_unet(diff_cfg)
        torch.nn.init.normal_(unet.conv_out.weight, std=0.02)  # not the zero init of training
        text_enc = KeywordEncoder(len(vocab), diff_cfg.text_embed_dim, diff_cfg.cond_dim)
        vae, voc = ck.build_vae(vae_cfg), ck.build_vocoder(voc_cfg)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "diffusion": ck.save_diffusion(
            directory / ck.DIFFUSION_FILENAME, unet, text_enc, vocab, diff_cfg
        ),
        "vae": ck.save_vae(directory / ck.VAE_FILENAME, vae),
        "vocoder": ck.save_vocoder(directory / ck.VOCODER_FILENAME, voc, voc_cfg),
    }

"""Samplers: turn a noise-predicting U-Net into latents.

A sampler holds no model and no parameters: it reads the noise schedule (``alpha_bars``) from the
scheduler it was built with and calls the model it is handed. Both samplers share one interface,

    sampler = DDIMSampler(scheduler, num_steps=50)          # or DPMSolverSampler(scheduler, 20)
    z = sampler.sample(model, shape=(B, C, 8, 11), cond=cond, uncond=uncond,
                       cfg_scale=3.0, device=device, generator=[g_0, ..., g_{B-1}])

Classifier-free guidance runs the conditional and the unconditional branch in ONE batched U-Net
pass (``cat([x, x])`` with ``cat([cond, uncond])``), then combines
``eps = eps_u + cfg_scale · (eps_c − eps_u)``. With ``cfg_scale == 1`` or ``uncond=None`` only the
conditional branch runs. Guidance runs in a limited interval (Kynkäänniemi et al. 2024): only at
timesteps ``guidance_from · T < t ≤ guidance_until · T``; the steps outside it run the conditional
branch alone. Guided above the interval, the early steps overshoot the clip's envelope: "long"
kicks at guidance 3 rang for 1.07 s to −20 dB where the validation ones ring 0.51 s, and 3 in 8
failed the quiet-tail check; with ``guidance_until = 0.6`` every keyword set passes. Below it, by
t = 0.2 · T, the prompt has done its work: the last 11 of DDIM 50's steps guided move a kick by
0.28 dB log-mel (as far as DDIM 50 itself strays from DDIM 200), every prompt effect stays above
0.8 (distorted 0.82 → 1.00), and a kick costs 70 U-Net rows instead of 81
(``kickgen eval``, checkpoints/EVAL.md and docs/experiments.md). ``None`` for either bound drops that
bound; both ``None`` guide every step, as the reference does. A list of per-sample
generators makes kick i's starting noise depend on its own generator only, so kick i is the same
whatever the batch size.

The model is called as ``model(x, t, cond)`` with ``x (B, C, H, W)``, ``t (B,)`` int64 and
``cond (B, cond_dim)``. It predicts the noise ε unless it has ``prediction_type == "v"``
(v = α·ε − σ·x₀), which is converted here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kickgen.errors import KickgenError


class SamplerError(KickgenError, ValueError):
    """A sampler was built or called with values it cannot use; the message says what to do."""


GUIDANCE_UNTIL = 0.6  # guidance at timesteps t ≤ 0.6 · T ...
GUIDANCE_FROM = 0.2  # ... and t > 0.2 · T (see the module docstring)

Generators = torch.Generator | Sequence[torch.Generator] | None
StepCallback = Callable[[int, int], None]  # (step index from 0, total steps)


def evenly_spaced_timesteps(num_train_timesteps: int, num_steps: int) -> torch.Tensor:
    """``num_steps`` timesteps from ``T − 1`` down to 0, evenly spaced, int64 ``(num_steps,)``.

    The trajectory starts at the last training timestep (pure noise) and its final update goes to
    ᾱ = 1 (the clean latent).
    """
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise SamplerError(
            f"num_steps={num_steps!r}: use a whole number of at least 1 (50 is the default)"
        )
    if num_steps > num_train_timesteps:
        raise SamplerError(
            f"num_steps={num_steps} exceeds the scheduler's {num_train_timesteps} training timesteps: "
            f"use at most {num_train_timesteps}"
        )
    if num_steps == 1:
        return torch.tensor([num_train_timesteps - 1], dtype=torch.long)
    return torch.linspace(num_train_timesteps - 1, 0, num_steps).round().long()


def _distinct_descending(ts: list[int]) -> torch.Tensor:
    """Rounded grid points made strictly decreasing and ending at 0 (crowded points are pushed
    apart by one step), as int64 ``(len(ts),)``."""
    ts = list(ts)
    for i in range(1, len(ts)):
        ts[i] = min(ts[i], ts[i - 1] - 1)
    ts[-1] = 0
    for i in range(len(ts) - 2, -1, -1):
        ts[i] = max(ts[i], ts[i + 1] + 1)
    return torch.tensor(ts, dtype=torch.long)


def quadratic_timesteps(num_train_timesteps: int, num_steps: int) -> torch.Tensor:
    """``num_steps`` distinct timesteps from ``T − 1`` to 0, quadratic in time:
    ``t_i = (T − 1)·(1 − i/(n − 1))²``. int64 ``(num_steps,)``, descending.

    Denser at low noise than an even grid, sparser there than one even in log-SNR: the grid of
    DPM-Solver++ without a guidance switch, and below the switch in :func:`split_timesteps`.
    """
    steps = evenly_spaced_timesteps(num_train_timesteps, num_steps)  # validates num_steps
    if num_steps == 1:
        return steps
    u = torch.linspace(1.0, 0.0, num_steps, dtype=torch.float64)
    t = ((num_train_timesteps - 1) * u**2).round().long().tolist()
    return _distinct_descending(t)


HIGH_NOISE_SHARE = 0.3  # of a split grid's points, the share above the guidance switch


def split_timesteps(
    num_train_timesteps: int,
    num_steps: int,
    t_switch: int,
    high_share: float = HIGH_NOISE_SHARE,
    t_off: int | None = None,
) -> torch.Tensor:
    """``num_steps`` distinct timesteps from ``T − 1`` to 0 with ``t_switch`` among them: the
    ``round(high_share · num_steps)`` points from ``T − 1`` down to above the switch evenly spaced,
    the rest quadratic below it, ``t_switch · (1 − j/m)²``. int64 ``(num_steps,)``, descending.

    Where guidance switches on at ``t_switch``, the unguided part above it decides more than its
    share of the range suggests: guidance amplifies whatever error reaches the switch (on the
    shipped models a relative latent error of 0.1 % there ends 0.1 dB log-mel off). A quadratic
    grid of 20 points puts 4 there; this one 6, and lands closer to the many-step solution on
    every prompt and seed set measured (docs/experiments.md, *Smooth in t*). Where guidance
    switches off again, at ``t_off`` below the switch, the quadratic point nearest it moves onto
    it, so that no step straddles that switch either. Falls back to :func:`quadratic_timesteps`
    when the grid is too short to split or ``t_switch`` lies outside it.
    """
    steps = quadratic_timesteps(num_train_timesteps, num_steps)  # validates num_steps
    high = round(high_share * num_steps)
    low = num_steps - high - 1  # points below the switch
    top = num_train_timesteps - 1
    if not 0 < t_switch < top or not 0 < high <= top - t_switch or not 0 < low < t_switch:
        return steps
    u = torch.arange(high, dtype=torch.float64) / high
    ts = (top - (top - t_switch) * u).round().long().tolist() + [t_switch]
    j = torch.arange(1, low + 1, dtype=torch.float64) / low
    ts += (t_switch * (1.0 - j) ** 2).round().long().tolist()
    if t_off is not None and 0 < t_off < t_switch and low > 1:
        inner = range(high + 1, len(ts) - 1)  # below the switch, above the last point (0)
        ts[min(inner, key=lambda i: abs(ts[i] - t_off))] = t_off
    return _distinct_descending(ts)


def initial_noise(
    shape: Sequence[int],
    generator: Generators,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal ``shape`` noise. A list of generators draws row i from generator i only."""
    shape = tuple(int(s) for s in shape)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=dtype).to(device)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise SamplerError(
            f"got {len(gens)} generators for a batch of {shape[0]}: pass one generator per sample"
        )
    # Drawn on the CPU so the same seed gives the same kick on every device.
    rows = [torch.randn(shape[1:], generator=g, dtype=dtype) for g in gens]
    return torch.stack(rows).to(device)


class _Sampler:
    """Shared plumbing: schedule lookup, guidance, prediction-type conversion."""

    name = "base"

    def __init__(
        self,
        scheduler,
        num_steps: int = 50,
        guidance_until: float | None = GUIDANCE_UNTIL,
        guidance_from: float | None = GUIDANCE_FROM,
    ) -> None:
        alpha_bars = getattr(scheduler, "alpha_bars", None)
        if not isinstance(alpha_bars, torch.Tensor) or alpha_bars.ndim != 1:
            raise SamplerError(
                f"{type(scheduler).__name__} has no 1-D `alpha_bars` tensor: pass a NoiseScheduler"
            )
        if guidance_until is not None and not 0.0 < guidance_until <= 1.0:
            raise SamplerError(
                f"guidance_until={guidance_until}: use a fraction in (0, 1] of the schedule, or None"
            )
        if guidance_from is not None and not 0.0 <= guidance_from < (guidance_until or 1.0):
            raise SamplerError(
                f"guidance_from={guidance_from}: use a fraction in [0, guidance_until) of the "
                "schedule, or None"
            )
        self.scheduler = scheduler
        self.num_steps = num_steps
        self.guidance_until = guidance_until
        self.guidance_from = guidance_from
        # guided timesteps: guidance_t_min < t ≤ guidance_t_max
        total = alpha_bars.numel()
        self.guidance_t_max = total if guidance_until is None else int(guidance_until * total)
        self.guidance_t_min = -1 if guidance_from is None else int(guidance_from * total)
        self.timesteps = evenly_spaced_timesteps(
            alpha_bars.numel(), num_steps
        )  # (S,) int64, descending

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_steps={self.num_steps}, "
            f"guidance_from={self.guidance_from}, guidance_until={self.guidance_until})"
        )

    # ---------------------------------------------------------------- shared pieces
    def _alpha_bars(self, device: torch.device) -> torch.Tensor:
        return self.scheduler.alpha_bars.detach().to(device=device, dtype=torch.float64)

    @staticmethod
    def _check_cond(cond: torch.Tensor, batch: int, what: str) -> torch.Tensor:
        if cond.ndim != 2:
            raise SamplerError(f"{what} has shape {tuple(cond.shape)}: expected (batch, cond_dim)")
        if cond.shape[0] == batch:
            return cond
        if cond.shape[0] == 1:
            return cond.expand(batch, -1)
        raise SamplerError(
            f"{what} has batch {cond.shape[0]} but the latent batch is {batch}: pass 1 or {batch} rows"
        )

    def _model_output(
        self,
        model,
        x: torch.Tensor,
        t: int,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        cfg_scale: float,
    ) -> torch.Tensor:
        """Guided model output at timestep ``t`` for latents ``x (B, C, H, W)``."""
        batch = x.shape[0]
        if not self._guided(t, uncond, cfg_scale):
            tt = torch.full((batch,), t, dtype=torch.long, device=x.device)
            return model(x, tt, cond)
        tt = torch.full((2 * batch,), t, dtype=torch.long, device=x.device)
        out = model(torch.cat([x, x]), tt, torch.cat([cond, uncond]))  # (2B, C, H, W)
        out_c, out_u = out.chunk(2)
        return out_u + cfg_scale * (out_c - out_u)

    def _guided(self, t: int, uncond: torch.Tensor | None, cfg_scale: float) -> bool:
        """Whether the step at timestep ``t`` runs guidance (inside the interval, with a branch to
        guide against and a scale that changes anything)."""
        return (
            uncond is not None
            and cfg_scale != 1.0
            and self.guidance_t_min < t <= self.guidance_t_max
        )

    @staticmethod
    def _to_eps_x0(
        out: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output → (ε̂, x̂₀) at a timestep with cumulative product ``alpha_bar``."""
        a = alpha_bar.sqrt().to(x.dtype)  # α_t
        s = (1.0 - alpha_bar).sqrt().to(x.dtype)  # σ_t
        if prediction_type == "epsilon":
            eps = out
            x0 = (x - s * eps) / a
        elif prediction_type == "v":
            x0 = a * x - s * out
            eps = s * x + a * out
        else:
            raise SamplerError(
                f"model prediction_type={prediction_type!r} is not supported: use 'epsilon' or 'v'"
            )
        return eps, x0

    def _prepare(self, model, shape, cond, uncond, cfg_scale, device, generator, noise):
        if len(shape) != 4:
            raise SamplerError(f"shape={tuple(shape)}: expected (batch, latent_dim, 8, 11)")
        if cfg_scale < 0 or cfg_scale != cfg_scale:
            raise SamplerError(
                f"cfg_scale={cfg_scale}: use a value of 0 or more (3.0 is the default)"
            )
        device = torch.device(device) if device is not None else cond.device
        batch = int(shape[0])
        cond = self._check_cond(cond.to(device), batch, "cond")
        if uncond is not None:
            uncond = self._check_cond(uncond.to(device), batch, "uncond")
        if noise is not None:
            if tuple(noise.shape) != tuple(shape):
                raise SamplerError(f"noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")
            x = noise.to(device=device, dtype=torch.float32)
        else:
            x = initial_noise(shape, generator, device)
        prediction_type = getattr(model, "prediction_type", "epsilon")
        return device, cond, uncond, x, prediction_type

    def sample(
        self,
        model,
        shape: Sequence[int],
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        cfg_scale: float = 3.0,
        device: torch.device | str | None = None,
        *,
        generator: Generators = None,
        noise: torch.Tensor | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Sample latents ``(B, C, H, W)``.

        ``cond`` and ``uncond`` are ``(B, cond_dim)`` or ``(1, cond_dim)`` (broadcast to the batch).
        ``generator`` is one ``torch.Generator`` or a list of B (one per sample); ``noise`` gives the
        starting latents directly. ``callback(i, num_steps)`` runs after each step.
        """
        device, cond, uncond, x, prediction_type = self._prepare(
            model, shape, cond, uncond, cfg_scale, device, generator, noise
        )
        with torch.inference_mode():
            x = self._loop(model, x, cond, uncond, float(cfg_scale), prediction_type, callback)
        return x.clone()  # a normal tensor again, usable outside inference mode

    def _loop(self, model, x, cond, uncond, cfg_scale, prediction_type, callback) -> torch.Tensor:
        raise NotImplementedError  # each solver defines its update


class DDIMSampler(_Sampler):
    """Deterministic DDIM (Song et al. 2021, eta = 0) on evenly spaced timesteps.

    One update from timestep t to the previous timestep p (ᾱ_p = 1 after the last step):

    1. ε̂ = guided model output (converted from v if needed)
    2. x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t
    3. x_p = √ᾱ_p x̂₀ + √(1−ᾱ_p) ε̂
    """

    name = "ddim"

    def _loop(self, model, x, cond, uncond, cfg_scale, prediction_type, callback):
        alpha_bars = self._alpha_bars(x.device)
        steps = self.timesteps.tolist()
        one = torch.ones((), dtype=torch.float64, device=x.device)
        for i, t in enumerate(steps):
            ab_t = alpha_bars[t]
            ab_prev = alpha_bars[steps[i + 1]] if i + 1 < len(steps) else one
            out = self._model_output(model, x, t, cond, uncond, cfg_scale)  # 1.
            eps, x0 = self._to_eps_x0(out, x, ab_t, prediction_type)  # 2.
            x = ab_prev.sqrt().to(x.dtype) * x0 + (1.0 - ab_prev).sqrt().to(x.dtype) * eps  # 3.
            if callback is not None:
                callback(i, len(steps))
        return x


class DPMSolverSampler(_Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022) on the data prediction, with a UniC corrector (Zhao et al.
    2023): second order, one model evaluation per step.

    With α_t = √ᾱ_t, σ_t = √(1−ᾱ_t), λ_t = log(α_t/σ_t), a step from s to t has h = λ_t − λ_s and
    φ = e^{−h} − 1. D_s is x̂₀ from the guided model output at s, D_q the one before it.

    1. predictor: x_t = (σ_t/σ_s) x_s − α_t φ (D_s + (D_s − D_q)/(2r)), r = (λ_s − λ_q)/h
       (first order, without the D_q term, after a restart);
    2. corrector, once D_t has been evaluated on the predicted x_t: the same update from x_s with
       D_s + ρ_q (D_q − D_s)/r_q + ρ_t (D_t − D_s), r_q = (λ_q − λ_s)/h, the weights ρ those of
       UniC-2 (ρ_t = ½ without D_q). D_t itself, taken on the predicted x_t, drives the next step,
       so the correction costs no model evaluation;
    3. the last step lands on ᾱ = 1, where the update is x = D_t.

    ``corrector=False`` gives plain DPM-Solver++(2M).

    The guidance interval makes the ODE's vector field jump where guidance switches on
    (t = ``guidance_t_max``) and off again (t = ``guidance_t_min``). A multistep solver assumes a
    smooth field: a step that straddles a switch, or a correction that mixes an unguided D with a
    guided one, is badly wrong there. ``split_at_guidance=True`` (what :func:`make_sampler` builds
    for ``"dpm"``) puts grid points on both switches, 0.3 of the points above the upper one
    (:func:`split_timesteps`), and restarts the history (one first-order step, no correction of the
    point where guidance switched) whenever guidance switches. Without the split the timesteps are
    quadratic in t (:func:`quadratic_timesteps`).

    A second-order solver also needs a U-Net that is smooth in t; the DDPM time embedding made the
    2026.12 U-Net wiggle from step to step, and no grid helped then (see
    :class:`~kickgen.models.diffusion.LatentUNet`'s ``time_scale``). On model 2026.12.1, six sets
    of 16 kicks (6 prompts, guidance 3 in the default interval), mean log-mel distance to DDIM 200
    per set: DPM-Solver++ 20 0.10–0.34 dB (mean 0.19), DDIM 50 0.20–0.35 (0.28), closer on every
    set; without the grid point at the lower switch 0.21. Guided at every t ≤ 0.6 · T it was 0.20
    against DDIM 50's 0.28, and 0.47 without the split; on the 2026.12 U-Net, with the quadratic
    grid and the split, 0.31 against DDIM 50's 0.28.
    """

    name = "dpm"

    def __init__(
        self,
        scheduler,
        num_steps: int = 20,
        guidance_until: float | None = GUIDANCE_UNTIL,
        split_at_guidance: bool = False,
        corrector: bool = True,
        guidance_from: float | None = GUIDANCE_FROM,
    ) -> None:
        super().__init__(scheduler, num_steps, guidance_until, guidance_from)
        self.split_at_guidance = split_at_guidance and guidance_until is not None
        self.corrector = corrector
        total = scheduler.alpha_bars.numel()
        self.timesteps = (
            split_timesteps(total, num_steps, self.guidance_t_max, t_off=self.guidance_t_min)
            if self.split_at_guidance
            else quadratic_timesteps(total, num_steps)
        )

    @staticmethod
    def _unic_weights(h: torch.Tensor, r_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """UniC-2 weights ``(ρ_q, ρ_t)`` for a step of log-SNR ``h`` with an earlier point at
        ``r_q = (λ_q − λ_s)/h`` (the B(h) = e^{−h} − 1 variant): they solve
        ``ρ_q + ρ_t = b₁`` and ``r_q ρ_q + ρ_t = b₂``."""
        phi = torch.expm1(-h)
        g1 = phi / -h - 1.0
        b1 = g1 / phi
        b2 = 2.0 * (g1 / -h - 0.5) / phi
        rho_q = (b1 - b2) / (1.0 - r_q)
        return rho_q, b1 - rho_q

    def _loop(self, model, x, cond, uncond, cfg_scale, prediction_type, callback):
        alpha_bars = self._alpha_bars(x.device)
        lam = 0.5 * (alpha_bars.log() - (1.0 - alpha_bars).log())  # (T,) log-SNR
        steps = self.timesteps.tolist()
        history: list[tuple[int, torch.Tensor]] = []  # (t, D) since the last restart, newest last
        x_s: torch.Tensor | None = None  # the state the last step started from
        guided_prev: bool | None = None
        for i, t in enumerate(steps):
            restart = False
            if self.split_at_guidance:
                guided = self._guided(t, uncond, cfg_scale)
                restart = guided_prev is not None and guided != guided_prev
                guided_prev = guided
            out = self._model_output(model, x, t, cond, uncond, cfg_scale)
            _, d = self._to_eps_x0(out, x, alpha_bars[t], prediction_type)
            if self.corrector and history and not restart:  # 2.
                s, d_s = history[-1]
                h = lam[t] - lam[s]
                drift = d - d_s
                if len(history) > 1:
                    q, d_q = history[-2]
                    r_q = (lam[q] - lam[s]) / h
                    rho_q, rho_t = self._unic_weights(h, r_q)
                    drift = rho_t.to(x.dtype) * drift + (rho_q / r_q).to(x.dtype) * (d_q - d_s)
                else:
                    drift = 0.5 * drift
                x = self._step(x_s, s, t, d_s + drift, alpha_bars, lam)
            history = [(t, d)] if restart else [*history[-1:], (t, d)]
            if i + 1 == len(steps):
                x = d  # 3. the last step lands on ᾱ = 1, where the update is x = D_t
            else:
                t_next = steps[i + 1]
                d_used = d
                if len(history) > 1:  # 1.
                    q, d_q = history[-2]
                    r = (lam[t] - lam[q]) / (lam[t_next] - lam[t])
                    d_used = (1.0 + 0.5 / r).to(x.dtype) * d - (0.5 / r).to(x.dtype) * d_q
                x_s = x
                x = self._step(x, t, t_next, d_used, alpha_bars, lam)
            if callback is not None:
                callback(i, len(steps))
        return x

    @staticmethod
    def _step(x, s: int, t: int, d: torch.Tensor, alpha_bars, lam) -> torch.Tensor:
        """x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D, h = λ_t − λ_s."""
        sigma_ratio = ((1.0 - alpha_bars[t]) / (1.0 - alpha_bars[s])).sqrt()
        h = lam[t] - lam[s]
        return (
            sigma_ratio.to(x.dtype) * x - (alpha_bars[t].sqrt() * torch.expm1(-h)).to(x.dtype) * d
        )


SAMPLERS: dict[str, type[_Sampler]] = {"ddim": DDIMSampler, "dpm": DPMSolverSampler}


def make_sampler(name: str, scheduler, num_steps: int) -> _Sampler:
    """Build a sampler by name with the default guidance interval: ``"ddim"`` (the reference's) or
    ``"dpm"`` (DPM-Solver++(2M) with a UniC corrector, its grid and history split where guidance
    switches on; see :class:`DPMSolverSampler`)."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise SamplerError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}") from None
    if cls is DPMSolverSampler:
        return cls(scheduler, num_steps, split_at_guidance=True)
    return cls(scheduler, num_steps)

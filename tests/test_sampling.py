"""Samplers against analytic denoisers whose exact answers are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from kickgen.sampling import (
    GUIDANCE_FROM,
    GUIDANCE_UNTIL,
    DDIMSampler,
    DPMSolverSampler,
    SamplerError,
    evenly_spaced_timesteps,
    make_sampler,
    quadratic_timesteps,
    split_timesteps,
)


class Schedule:
    """Linear betas 1e-4 → 0.02 over 1000 steps: the reference's, as ``alpha_bars`` only."""

    def __init__(self, timesteps: int = 1000):
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
        self.alpha_bars = torch.cumprod(1 - betas, 0).float()


class GaussianDenoiser(torch.nn.Module):
    """The exact ε (or v) predictor for data x₀ ~ N(mean, std²) per element, ``mean`` from ``cond``.

    ``cond[:, 0]`` is the data mean, so guidance has something to act on.
    """

    def __init__(self, schedule: Schedule, std: float, prediction_type: str = "epsilon"):
        super().__init__()
        self.ab = schedule.alpha_bars.double()
        self.std = std
        self.prediction_type = prediction_type
        self.calls: list[int] = []  # batch size of every call

    def forward(self, x, t, cond):
        self.calls.append(x.shape[0])
        ab = self.ab[t].view(-1, 1, 1, 1).to(x.dtype)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        mean = cond[:, :1].view(-1, 1, 1, 1)
        # E[x0 | x_t] for Gaussian data, then ε = (x_t − a·x0) / s
        x0 = mean + a * self.std**2 * (x - a * mean) / (ab * self.std**2 + (1 - ab))
        eps = (x - a * x0) / s
        return eps if self.prediction_type == "epsilon" else a * eps - s * x0


def exact_flow(noise: torch.Tensor, schedule: Schedule, mean: float, std: float) -> torch.Tensor:
    """The probability-flow ODE's map from t = T−1 to the clean data for Gaussian data."""
    ab = float(schedule.alpha_bars[-1])
    return mean + std * (noise - math.sqrt(ab) * mean) / math.sqrt(ab * std**2 + 1 - ab)


SHAPE = (4, 3, 8, 11)


def _noise(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def test_timesteps_are_evenly_spaced_from_last_to_first():
    ts = evenly_spaced_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50
    gaps = (ts[:-1] - ts[1:]).tolist()
    assert set(gaps) <= {20, 21}
    assert evenly_spaced_timesteps(1000, 1).tolist() == [999]


@pytest.mark.parametrize("bad", [0, -3, 1001, 2.5])
def test_bad_step_counts_say_what_to_do(bad):
    with pytest.raises(SamplerError, match="num_steps"):
        DDIMSampler(Schedule(), bad)


def test_scheduler_without_alpha_bars_is_rejected():
    with pytest.raises(SamplerError, match="alpha_bars"):
        DDIMSampler(object(), 10)
    with pytest.raises(SamplerError, match="unknown sampler 'euler'"):
        make_sampler("euler", Schedule(), 10)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v"])
@pytest.mark.parametrize(
    "cls,steps,mean_tol,max_tol",
    [(DDIMSampler, 50, 0.03, 0.15), (DPMSolverSampler, 20, 0.01, 0.05)],
)
def test_samplers_follow_the_exact_flow(cls, steps, mean_tol, max_tol, prediction_type):
    # measured: DDIM-50 mean 0.023 / max 0.115, DPM-20 mean 0.0056 / max 0.028, for both types
    sched = Schedule()
    model = GaussianDenoiser(sched, std=0.5, prediction_type=prediction_type)
    cond = torch.full((1, 4), 0.7)
    noise = _noise()
    out = cls(sched, steps).sample(model, SHAPE, cond, None, 1.0, "cpu", noise=noise)
    err = (out - exact_flow(noise, sched, 0.7, 0.5)).abs()
    assert err.mean() < mean_tol and err.max() < max_tol
    assert model.calls == [SHAPE[0]] * steps  # no guidance pass when uncond is None


class MixtureDenoiser(torch.nn.Module):
    """Exact ε predictor for data ½N(−1, 0.3²) + ½N(1, 0.3²): a bimodal, non-linear case."""

    prediction_type = "epsilon"

    def __init__(self, schedule: Schedule, std: float = 0.3):
        super().__init__()
        self.ab, self.std = schedule.alpha_bars.double(), std

    def forward(self, x, t, cond):
        ab = self.ab[t].view(-1, 1, 1, 1).to(x.dtype)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        var = ab * self.std**2 + 1 - ab  # variance of x_t given either component
        means = (-1.0, 1.0)
        w = torch.softmax(torch.stack([-((x - a * m) ** 2) / (2 * var) for m in means]), 0)
        x0 = sum(w[k] * (m + a * self.std**2 * (x - a * m) / var) for k, m in enumerate(means))
        return (x - a * x0) / s


def test_dpm_solver_at_20_steps_is_closer_to_the_ode_than_ddim_at_50():
    sched = Schedule()
    model, cond, noise = MixtureDenoiser(sched), torch.zeros(1, 4), _noise()
    exact = DDIMSampler(sched, 1000).sample(model, SHAPE, cond, None, 1.0, "cpu", noise=noise)
    err = {}
    for cls, steps in ((DDIMSampler, 50), (DPMSolverSampler, 20), (DDIMSampler, 20)):
        out = cls(sched, steps).sample(model, SHAPE, cond, None, 1.0, "cpu", noise=noise)
        err[cls.name, steps] = (out - exact).abs().mean().item()
    # measured: ddim-50 0.018, dpm-20 0.006, ddim-20 0.048
    assert err["dpm", 20] < err["ddim", 50] < err["ddim", 20]


def test_quadratic_grid_is_distinct_descending_and_complete():
    for n in (2, 3, 20, 999, 1000):
        ts = quadratic_timesteps(1000, n)
        assert len(ts) == n and ts[0] == 999 and ts[-1] == 0
        assert bool((ts[:-1] > ts[1:]).all())
    gaps = (quadratic_timesteps(1000, 20)[:-1] - quadratic_timesteps(1000, 20)[1:]).tolist()
    assert gaps == sorted(gaps, reverse=True)  # the steps shrink towards the data


def test_split_grid_holds_the_switch_and_gives_the_unguided_part_its_share():
    for n in (2, 3, 4, 10, 20, 25, 50, 200, 1000):
        ts = split_timesteps(1000, n, 600)
        assert len(ts) == n and ts[0] == 999 and ts[-1] == 0
        assert bool((ts[:-1] > ts[1:]).all())
        if 3 <= n <= 600:
            assert 600 in ts.tolist()
    ts = split_timesteps(1000, 20, 600).tolist()
    assert sum(t > 600 for t in ts) == 6  # 0.3 of 20, evenly spaced
    assert len({a - b for a, b in zip(ts[:6], ts[1:7], strict=True)}) <= 2
    assert ts[7:] == sorted(ts[7:], reverse=True)
    gaps = [a - b for a, b in zip(ts[6:-1], ts[7:], strict=True)]
    assert gaps == sorted(gaps, reverse=True)  # quadratic below: the steps shrink to the data
    assert split_timesteps(1000, 20, 0).tolist() == quadratic_timesteps(1000, 20).tolist()
    # where guidance switches off again, the nearest point below the switch moves onto it
    for n in (4, 10, 20, 50, 200):
        plain, both = split_timesteps(1000, n, 600), split_timesteps(1000, n, 600, t_off=200)
        assert len(both) == n and 600 in both.tolist() and 200 in both.tolist()
        assert bool((both[:-1] > both[1:]).all()) and both[-1] == 0
        assert int((plain != both).sum()) <= 1  # the rest of the grid stays


def test_point_mass_data_is_recovered_exactly():
    # std → 0: every trajectory must land on the data point, whatever the step count
    sched = Schedule()
    model = GaussianDenoiser(sched, std=1e-6)
    cond = torch.full((1, 4), -1.25)
    for steps in (1, 7, 50):
        out = DDIMSampler(sched, steps).sample(model, SHAPE, cond, None, 1.0, "cpu", noise=_noise())
        assert torch.allclose(out, torch.full(SHAPE, -1.25), atol=1e-4)


@pytest.mark.parametrize("cls", [DDIMSampler, DPMSolverSampler])
def test_guidance_is_one_batched_pass_equal_to_two_sequential_passes(cls):
    sched = Schedule()
    model = GaussianDenoiser(sched, std=0.5)
    cond, uncond = torch.full((1, 4), 1.0), torch.zeros(1, 4)
    noise = _noise()
    out = cls(sched, 10, guidance_until=None, guidance_from=None).sample(
        model, SHAPE, cond, uncond, 3.0, "cpu", noise=noise
    )
    assert model.calls == [2 * SHAPE[0]] * 10  # cond and uncond in one pass per step

    class Sequential(torch.nn.Module):
        """Guidance as the reference runs it: two passes, combined by hand."""

        prediction_type = "epsilon"

        def forward(self, x, t, c):
            n = x.shape[0] // 2
            e_c = model(x[:n], t[:n], c[:n])
            e_u = model(x[n:], t[n:], c[n:])
            # the sampler combines e_u + s (e_c − e_u); returning (e_c, e_u) lets it do so
            return torch.cat([e_c, e_u])

    ref = cls(sched, 10, guidance_until=None, guidance_from=None).sample(
        Sequential(), SHAPE, cond, uncond, 3.0, "cpu", noise=noise
    )
    assert torch.allclose(out, ref, atol=1e-6)
    # guidance pushes the mean beyond the conditional one: e_u + 3 (e_c − e_u) ≈ mean 3
    assert out.mean().item() > 2.0


@pytest.mark.parametrize("cls", [DDIMSampler, DPMSolverSampler])
def test_guidance_runs_only_inside_its_interval(cls):
    """Timesteps outside guidance_from · T < t ≤ guidance_until · T run the conditional branch
    alone, the rest are guided: the same as stepping the guided and the unguided sampler by hand
    over the parts. By default the interval is (0.2, 0.7] · T."""
    sched = Schedule()
    model = GaussianDenoiser(sched, std=0.5)
    cond, uncond = torch.full((1, 4), 1.0), torch.zeros(1, 4)
    total = sched.alpha_bars.numel()
    sampler = cls(sched, 10)
    assert (sampler.guidance_from, sampler.guidance_until) == (GUIDANCE_FROM, GUIDANCE_UNTIL)
    lo, hi = GUIDANCE_FROM * total, GUIDANCE_UNTIL * total
    guided = [lo < t <= hi for t in sampler.timesteps.tolist()]
    assert 0 < sum(guided) < 10  # both kinds of step occur
    assert any(t <= lo for t in sampler.timesteps.tolist()[1:-1])  # below it, not last
    out = sampler.sample(model, SHAPE, cond, uncond, 3.0, "cpu", noise=_noise())
    assert model.calls == [2 * SHAPE[0] if g else SHAPE[0] for g in guided]

    class Switch(torch.nn.Module):
        """Guides (as two passes) only where the sampler under test should."""

        prediction_type = "epsilon"

        def forward(self, x, t, c):
            if x.shape[0] == 2 * SHAPE[0] and not lo < int(t[0]) <= hi:
                e_c = model(x[: SHAPE[0]], t[: SHAPE[0]], c[: SHAPE[0]])
                return torch.cat([e_c, e_c])  # e_u = e_c: the guided combination is e_c
            return model(x, t, c)

    every_step = {"guidance_until": None, "guidance_from": None}
    ref = cls(sched, 10, **every_step).sample(
        Switch(), SHAPE, cond, uncond, 3.0, "cpu", noise=_noise()
    )
    assert torch.allclose(out, ref, atol=1e-6)
    full = cls(sched, 10, **every_step).sample(
        model, SHAPE, cond, uncond, 3.0, "cpu", noise=_noise()
    )
    assert not torch.allclose(out, full, atol=1e-3)  # the interval changes the result
    upper_only = cls(sched, 10, guidance_from=None).sample(
        model, SHAPE, cond, uncond, 3.0, "cpu", noise=_noise()
    )
    assert not torch.allclose(out, upper_only, atol=1e-3)  # so does its lower bound
    with pytest.raises(SamplerError, match="guidance_until=0"):
        cls(sched, 10, guidance_until=0.0)
    with pytest.raises(SamplerError, match="guidance_from=0.7"):
        cls(sched, 10, guidance_from=0.7, guidance_until=0.7)  # an empty interval


def test_per_sample_generators_make_kick_i_independent_of_the_batch():
    sched = Schedule()
    model = GaussianDenoiser(sched, std=0.5)
    cond = torch.full((1, 4), 0.2)
    sampler = DDIMSampler(sched, 10)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    batch = sampler.sample(model, (3, 3, 8, 11), cond, None, 1.0, "cpu", generator=gens([5, 6, 7]))
    alone = sampler.sample(model, (1, 3, 8, 11), cond, None, 1.0, "cpu", generator=gens([6]))
    assert torch.allclose(batch[1], alone[0], atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])


def test_misuse_is_reported():
    sched = Schedule()
    model = GaussianDenoiser(sched, std=0.5)
    sampler = DDIMSampler(sched, 5)
    with pytest.raises(SamplerError, match="one generator per sample"):
        sampler.sample(
            model, SHAPE, torch.zeros(1, 4), None, 1.0, "cpu", generator=[torch.Generator()]
        )
    with pytest.raises(SamplerError, match="cond has batch 2"):
        sampler.sample(model, SHAPE, torch.zeros(2, 4), None, 1.0, "cpu")
    with pytest.raises(SamplerError, match="cfg_scale=-1"):
        sampler.sample(model, SHAPE, torch.zeros(1, 4), torch.zeros(1, 4), -1.0, "cpu")
    model.prediction_type = "sample"
    with pytest.raises(SamplerError, match="prediction_type='sample'"):
        sampler.sample(model, SHAPE, torch.zeros(1, 4), None, 1.0, "cpu")


def test_output_is_a_normal_tensor():
    sched = Schedule()
    out = DDIMSampler(sched, 2).sample(
        GaussianDenoiser(sched, 0.5), SHAPE, torch.zeros(1, 4), None, 1.0, "cpu"
    )
    out += 1  # in-place use outside inference mode must work
    assert not out.is_inference()


class ConditionalMixture(MixtureDenoiser):
    """The mixture's exact ε predictor with both modes shifted by ``cond[:, 0]``."""

    def forward(self, x, t, cond):
        shift = cond[:, :1].view(-1, 1, 1, 1).to(x.dtype)
        a = self.ab[t].view(-1, 1, 1, 1).to(x.dtype).sqrt()
        return super().forward(x - a * shift, t, cond)


def test_second_order_solver_beats_ddim_at_equal_steps_with_the_guidance_interval():
    """Guided at 0.2·T < t ≤ 0.7·T (the pipeline's setting), cfg 3: DPM-Solver++ 20 as make_sampler
    builds it lands closer to the many-step solution than DDIM 20, and the split at the guidance
    switches is what makes it so (the same solver stepping across them strays further)."""
    sched = Schedule()
    model, noise = ConditionalMixture(sched), _noise(3)
    cond, uncond = torch.full((1, 4), 0.5), torch.zeros(1, 4)
    exact = DDIMSampler(sched, 1000).sample(model, SHAPE, cond, uncond, 3.0, "cpu", noise=noise)

    def err(sampler) -> float:
        return (
            (sampler.sample(model, SHAPE, cond, uncond, 3.0, "cpu", noise=noise) - exact)
            .abs()
            .mean()
            .item()
        )

    dpm, ddim = err(make_sampler("dpm", sched, 20)), err(make_sampler("ddim", sched, 20))
    across = err(DPMSolverSampler(sched, 20))  # no split: one step straddles the switch
    switches = {int(GUIDANCE_UNTIL * 1000), int(GUIDANCE_FROM * 1000)}
    assert switches <= set(make_sampler("dpm", sched, 20).timesteps.tolist())
    # measured: dpm-20 0.017, ddim-20 0.049, dpm-20 across the switches 0.022
    assert dpm < ddim
    assert dpm < across

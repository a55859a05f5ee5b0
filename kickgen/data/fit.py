"""Analysis by synthesis: a differentiable kick model fitted to each real training recording.

The model (:func:`render_fit`, torch) sums what a kick is made of:

- **body**: a sine whose pitch falls from ``f_end·(1 + a1 + a2)`` to ``f_end`` with two time
  constants, ``f(t) = f_end·(1 + a1·exp(-t/tau1) + a2·exp(-t/tau2))``, under an amplitude
  envelope given in dB at the knot times ``KNOTS`` (linear in dB between them);
- **harmonics** 2…``HARMONICS`` of the body (they follow its pitch), each at its own level under
  the body envelope raised to ``harmonic_power`` (> 1: the harmonics fade faster than the
  fundamental, as a waveshaper's do when the level drops);
- **click**: an impulse through a one-pole low-pass (``click_level`` dB, ``click_hz``);
- **noise**: white noise shaped by a time-frequency gain grid (``NOISE_BANDS`` log-spaced bands
  × ``KNOTS``, dB), the filtered-noise layers and the tone EQ of everything that is not the body.

:func:`fit_recording` fits it to one clip in two steps. Frequency by gradient descent on a
spectral loss alone stalls in local minima, so the pitch envelope is estimated first: the body's
pitch track (:func:`kickgen.descriptors.pitch_envelope`'s tracker) is fitted by least squares
with the two-time-constant curve, and the envelopes start from the clip's band energies. Then
Adam refines everything on a multi-resolution log-spectral loss (floored 80 dB below the peak,
as the eval's distances are) plus the distance of the model's pitch to the track.

:func:`draw_around` makes new kicks from the fits: one fit, or a mix of two fits of the same
style, each parameter then moved within a share of its spread over all fits.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, mel_spectrogram
from kickgen.descriptors import _pitch_track, onset_index

FIT_VERSION = 1  # bump when the model or the fitting changes: cached fits are then redone
KNOTS = (0.0, 0.002, 0.005, 0.01, 0.017, 0.025, 0.035, 0.05, 0.07, 0.1, 0.14, 0.2, 0.28,
         0.4, 0.55, 0.75, 1.0, 1.4, 2.0)  # s after the onset: envelope knots  # fmt: skip
HARMONICS = 8  # body harmonics 2..8
NOISE_BANDS = 32  # log-spaced noise bands from NOISE_RANGE[0] to NOISE_RANGE[1] Hz
NOISE_RANGE = (30.0, 20000.0)
NOISE_FFT = 1024  # the noise layer is shaped in an STFT of this size, hop a quarter
LOSS_FFTS = (0, 256, 1024, 4096)  # resolutions of the spectral loss (0: the log-mel)
FLOOR_DB = 80.0  # the loss ignores what lies this far below the target's peak
SILENT_DB = -120.0  # envelope level of "off"
PITCH_WEIGHT = 10.0  # weight of the pitch-envelope loss (log-frequency, squared)


@dataclass
class FitConfig:
    """How hard :func:`fit_recording` works."""

    steps: int = 200  # Adam steps in all
    full_steps: int = 30  # of them, on the whole clip (the others on the first `window` s)
    window: float = 0.4  # s after the onset
    lr: float = 0.01  # of the pitch, time constants, phase (fitted as logs where positive)
    level_lr: float = 1.0  # dB per step, of the envelopes and levels
    seed: int = 0  # of the noise layer's realisation


@dataclass
class KickFit:
    """The parameters of one fitted kick (times in s, frequencies in Hz, levels in dB)."""

    f_end: float = 55.0
    a1: float = 1.0  # pitch above f_end at the onset, fast component (ratio)
    tau1: float = 0.02
    a2: float = 0.1  # slow component
    tau2: float = 0.15
    phase: float = 0.0  # start phase of the body, cycles
    pitch_knots: list[float] = field(default_factory=lambda: [0.0] * len(KNOTS))
    # log-frequency correction of the curve at the knots (what two time constants do not say)
    body_db: list[float] = field(default_factory=lambda: [0.0] * len(KNOTS))
    harmonic_db: list[float] = field(default_factory=lambda: [-40.0] * (HARMONICS - 1))
    harmonic_power: float = 1.5
    click_level: float = -40.0  # dB re full scale
    click_hz: float = 4000.0
    noise_db: list[list[float]] = field(
        default_factory=lambda: [[-80.0] * len(KNOTS) for _ in range(NOISE_BANDS)]
    )  # (bands, knots)

    def to_dict(self) -> dict:
        return {k: _rounded(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> KickFit:
        return cls(**{k: data[k] for k in asdict(cls()) if k in data})


def _rounded(v):
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    return float(f"{v:.6g}")


# --------------------------------------------------------------------------- the model


def _interp_matrix(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Linear interpolation as a matrix: values at ``knots (K,)`` → values at ``x (N,)``, ``(N, K)``;
    held constant outside the knots."""
    x = np.clip(x, knots[0], knots[-1])
    hi = np.clip(np.searchsorted(knots, x, side="right"), 1, len(knots) - 1)
    lo = hi - 1
    w = (x - knots[lo]) / (knots[hi] - knots[lo])
    m = np.zeros((x.size, knots.size))
    m[np.arange(x.size), lo] = 1.0 - w
    m[np.arange(x.size), hi] += w
    return m


class _Grid:
    """What every render of one length and onset shares: time axis, interpolation matrices."""

    def __init__(self, length: int, onset: int) -> None:
        self.length, self.onset = length, onset
        t = (np.arange(length) - onset) / SAMPLE_RATE  # (L,) s after the onset
        self.t = torch.from_numpy(np.maximum(t, 0.0)).float()
        self.on = torch.from_numpy((t >= 0).astype(np.float32))
        self.env = torch.from_numpy(_interp_matrix(np.maximum(t, 0.0), np.array(KNOTS))).float()
        hop = NOISE_FFT // 4
        frames = 1 + length // hop
        ft = (np.arange(frames) * hop - onset) / SAMPLE_RATE
        self.noise_t = torch.from_numpy(_interp_matrix(np.maximum(ft, 0.0), np.array(KNOTS)).T)
        self.noise_t = self.noise_t.float()  # (K, frames)
        freqs = np.fft.rfftfreq(NOISE_FFT, 1.0 / SAMPLE_RATE)
        centres = np.log(np.geomspace(*NOISE_RANGE, NOISE_BANDS))
        self.noise_f = torch.from_numpy(
            _interp_matrix(np.log(np.maximum(freqs, 1.0)), centres)
        ).float()  # (F, bands)
        self.before = torch.from_numpy((ft < -0.5 * NOISE_FFT / SAMPLE_RATE).astype(np.float32))


@functools.lru_cache(maxsize=4)
def _grid(length: int, onset: int) -> _Grid:
    return _Grid(length, onset)


def _noise_spectrum(length: int, seed: int) -> torch.Tensor:
    """STFT ``(F, frames)`` of seeded white noise of unit variance, the noise layer's source."""
    rng = np.random.default_rng([seed, 0x6E6F6973])
    white = torch.from_numpy(rng.standard_normal(length)).float()
    return torch.stft(white, NOISE_FFT, NOISE_FFT // 4, window=torch.hann_window(NOISE_FFT),
                      return_complex=True)  # fmt: skip


_TORCH_FIELDS = ("f_end", "a1", "tau1", "a2", "tau2", "phase", "pitch_knots", "body_db", "harmonic_db",
                 "harmonic_power", "click_level", "click_hz", "noise_db")  # fmt: skip


def _tensors(fit: KickFit) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(getattr(fit, k), dtype=torch.float32) for k in _TORCH_FIELDS}


def frequency(p: dict[str, torch.Tensor], t: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """The body's frequency (Hz) at ``t`` (s after the onset); ``knots (len(t), K)`` interpolates
    the correction ``pitch_knots`` there."""
    curve = 1.0 + p["a1"] * torch.exp(-t / p["tau1"]) + p["a2"] * torch.exp(-t / p["tau2"])
    return p["f_end"] * curve * torch.exp(knots @ p["pitch_knots"])


def _render(p: dict[str, torch.Tensor], grid: _Grid, noise: torch.Tensor) -> torch.Tensor:
    """The model's waveform ``(L,)`` from parameter tensors (differentiable)."""
    freq = frequency(p, grid.t, grid.env)  # (L,) Hz
    phase = 2 * math.pi * (p["phase"] + torch.cumsum(freq, 0) / SAMPLE_RATE - freq[0] / SAMPLE_RATE)
    env = 10.0 ** ((grid.env @ p["body_db"]) / 20.0) * grid.on  # (L,)
    sin1, cos1 = torch.sin(phase), torch.cos(phase)
    out = sin1 * env
    harm_env = 10.0 ** (p["harmonic_power"] * (grid.env @ p["body_db"]) / 20.0) * grid.on
    nyquist = 0.45 * SAMPLE_RATE
    prev, cur = torch.zeros_like(sin1), sin1  # sin((h-2)θ), sin((h-1)θ)
    for h in range(2, HARMONICS + 1):
        prev, cur = cur, 2.0 * cos1 * cur - prev  # sin(hθ) by the Chebyshev recurrence
        alias = (freq * h < nyquist).float()
        level = 10.0 ** (p["harmonic_db"][h - 2] / 20.0)
        out = out + level * cur * harm_env * alias
    # click: an impulse through a one-pole low-pass, exp(-2π fc t)
    click = 10.0 ** (p["click_level"] / 20.0) * torch.exp(-2 * math.pi * p["click_hz"] * grid.t)
    out = out + click * grid.on
    gain_db = grid.noise_f @ p["noise_db"] @ grid.noise_t  # (F, frames)
    gain = 10.0 ** (gain_db / 20.0) * (1.0 - grid.before)
    shaped = torch.istft(noise * gain, NOISE_FFT, NOISE_FFT // 4,
                         window=torch.hann_window(NOISE_FFT), length=grid.length)  # fmt: skip
    return out + shaped * grid.on


def render_fit(
    fit: KickFit, length: int = NUM_SAMPLES, onset: int = 0, seed: int = 0
) -> np.ndarray:
    """The waveform of a fit: float64 ``(length,)``, onset at sample ``onset``, not normalised."""
    with torch.no_grad():
        wave = _render(_tensors(fit), _grid(length, onset), _noise_spectrum(length, seed))
    return wave.double().numpy()


# --------------------------------------------------------------------------- fitting


def _power_spec(wave: torch.Tensor, n_fft: int) -> torch.Tensor:
    """``(L,)`` → power ``(F, T)``: the STFT at ``n_fft`` (hop a quarter), or the audio contract's
    mel spectrogram (``n_fft`` 0), what the eval's log-mel distance reads."""
    if n_fft == 0:
        return mel_spectrogram(wave)
    spec = torch.stft(wave, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True)
    return spec.real.square() + spec.imag.square()


def _spectral_loss(
    pred: torch.Tensor, targets: list[tuple[int, torch.Tensor, float]]
) -> torch.Tensor:
    """Mean |dB difference| over the resolutions of ``LOSS_FFTS``, as the eval's distances read
    it: both sides floored (softly) at the target's peak − 80 dB, the mean over the bins where
    either side is above the floor."""
    total = 0.0
    for n_fft, target_db, floor in targets:
        pred_db = 10.0 * torch.log10(_power_spec(pred, n_fft) + floor)
        floor_db = 10.0 * math.log10(2.0 * floor)
        active = ((pred_db.detach() > floor_db) | (target_db > floor_db)).float()
        total = total + ((pred_db - target_db).abs() * active).sum() / active.sum().clamp(min=1.0)
    return total / len(targets)


def pitch_curve(times: np.ndarray, freqs: np.ndarray) -> tuple[float, float, float, float, float]:
    """``(f_end, a1, tau1, a2, tau2)`` of the two-time-constant pitch curve nearest (in log
    frequency, least squares) to a pitch track ``(times, freqs)``."""
    from scipy.optimize import least_squares

    tail = freqs[times >= min(0.15, times[-1] * 0.6)]
    f_end0 = float(np.median(tail if tail.size else freqs[-3:]))
    a0 = max(float(freqs[0]) / f_end0 - 1.0, 0.05)

    def curve(x, t):
        return np.exp(x[0]) * (1 + np.exp(x[1]) * np.exp(-t / np.exp(x[2]))
                               + np.exp(x[3]) * np.exp(-t / np.exp(x[4])))  # fmt: skip

    def resid(x):
        return np.log(curve(x, times)) - np.log(freqs)

    best = None
    for tau1 in (0.008, 0.025):
        x0 = [math.log(f_end0), math.log(a0), math.log(tau1), math.log(0.05), math.log(0.15)]
        lo = [math.log(20.0), math.log(1e-3), math.log(5e-4), math.log(1e-3), math.log(0.03)]
        hi = [math.log(500.0), math.log(20.0), math.log(0.08), math.log(2.0), math.log(1.5)]
        res = least_squares(
            resid, np.clip(x0, lo, hi), bounds=(lo, hi), loss="soft_l1", f_scale=0.05
        )
        if best is None or res.cost < best.cost:
            best = res
    x = np.exp(best.x)
    return float(x[0]), float(x[1]), float(x[2]), float(x[3]), float(x[4])


def _band_db(target: np.ndarray, onset: int) -> np.ndarray:
    """The target's level (dB per STFT bin, averaged into noise bands × knots): ``(bands, K)``."""
    spec = torch.stft(torch.from_numpy(target).float(), NOISE_FFT, NOISE_FFT // 4,
                      window=torch.hann_window(NOISE_FFT), return_complex=True).abs().numpy()  # fmt: skip
    grid = _Grid(target.size, onset)
    # spectrum magnitude of unit white noise through the window: sqrt(sum w²)
    norm = math.sqrt(float((torch.hann_window(NOISE_FFT) ** 2).sum()))
    db = 20.0 * np.log10(np.maximum(spec / norm, 1e-7))
    wf = grid.noise_f.numpy()  # (F, bands)
    wt = grid.noise_t.numpy()  # (K, frames)
    return (wf.T @ db @ wt.T) / np.maximum(wf.sum(0)[:, None] * wt.sum(1)[None, :], 1e-9)


def _pitch_correction(fit: KickFit, times: np.ndarray, freqs: np.ndarray) -> list[float]:
    """Knot values of the log-frequency correction that bring the curve onto the track (ridge
    least squares: knots the track does not reach stay near 0)."""
    p = _tensors(fit)
    p["pitch_knots"] = torch.zeros(len(KNOTS))
    m = _interp_matrix(times, np.array(KNOTS))  # (n, K)
    curve = frequency(p, torch.from_numpy(times).float(), torch.from_numpy(m).float()).numpy()
    resid = np.log(freqs) - np.log(curve)
    diff = np.diff(np.eye(len(KNOTS)), axis=0)
    lhs = m.T @ m + 0.3 * diff.T @ diff + 0.05 * np.eye(len(KNOTS))
    return [float(v) for v in np.linalg.solve(lhs, m.T @ resid)]


def initial_fit(target: np.ndarray, onset: int) -> tuple[KickFit, np.ndarray, np.ndarray]:
    """The fit's starting point from the pitch track and band energies, and the track itself."""
    from scipy.signal import butter, sosfiltfilt

    times, freqs = _pitch_track(target, onset, min(target.size, onset + SAMPLE_RATE), SAMPLE_RATE)
    fit = KickFit()
    if freqs.size >= 4:
        fit.f_end, fit.a1, fit.tau1, fit.a2, fit.tau2 = pitch_curve(times, freqs)
        fit.pitch_knots = _pitch_correction(fit, times, freqs)
    elif freqs.size:
        fit.f_end, fit.a1, fit.a2 = float(np.median(freqs)), 0.05, 0.01
    # body envelope: the RMS of the band around the body, one period long, at the knots
    top = min(max(4.0 * fit.f_end, 250.0), 2000.0)
    body = sosfiltfilt(butter(4, [15.0, top], btype="band", fs=SAMPLE_RATE, output="sos"), target)
    win = int(SAMPLE_RATE / fit.f_end)
    power = np.convolve(body[onset:] ** 2, np.ones(win) / win, mode="same")
    amp = np.sqrt(2.0 * np.maximum(power, 1e-14))
    idx = np.minimum((np.array(KNOTS) * SAMPLE_RATE).astype(int), amp.size - 1)
    fit.body_db = [float(v) for v in np.maximum(20.0 * np.log10(amp[idx] + 1e-9), -100.0)]
    fit.noise_db = (_band_db(target, onset) - 6.0).tolist()
    return fit, times, freqs


@dataclass
class FitResult:
    fit: KickFit
    log_mel_db: float  # floored log-mel distance of the resynthesis to the recording
    f0_25ms: tuple[float, float]  # (recording, fit) Hz at 25 ms
    seconds: float = 0.0


_LOGS = ("f_end", "a1", "tau1", "a2", "tau2", "click_hz")  # fitted as logs
_LEVELS = ("body_db", "noise_db", "harmonic_db", "click_level")  # dB: a larger step size
_LIMITS = {"harmonic_power": (0.5, 4.0), "tau1": (2e-4, 0.2), "tau2": (0.01, 3.0),
           "click_hz": (50.0, 16000.0), "a1": (0.0, 40.0), "a2": (0.0, 5.0)}  # fmt: skip


class _Stage:
    """One window of the target: grid, noise, target spectra and the pitch track inside it."""

    def __init__(self, target: np.ndarray, onset: int, length: int, seed: int, track) -> None:
        self.grid = _Grid(length, onset)
        self.noise = _noise_spectrum(length, seed)
        tgt = torch.from_numpy(target[:length]).float()
        self.targets = []
        for n_fft in LOSS_FFTS:
            power = _power_spec(tgt, n_fft)
            floor = float(power.max()) * 10.0 ** (-FLOOR_DB / 10.0)
            self.targets.append((n_fft, 10.0 * torch.log10(power + floor), floor))
        times, freqs = track
        self.track_t = torch.from_numpy(times).float()
        self.track_m = torch.from_numpy(_interp_matrix(times, np.array(KNOTS))).float()
        self.track_logf = torch.from_numpy(np.log(freqs)).float()

    def loss(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = _spectral_loss(_render(p, self.grid, self.noise), self.targets)
        if self.track_t.numel():
            err = torch.log(frequency(p, self.track_t, self.track_m)) - self.track_logf
            loss = loss + PITCH_WEIGHT * 100.0 * err.square().mean()
        return loss


def fit_recording(target: np.ndarray, config: FitConfig | None = None) -> FitResult:
    """Fit the kick model to one clip ``(L,)`` (a corpus clip: onset near the start, 2 s).

    Most steps see the first ``config.window`` s (where the kick is), the last ones the whole clip
    (where its tail and the recording's noise floor are)."""
    import time

    from kickgen.descriptors import pitch_envelope
    from kickgen.evaluation.metrics import wave_log_mel_distance_db

    config = config or FitConfig()
    start = time.perf_counter()
    target = np.asarray(target, dtype=np.float64)
    onset = int(onset_index(target)[0])
    fit, times, freqs = initial_fit(target, onset)
    short = min(target.size, onset + int(config.window * SAMPLE_RATE))
    stages = [
        (_Stage(target, onset, short, config.seed, (times, freqs)), config.steps - config.full_steps),
        (_Stage(target, onset, target.size, config.seed, (times, freqs)), config.full_steps),
    ]  # fmt: skip
    raw = {k: (torch.log(v) if k in _LOGS else v.clone()).requires_grad_(True)
           for k, v in _tensors(fit).items()}  # fmt: skip
    opt = torch.optim.Adam([
        {"params": [raw[k] for k in _LEVELS], "lr": config.level_lr},
        {"params": [v for k, v in raw.items() if k not in _LEVELS], "lr": config.lr},
    ])  # fmt: skip

    def params() -> dict[str, torch.Tensor]:
        p = {k: torch.exp(v) if k in _LOGS else v for k, v in raw.items()}
        for k, (lo, hi) in _LIMITS.items():
            p[k] = p[k].clamp(lo, hi)
        return p

    for stage, steps in stages:
        for _ in range(steps):
            opt.zero_grad()
            stage.loss(params()).backward()
            opt.step()
            with torch.no_grad():
                for k in _LEVELS:
                    raw[k].clamp_(SILENT_DB, 20.0)
    with torch.no_grad():
        fitted = KickFit.from_dict({k: v.tolist() for k, v in params().items()})
    fitted = KickFit.from_dict(fitted.to_dict())
    wave = render_fit(fitted, target.size, onset, config.seed)
    tgt = torch.from_numpy(target).float()
    dist = float(wave_log_mel_distance_db(torch.from_numpy(wave)[None].float(), tgt[None])[0])
    f0 = pitch_envelope(np.stack([target, wave]), np.array([0.025]))[:, 0]
    return FitResult(fitted, dist, (float(f0[0]), float(f0[1])), time.perf_counter() - start)


def fit_key(target: np.ndarray, config: FitConfig) -> str:
    """Cache key of a fit: the clip's samples, the model's version and the fitting settings."""
    h = hashlib.sha1(np.asarray(target, dtype=np.float32).tobytes())
    h.update(f"{FIT_VERSION}:{asdict(config)}".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- new kicks from fits

PERTURB_SHARE = 0.3  # a drawn kick moves each parameter by N(0, this × its spread over the fits)
MIX_SHARE = 0.5  # share of drawn kicks that mix two fits of one style
_SCALARS = ("f_end", "a1", "tau1", "a2", "tau2")  # moved on a log scale
_OFFSETS = ("body_db", "harmonic_db", "noise_db", "pitch_knots")  # moved by one common offset
_TIME_STRETCH = 0.25  # sd of the log time stretch of the envelopes (one per kick)


def _vector(fit: KickFit) -> dict[str, np.ndarray]:
    """A fit as arrays on the scales it is mixed and moved on (logs of positive quantities)."""
    d = {k: np.asarray(v, dtype=np.float64) for k, v in asdict(fit).items()}
    for k in (*_SCALARS, "click_hz"):
        d[k] = np.log(np.maximum(d[k], 1e-6))
    return d


def _from_vector(d: dict[str, np.ndarray]) -> KickFit:
    d = dict(d)
    for k in (*_SCALARS, "click_hz"):
        d[k] = np.exp(d[k])
    d["harmonic_power"] = np.clip(d["harmonic_power"], *_LIMITS["harmonic_power"])
    return KickFit.from_dict({k: np.asarray(v).tolist() for k, v in d.items()})


def spreads(fits: list[KickFit]) -> dict[str, float]:
    """Each parameter's spread over the fits (std on the scale it is moved on; for arrays the
    spread of their mean)."""
    vecs = [_vector(f) for f in fits]
    return {k: float(np.std([np.mean(v[k]) for v in vecs])) for k in vecs[0]}


def _stretch(values: np.ndarray, factor: float) -> np.ndarray:
    """Envelope knots ``(..., K)`` with time stretched by ``factor`` (> 1: longer)."""
    knots = np.array(KNOTS)
    flat = values.reshape(-1, knots.size)
    out = np.stack([np.interp(knots / factor, knots, row) for row in flat])
    return out.reshape(values.shape)


def draw_around(
    fits: list[KickFit], styles: list[str], spread: dict[str, float], rng: np.random.Generator
) -> tuple[KickFit, str]:
    """A new kick's parameters near the fits: one fit, or (``MIX_SHARE``) a mix of two fits of the
    same style, each parameter then moved within ``PERTURB_SHARE`` of its spread. Returns the
    parameters and a note of where they came from (``real-00012+real-00031@0.42``)."""
    i = int(rng.integers(len(fits)))
    vec, note = _vector(fits[i]), f"{i}"
    partners = [j for j, s in enumerate(styles) if s == styles[i] and j != i]
    if partners and rng.random() < MIX_SHARE:
        j = int(partners[int(rng.integers(len(partners)))])
        w = float(rng.uniform(0.0, 1.0))
        other = _vector(fits[j])
        vec = {k: (1.0 - w) * v + w * other[k] for k, v in vec.items()}
        note = f"{i}+{j}@{w:.2f}"
    for k in (*_SCALARS, "harmonic_power", "click_level", "click_hz", *_OFFSETS):
        vec[k] = vec[k] + rng.normal(0.0, PERTURB_SHARE * spread[k])
    stretch = float(np.exp(rng.normal(0.0, _TIME_STRETCH * PERTURB_SHARE / 0.3)))
    vec["body_db"] = _stretch(vec["body_db"], stretch)
    vec["noise_db"] = _stretch(vec["noise_db"], stretch)
    vec["phase"] = vec["phase"] + rng.normal(0.0, 0.05)
    return _from_vector(vec), note

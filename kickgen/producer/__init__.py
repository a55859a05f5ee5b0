"""Producer features: variations, morphs, one-shot hygiene, recallable WAVs, sample packs, plots.

Everything takes a loaded :class:`~kickgen.pipeline.KickPipeline`:

    from kickgen.pipeline import KickPipeline
    from kickgen import producer
    pipe = KickPipeline.from_pretrained("checkpoints")
    kicks = producer.vary(pipe, "my_kick.wav", prompt="punchy", strength=0.4, n=4, seed=1)
    frames = producer.morph(pipe, 1, 2, frames=8, prompt="808")
    kicks = producer.generate_kicks(pipe, "deep", n=8, hygiene=producer.HygieneConfig(), best_of=4)
    producer.write_kick("kick.wav", kicks[0].wave, kicks[0].recipe)     # recipe in LIST/INFO
    producer.make_pack(pipe, ["808", "punchy 909"], n=8, out_dir="Pack")

Modules: ``engine`` (rows → raw audio), ``kicks`` (batching, best-of), ``variations``, ``morph``,
``hygiene``, ``recall``, ``pack``, ``plot``.
"""

from kickgen.producer.engine import ProducerError, Row, Settings, render_rows, slerp
from kickgen.producer.hygiene import (
    HygieneConfig,
    HygieneError,
    apply_hygiene,
    integrated_loudness,
    sanity_checks,
    true_peak,
)
from kickgen.producer.kicks import Kick, generate_kicks, render_kicks
from kickgen.producer.morph import morph
from kickgen.producer.pack import make_pack
from kickgen.producer.recall import read_recipe, regenerate, write_kick
from kickgen.producer.variations import vary, vary_audio_bytes, vary_waveform

__all__ = [
    "HygieneConfig",
    "HygieneError",
    "Kick",
    "ProducerError",
    "Row",
    "Settings",
    "apply_hygiene",
    "generate_kicks",
    "integrated_loudness",
    "make_pack",
    "morph",
    "read_recipe",
    "regenerate",
    "render_kicks",
    "render_rows",
    "sanity_checks",
    "slerp",
    "true_peak",
    "vary",
    "vary_audio_bytes",
    "vary_waveform",
    "write_kick",
]

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
    kicks = producer.generate_kicks(pipe, "808", hygiene=producer.HygieneConfig(key="F"))  # in key
    producer.note_label(43.3)                                            # 'F1 −14 ct'

Modules: ``engine`` (rows → raw audio), ``kicks`` (batching, best-of), ``variations``, ``morph``,
``hygiene``, ``tuning`` (root notes, tuning to a key), ``recall``, ``pack``, ``plot``.
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
from kickgen.producer.morph import morph, morph_kicks
from kickgen.producer.pack import make_pack, measure_kick, pack_zip
from kickgen.producer.recall import read_recipe, regenerate, write_kick
from kickgen.producer.tuning import note_label, tune_to_key
from kickgen.producer.variations import vary, vary_audio_bytes, vary_init, vary_waveform

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
    "measure_kick",
    "morph",
    "morph_kicks",
    "note_label",
    "pack_zip",
    "read_recipe",
    "regenerate",
    "render_kicks",
    "render_rows",
    "sanity_checks",
    "slerp",
    "true_peak",
    "tune_to_key",
    "vary",
    "vary_audio_bytes",
    "vary_init",
    "vary_waveform",
    "write_kick",
]

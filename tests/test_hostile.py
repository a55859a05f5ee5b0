"""Hostile inputs and failure paths (issue 17): crafted WAVs, links, checkpoints, states,
recipes, prompt files, request bodies and writes made to fail. Each test names its defect."""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import SAMPLE_RATE as SR
from kickgen.audio import AudioError, load_audio, read_audio
from kickgen.cli import main


def kick_wave(seconds: float = 0.5, freq: float = 55.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.08)).astype(np.float32)


def write_sr1_kick(path: Path) -> Path:
    """The issue's 40 KB WAV whose header says 1 Hz (882 M samples once resampled)."""
    n = np.arange(20000)
    sf.write(str(path), (np.sin(n / 3) * np.exp(-n / 2000)).astype("float32"), 1, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- 1: memory bomb


def test_1_one_hertz_wav_is_refused_by_every_loader_without_allocating(tmp_path):
    from kickgen.data.collect import load_source
    from kickgen.producer.engine import ProducerError, load_init_audio
    from kickgen.producer.variations import vary_audio_bytes, vary_waveform

    bomb = write_sr1_kick(tmp_path / "kick_sr1.wav")
    tracemalloc.start()
    try:
        for load in (load_audio, lambda p: load_audio(p, raw=True), read_audio, load_source):
            with pytest.raises(AudioError, match="sample rate 1 Hz"):
                load(bomb)
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            load_init_audio(bomb)
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            vary_audio_bytes(None, bomb.read_bytes())
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            vary_waveform(None, np.ones(20000, np.float32), 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # bytes: nothing near the 3.3 GiB the resampler asked for


def test_1_overlong_and_many_channel_files_are_refused(tmp_path):
    long = tmp_path / "kick_long.wav"
    sf.write(str(long), np.zeros((8000 * 61, 1), np.float32), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="61.0 s long"):
        read_audio(long)
    with pytest.raises(AudioError, match="sample rate 1000000 Hz"):
        from kickgen.audio import check_audio_header

        check_audio_header("x.wav", 1_000_000, 10, 1)


def test_1_corpus_tools_skip_and_report_the_bomb(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_sr1_kick(lib / "kick_sr1.wav")
    sf.write(str(lib / "kick_good.wav"), kick_wave(), SR)
    assert main(["data", "collect", str(lib), "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "collect: 1 kicks" in out and "kick_sr1.wav: sample rate 1 Hz" in out


# --------------------------------------------------------------------------- 8, 16: corpus files


def test_8_broken_and_looping_links_are_skipped_not_fatal(tmp_path, capsys):
    from kickgen.data.collect import collect_library

    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(str(lib / "kick_good.wav"), kick_wave(), SR)
    os.symlink(lib / "missing.wav", lib / "kick_dangling.wav")
    os.symlink(lib / "kick_self.wav", lib / "kick_self.wav")  # ELOOP
    clips, skipped = collect_library([lib])
    assert [Path(c.file).name for c in clips] == ["kick_good.wav"]
    reasons = {Path(p).name: r for p, r in skipped}
    assert (
        "broken link" in reasons["kick_dangling.wav"] and "broken link" in reasons["kick_self.wav"]
    )

    out = tmp_path / "corpus"
    bad = tmp_path / "bad"
    bad.mkdir()
    os.symlink(bad / "missing.wav", bad / "kick_dangling.wav")
    from kickgen.data.build import BuildConfig, BuildError, build_corpus

    with pytest.raises(BuildError, match="no sources"):
        build_corpus(BuildConfig(out=out, library=(bad,), synth=0), quiet=True)
    assert not out.exists()  # no empty output folder left behind


def test_16_duration_floor_and_non_utf8_names(tmp_path):
    from kickgen.data.collect import collect_library

    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(str(lib / "kick_click.wav"), kick_wave(0.010), SR, subtype="FLOAT")  # 10 ms, ~2 KB
    with open(os.fsencode(lib) + b"/kick_caf\xe9.wav", "wb") as fh:  # Latin-1 name, not UTF-8
        sf.write(fh, kick_wave(), SR, format="WAV", subtype="PCM_16")
    clips, skipped = collect_library([lib], min_bytes=0)
    assert [Path(c.file).name for c in clips] == [os.fsdecode(b"kick_caf\xe9.wav")]
    assert any("10 ms long" in r for p, r in skipped if p.endswith("kick_click.wav"))


# --------------------------------------------------------------------------- 2, 3, 4, 19: outputs

STEPS = 2


@pytest.fixture(scope="module")
def tiny_ckpts(tiny_checkpoint_dir: Path) -> Path:
    """Random checkpoints (narrow U-Net, tiny vocoder) under the guide's names."""
    return tiny_checkpoint_dir


def ckpt_flags(d: Path) -> list[str]:
    return ["--diffusion-ckpt", str(d / "diffusion_step_100000.pt"), "--vae-ckpt", str(d / "vae_epoch_100.pt"),
            "--vocoder-ckpt", str(d / "vocoder_epoch_50.pt")]  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture()
def disk_full_after(monkeypatch):
    """``disk_full_after(k)``: the (k+1)-th WAV opened for writing fails as a full disk does in
    libsndfile (a ``LibsndfileError``, not an ``OSError``), leaving a partial file behind."""
    real = sf.SoundFile

    def arm(k: int) -> None:
        count = {"n": 0}

        def soundfile(file, mode="r", *args, **kwargs):
            if "w" in mode and not isinstance(file, io.BytesIO):
                count["n"] += 1
                if count["n"] > k:
                    Path(file).write_bytes(b"RIFF\0\0\0\0WAVE")  # what a full disk leaves
                    raise sf.LibsndfileError(2, prefix="Error writing: ")
            return real(file, mode, *args, **kwargs)

        monkeypatch.setattr(sf, "SoundFile", soundfile)

    return arm


def test_2_3_failed_generate_leaves_the_folder_as_it_was(
    tiny_ckpts, tmp_path, capsys, disk_full_after
):
    out = tmp_path / "kicks"
    out.mkdir()
    (out / "k_0.wav").write_bytes(b"the user's own kick")  # a same-named file from before
    before = snapshot(out)
    disk_full_after(1)
    rc = main(["generate", *ckpt_flags(tiny_ckpts), "-n", "3", "--steps", str(STEPS), "--seed", "1",
               "--output", str(out / "k.wav"), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("kickgen: error: cannot write") and "k_1.wav" in err and ".tmp" not in err
    assert snapshot(out) == before


def test_2_failed_pack_force_restores_the_earlier_pack(
    tiny_ckpts, tmp_path, capsys, disk_full_after
):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("808\ndeep\n")
    pack = tmp_path / "Pack"
    args = ["pack", "--prompts", str(prompts), "-n", "2", "--out", str(pack), "--checkpoints", str(tiny_ckpts),
            "--steps", str(STEPS), "--sidecar", "-q"]  # fmt: skip
    assert main([*args, "--seed", "1"]) == 0
    before = snapshot(pack)
    assert "01-808-01.wav" in before and "manifest.csv" in before
    capsys.readouterr()
    disk_full_after(3)  # the 4th WAV of the new pack fails
    assert main([*args, "--seed", "50", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "02-deep-02.wav" in err
    assert snapshot(pack) == before  # every earlier WAV, manifest and .sfz as they were


def test_2_failed_morph_removes_what_it_made(tiny_ckpts, tmp_path, capsys, disk_full_after):
    out = tmp_path / "morph"
    disk_full_after(2)
    rc = main(["morph", "--seeds", "1", "2", "--frames", "3", "--steps", str(STEPS), "--out", str(out),
               "--checkpoints", str(tiny_ckpts), "-q"])  # fmt: skip
    assert rc == 2 and "morph_02.wav" in capsys.readouterr().err
    assert not out.exists()


def test_2_transaction_commit_failure_restores_replaced_files(tmp_path, monkeypatch):
    from kickgen.output import OutputError, OutputTransaction

    (tmp_path / "a.txt").write_text("old a")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "b.txt":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    with pytest.raises(OutputError, match="cannot write .*b.txt: No space left on device"):
        with OutputTransaction() as out:
            out.stage(tmp_path / "a.txt").write_text("new a")
            out.stage(tmp_path / "b.txt").write_text("new b")
            monkeypatch.setattr(os, "replace", replace)
            out.commit()
    monkeypatch.undo()
    assert snapshot(tmp_path) == {"a.txt": b"old a"}


def test_4_cfg_scale_is_bounded_on_every_path(tiny_ckpts, tmp_path, capsys):
    from kickgen.errors import PipelineError
    from kickgen.pipeline import check_generation_args
    from kickgen.producer.engine import ProducerError, Settings

    for value in ("inf", "1e308", "nan", "20.5"):
        assert (
            main(
                [
                    "generate",
                    *ckpt_flags(tiny_ckpts),
                    "--cfg-scale",
                    value,
                    "--output",
                    str(tmp_path),
                ]
            )
            == 2
        )
        assert main(["morph", "--seeds", "1", "2", "--cfg-scale", value, "--out", str(tmp_path / "m"),
                     "--checkpoints", str(tiny_ckpts)]) == 2  # fmt: skip
        assert "--cfg-scale" in capsys.readouterr().err
    with pytest.raises(ProducerError, match="cfg_scale=inf"):
        Settings(cfg_scale=float("inf")).check()
    with pytest.raises(PipelineError, match="0 to 20"):
        check_generation_args(cfg_scale=1e308)
    assert list(tmp_path.iterdir()) == []


def test_4_non_finite_audio_is_never_written(tiny_ckpts, tmp_path, capsys):
    import shutil

    import torch

    from kickgen.audio import write_wav
    from kickgen.output import OutputError
    from kickgen.producer.recall import write_kick

    with pytest.raises(OutputError, match="NaN or infinite"):
        write_wav(tmp_path / "a.wav", np.full(100, np.nan, np.float32), subtype="PCM_24")
    with pytest.raises(OutputError, match="NaN or infinite"):
        write_kick(tmp_path / "b.wav", np.full(100, np.inf, np.float32), None, "pcm24")
    assert list(tmp_path.iterdir()) == []

    broken = tmp_path / "ckpts"  # a VAE whose weights are NaN
    shutil.copytree(tiny_ckpts, broken)
    ckpt = torch.load(broken / "vae_epoch_100.pt", weights_only=True)
    ckpt["model_state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                for k, v in ckpt["model_state_dict"].items()}  # fmt: skip
    torch.save(ckpt, broken / "vae_epoch_100.pt")
    out = tmp_path / "out"
    rc = main(["generate", *ckpt_flags(broken), "-n", "2", "--steps", str(STEPS), "--format", "pcm24",
               "--output", str(out), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "NaN or infinite" in err and err.count("\n") == 1
    assert not out.exists()


def test_19_temporary_names_are_unique_and_never_left(tmp_path):
    from kickgen.audio import write_wav
    from kickgen.output import target_of, temporary_name

    target = tmp_path / "kick.wav"
    names = {temporary_name(target) for _ in range(50)}
    assert len(names) == 50 and all(
        str(os.getpid()) in n.name and n.suffix == ".wav" for n in names
    )
    assert {target_of(n) for n in names} == {target}
    (tmp_path / ".kick.wav.tmp").write_bytes(b"another process's file")  # the old fixed name
    write_wav(target, kick_wave())
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kick.wav.tmp", "kick.wav"]


# --------------------------------------------------------------------------- 7, 12, 18: training


@pytest.fixture(scope="module")
def synth_corpus(tmp_path_factory) -> Path:
    from kickgen.train.data import write_synth_corpus

    return write_synth_corpus(tmp_path_factory.mktemp("corpus"), n_train=6, n_val=3)


def train_args(corpus: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "vae", "--corpus", str(corpus), "--run-dir", str(run), "--batch-size", "4",
            "--val-every", "100", "--val-clips", "3", "--channels", "8,8,16,16", *extra]  # fmt: skip


def test_7_12_18_train_refuses_to_overwrite_and_names_bad_states(synth_corpus, tmp_path, capsys):
    import torch

    from kickgen.train.runtime import STATE_FILENAME

    run = tmp_path / "run"
    assert main(train_args(synth_corpus, run, "--max-steps", "4", "--stop-at", "2")) == 0
    out = capsys.readouterr().out
    assert (
        "state in" in out and "nothing exported yet" in out
    )  # #18: stopped before the first export
    state_file = run / STATE_FILENAME
    before = state_file.read_bytes()

    assert main(train_args(synth_corpus, run, "--max-steps", "4")) == 2  # #7: no --resume
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err
    assert state_file.read_bytes() == before

    # #12: --resume with a changed architecture flag names it
    assert main(train_args(synth_corpus, run, "--resume", "--channels", "8,8,16,32")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--channels (run: 8,8,16,16, now: 8,8,16,32) changed" in err

    good = torch.load(state_file, weights_only=True)
    for broken, message in [
        ([1, 2], "holds a list"),
        ({k: v for k, v in good.items() if k != "opt"}, "lacks opt"),
        ({**good, "step": "abc"}, "step 'abc'"),
    ]:
        torch.save(broken, state_file)
        assert main(train_args(synth_corpus, run, "--resume")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err

    assert main(train_args(synth_corpus, run, "--max-steps", "1", "--overwrite")) == 0
    assert torch.load(state_file, weights_only=True)["step"] == 1


# --------------------------------------------------------------------------- 9: hostile checkpoints


@pytest.mark.parametrize(
    "kind, change, message",
    [
        ("diffusion", {"config.timesteps": 2_000_000_000}, "timesteps = 2000000000 is outside"),
        ("diffusion", {"config.base_channels": 2.5}, "base_channels = 2.5 is not a whole number"),
        ("diffusion", {"config.prediction_type": "x0"}, "prediction_type = 'x0' is not one of"),
        ("diffusion", {"vocab": 5}, "vocab is not a list"),
        ("diffusion", {"ema_state_dict": [1, 2]}, "ema_state_dict is a list"),
        ("vae", {"config.channels": (10**6,) * 4}, "channels = (1000000, 1000000"),
        ("vae", {"config.latent_dim": -4}, "latent_dim = -4 is outside"),
        ("vae", {"config.channels": "wide"}, "channels = 'wide' is not a list"),
        ("vae", {"config.norm_groups": 3}, "describes no valid model"),
        ("vae", {"model_state_dict": [1, 2]}, "model_state_dict is a list"),
        ("vocoder", {"config.upsample_rates": (8, float("nan"))}, "is not a whole number"),
        ("vocoder", {"config.mel_scale": float("inf")}, "mel_scale = inf is not a finite number"),
    ],
)
def test_9_hostile_checkpoint_values_are_one_line_errors(
    tiny_ckpts, tmp_path, kind, change, message
):
    import torch

    from kickgen import checkpoints as C

    name = {
        "vae": C.VAE_FILENAME,
        "diffusion": C.DIFFUSION_FILENAME,
        "vocoder": C.VOCODER_FILENAME,
    }[kind]
    ckpt = torch.load(tiny_ckpts / name, weights_only=True)
    for key, value in change.items():
        if key.startswith("config."):
            setattr(ckpt["config"], key.split(".", 1)[1], value)  # what a crafted file can hold
        else:
            ckpt[key] = value
    path = tmp_path / name
    torch.save(ckpt, path)
    load = {"vae": C.load_vae, "diffusion": C.load_diffusion, "vocoder": C.load_vocoder}[kind]
    tracemalloc.start()
    try:
        with pytest.raises(C.CheckpointError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert peak < 200 * 2**20


# --------------------------------------------------------------------------- 5, 6, 10, 13, 14, 17: server


class StubPipeline:
    """Stands in for KickPipeline in the server: ``make(n)`` gives the raw waveforms of ``render``."""

    vocab = ["808", "deep"]

    def __init__(self, make):
        import torch

        self.make = make
        self.device = torch.device("cpu")

    def parse_prompt(self, prompt):
        return SimpleNamespace(
            matched=prompt.split(), unknown=[], suggestions={}, warning_text=lambda: ""
        )

    def render(self, rows, *args, **kwargs):
        import torch

        return SimpleNamespace(raw=torch.as_tensor(self.make(len(rows))))


def serve_client(make, **config):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kickgen.serve.app import ServeConfig, create_app

    return TestClient(
        create_app(StubPipeline(make), ServeConfig(**config)), raise_server_exceptions=False
    )


def quiet_kicks(n):
    return np.full((n, SR * 2), 0.1, np.float32)


def test_5_6_a_queued_request_whose_client_left_is_dropped_and_retry_after_is_measured():
    pytest.importorskip("fastapi")
    import asyncio
    import threading

    from kickgen.serve.context import ClientGone, GenerationQueue, QueueFull

    async def scenario():
        queue = GenerationQueue(concurrency=1, queue_size=1)
        gate, ran = threading.Event(), []
        running = asyncio.ensure_future(queue.run(lambda: gate.wait(10) and ran.append("first")))
        while queue.state()["running"] == 0:
            await asyncio.sleep(0.01)

        async def gone() -> bool:
            return True

        with pytest.raises(ClientGone):
            await queue.run(lambda: ran.append("abandoned"), gone=gone)
        assert queue.state()["queued"] == 0  # its slot is free again
        gate.set()
        await running
        assert ran == ["first"]
        # Retry-After from measured job times: ~0 s jobs give 1 s, however many kicks x steps
        await queue.run(lambda: time.sleep(0.05), work=8 * 200)
        queue._in_flight = queue.capacity
        with pytest.raises(QueueFull) as full:
            await queue.run(lambda: None, work=8 * 200)
        assert full.value.retry_after == 1
        queue.shutdown()

    import time

    asyncio.run(scenario())


def test_10_request_bodies_are_capped_before_parsing():
    with serve_client(quiet_kicks) as c:
        big = b'{"prompt": "' + b"a" * 200_000 + b'"}'
        res = c.post("/api/generate", content=big, headers={"Content-Type": "application/json"})
        assert res.status_code == 413 and "request body over" in res.json()["detail"]
        chunked = c.post("/api/generate", content=iter([b"[" + b"1," * 40_000] * 3),
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert chunked.status_code == 413
        assert c.post("/api/generate", json={"n": 1, "steps": 1}).status_code == 200


def test_13_14_store_minimum_and_the_bound_loopback_address(capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kickgen.serve.app import ServeConfig, create_app
    from kickgen.serve.cli import allowed_hosts

    assert main(["serve", "--store-mb", "2"]) == 2
    assert "at least 11 MiB" in capsys.readouterr().err
    with pytest.raises(ValueError, match="store_bytes"):
        create_app(StubPipeline(quiet_kicks), ServeConfig(store_bytes=2 * 2**20))
    app = create_app(
        StubPipeline(quiet_kicks), ServeConfig(allowed_hosts=allowed_hosts("127.0.0.2"))
    )
    assert TestClient(app, base_url="http://127.0.0.2:8000").get("/healthz").status_code == 200
    assert TestClient(app, base_url="http://evil.example:8000").get("/healthz").status_code == 400
    assert "[::1]" in allowed_hosts("::1") and "localhost" in allowed_hosts("0.0.0.0")


def test_17_failed_generations_are_json_errors_and_the_server_keeps_answering():
    def broken(n):
        raise RuntimeError("CUDA out of memory in kick 3")

    with serve_client(broken) as c:
        res = c.post("/api/generate", json={"n": 4, "steps": 1})
        assert (
            res.status_code == 500
            and res.json()["detail"] == "generation failed: CUDA out of memory in kick 3"
        )
        assert c.get("/healthz").json()["status"] == "ok"
    with serve_client(lambda n: np.full((n, SR * 2), np.nan, np.float32)) as c:
        res = c.post("/api/generate", json={"n": 2, "steps": 1})
        assert res.status_code == 500 and "NaN or infinite samples" in res.json()["detail"]
        assert "shape" not in res.json()["detail"]


# --------------------------------------------------------------------------- 15, 18: prompt files, names


def test_15_prompt_files_with_a_bom_nul_or_windows_characters(tmp_path):
    from kickgen.producer.engine import ProducerError
    from kickgen.producer.pack import read_prompts, slug

    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeff808\ndeep\n".encode())
    assert read_prompts(bom) == ["808", "deep"]
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"808\nde\x00ep\n")
    with pytest.raises(ProducerError, match="line 2: holds a control character"):
        read_prompts(nul)
    assert all(c not in slug('a<b>:c"d/e\\f|g?h*') for c in '<>:"/\\|?*')


def test_18_morph_name_cannot_leave_the_output_folder(tiny_ckpts, tmp_path, capsys):
    for name in ("../x", "/tmp/x", "..", "a\\b"):
        assert main(["morph", "--seeds", "1", "2", "--name", name, "--out", str(tmp_path / "m"),
                     "--checkpoints", str(tiny_ckpts)]) == 2  # fmt: skip
        assert "--name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- 11: recipes


def valid_recipe() -> dict:
    """A recipe as ``make_recipe`` writes it (a variation with hygiene, one init file)."""
    return {
        "recipe": 1, "kickgen": "0.1.0", "device": "cpu", "format": "pcm24", "sample_rate": 48000,
        "settings": {"cfg_scale": 3.0, "steps": 2, "sampler": "ddim", "strength": 0.5},
        "rows": [{"seed": 7, "prompt": "deep", "init": "my_kick.wav"}, {"seed": 8, "prompt": "deep", "init": "my_kick.wav"}],
        "index": 1,
        "hygiene": {"align_onset": True, "preroll_ms": 0.5, "dc_hz": 10.0, "fade": "decay",
                    "decay_fade_ms": 100.0, "level": "peak", "peak": 0.95, "true_peak": False,
                    "lufs": -22.0, "ceiling_dbtp": -1.0, "trim": True, "trim_db": -60.0},
        "model": {"diffusion": {"name": "d.pt", "sha256": "0123456789abcdef"},
                  "vae": {"name": "v.pt", "sha256": "0123456789abcdef"}, "vocoder": None},
        "init": {"my_kick.wav": "fedcba9876543210"},
    }  # fmt: skip


def tampered_wav(path: Path, comment: str) -> Path:
    """A WAV whose LIST/INFO comment is ``comment``, written as an editor would (not by kickgen)."""
    with sf.SoundFile(str(path), "w", SR, 1, "FLOAT", format="WAV") as f:
        f.comment = comment
        f.write(kick_wave())
    return path


def test_11_a_valid_recipe_passes_the_schema(tmp_path):
    import json

    from kickgen.producer.recall import check_recipe, read_recipe

    recipe = valid_recipe()
    wav = tampered_wav(tmp_path / "k.wav", json.dumps(recipe))
    assert read_recipe(wav) == recipe
    parsed = check_recipe(recipe)
    assert parsed.index == 1 and parsed.rows[1].seed == 8 and parsed.hygiene.trim
    assert parsed.settings.strength == 0.5 and (parsed.fmt, parsed.sample_rate) == ("pcm24", 48000)
    plain = {
        k: v
        for k, v in recipe.items()
        if k not in ("hygiene", "format", "sample_rate", "init", "kickgen", "device")
    }
    plain["rows"], plain["index"] = [{"seed": 1}], 0
    plain["settings"] = {"cfg_scale": 1, "steps": 50, "sampler": "dpm", "strength": 1.0}
    assert check_recipe(plain).fmt == "float32"  # optional fields take kickgen's defaults


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["settings"].update(colour="red"), "settings has unknown field 'colour'"),
        (lambda r: r["hygiene"].update(gain=2), "hygiene has unknown field 'gain'"),
        (lambda r: r.update(extra=1), "the recipe has unknown field 'extra'"),
        (
            lambda r: r["settings"].update(cfg_scale="x"),
            "settings.cfg_scale is 'x': use a finite number",
        ),
        (lambda r: r["settings"].update(cfg_scale=float("inf")), "settings.cfg_scale is inf"),
        (lambda r: r["settings"].update(cfg_scale=50.0), "settings.cfg_scale=50.0: use 0 to 20"),
        (lambda r: r["settings"].update(steps=0), "settings.steps is 0: use a whole number from 1"),
        (lambda r: r["settings"].update(steps=2.5), "settings.steps is 2.5"),
        (
            lambda r: r["settings"].update(sampler="euler"),
            "settings.sampler is 'euler': use one of ddim, dpm",
        ),
        (lambda r: r["settings"].update(strength=2), "settings.strength=2"),
        (lambda r: r.update(index=99), "index is 99: use a row of the batch, 0 to 1"),
        (lambda r: r.update(index=-1), "index is -1: use a whole number from 0"),
        (lambda r: r.update(index=True), "index is True"),
        (lambda r: r.update(index="1"), "index is '1'"),
        (lambda r: r.pop("index"), "the recipe lacks 'index'"),
        (
            lambda r: r["rows"][0].update(seed=2**70),
            "rows[0].seed is 1180591620717411303424: use a whole number",
        ),
        (lambda r: r["rows"][0].update(seed=-3), "rows[0].seed is -3"),
        (lambda r: r["rows"][1].pop("seed"), "rows[1] lacks 'seed'"),
        (lambda r: r["rows"][1].update(t=1.5), "rows[1].t is 1.5: use a finite number from 0 to 1"),
        (lambda r: r["rows"][1].update(prompt=5), "rows[1].prompt is 5: use a string"),
        (
            lambda r: r["rows"][1].update(init="other.wav"),
            "rows[1].init 'other.wav' has no SHA-256 in init",
        ),
        (lambda r: r.update(rows=[5]), "rows[0] is 5: it should be an object"),
        (lambda r: r.update(rows=[]), "rows is []: it should be a list of at least one row"),
        (lambda r: r.update(rows={"seed": 1}), "rows is {'seed': 1}"),
        (
            lambda r: r.update(model={"vae": "x"}),
            "model is {'vae': 'x'}: it should name diffusion, vae, vocoder",
        ),
        (lambda r: r.update(model={}), "model is {}: it should name diffusion, vae, vocoder"),
        (lambda r: r["model"].update(vae="x"), "model.vae is 'x': it should be an object"),
        (
            lambda r: r["model"]["vae"].update(sha256="zz"),
            "model.vae.sha256 is 'zz': use the 16 hex digits",
        ),
        (lambda r: r["model"]["vae"].pop("sha256"), "model.vae lacks 'sha256'"),
        (lambda r: r.update(init={"my_kick.wav": 5}), "init['my_kick.wav'] is 5"),
        (lambda r: r.update(sample_rate="abc"), "sample_rate is 'abc': use one of 44100, 48000"),
        (lambda r: r.update(sample_rate=22050), "sample_rate is 22050"),
        (lambda r: r.update(format="mp3"), "format is 'mp3': use one of float32, pcm16, pcm24"),
        (
            lambda r: r["hygiene"].update(fade=3),
            "hygiene.fade is 3: use one of decay, reference, none",
        ),
        (lambda r: r["hygiene"].update(level="loud"), "hygiene.level is 'loud': use one of peak"),
        (lambda r: r["hygiene"].update(peak="loud"), "hygiene.peak is 'loud'"),
        (lambda r: r["hygiene"].update(peak=7.0), "hygiene.peak=7.0: use a linear peak"),
        (lambda r: r["hygiene"].update(trim="yes"), "hygiene.trim is 'yes': use true or false"),
        (lambda r: r.update(hygiene=[1]), "hygiene is [1]: it should be an object"),
        (lambda r: r.update(settings=None), "settings is None: it should be an object"),
    ],
)
def test_11_tampered_recipes_are_one_line_errors_naming_the_field(
    tmp_path, capsys, change, message
):
    import json

    from kickgen.producer.engine import ProducerError
    from kickgen.producer.recall import read_recipe

    recipe = valid_recipe()
    change(recipe)
    wav = tampered_wav(tmp_path / "k.wav", json.dumps(recipe))
    with pytest.raises(
        ProducerError, match="k.wav: its kickgen recipe is damaged or edited"
    ) as err:
        read_recipe(wav)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert main(["regenerate", str(wav), "-q"]) == 2  # refused before any model is loaded
    err_text = capsys.readouterr().err
    assert message in err_text and err_text.count("\n") == 1 and "Traceback" not in err_text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.wav"]


def test_11_oversized_deep_or_huge_number_recipes_are_refused(tmp_path):
    import json

    from kickgen.producer.engine import ProducerError
    from kickgen.producer.recall import MAX_COMMENT_BYTES, read_recipe

    deep = tampered_wav(tmp_path / "deep.wav", '{"a":' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(
        ProducerError, match="deep.wav: the kickgen recipe is not JSON that kickgen writes"
    ):
        read_recipe(deep)
    huge = tampered_wav(
        tmp_path / "huge.wav", '{"recipe": 1, "rows": [], "index": ' + "9" * 5000 + "}"
    )
    with pytest.raises(ProducerError, match="not JSON that kickgen writes"):
        read_recipe(huge)
    big = valid_recipe()
    big["rows"] = [{"seed": i, "prompt": "deep", "init": "my_kick.wav"} for i in range(2000)]
    plain = tmp_path / "plain.wav"
    sf.write(str(plain), kick_wave(), SR)
    plain.with_suffix(".json").write_text(json.dumps(big, indent=1))  # a sidecar has no INFO limit
    with pytest.raises(ProducerError, match=f"more than the {MAX_COMMENT_BYTES} kickgen writes"):
        read_recipe(plain)


def test_18_a_recipe_over_the_wav_comment_limit_is_refused_not_dropped(tmp_path):
    import json

    from kickgen.producer.engine import ProducerError
    from kickgen.producer.recall import MAX_COMMENT_BYTES, read_recipe, write_kick

    def recipe_of_size(size: int) -> dict:
        recipe = valid_recipe()
        recipe["rows"][0]["prompt"] = recipe["rows"][1]["prompt"] = ""
        recipe["rows"][0]["prompt"] = "x" * (size - len(json.dumps(recipe, separators=(",", ":"))))
        return recipe

    fits = write_kick(
        tmp_path / "fits.wav", kick_wave(), recipe_of_size(MAX_COMMENT_BYTES), "pcm24", 48000
    )
    assert read_recipe(fits) == recipe_of_size(MAX_COMMENT_BYTES)  # the largest recipe survives
    with pytest.raises(
        ProducerError, match=rf"over.wav: its recipe is {MAX_COMMENT_BYTES + 1} bytes, more than"
    ):
        write_kick(
            tmp_path / "over.wav",
            kick_wave(),
            recipe_of_size(MAX_COMMENT_BYTES + 1),
            "pcm24",
            48000,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fits.wav"]


def test_18_a_save_killed_midway_leaves_no_temporary_once_the_run_is_saved_or_resumed(tmp_path):
    import signal
    import subprocess
    import sys

    from kickgen.checkpoints import atomic_save
    from kickgen.train.runtime import STATE_FILENAME, STATE_KEYS, load_state

    def killed_save(run: Path) -> Path:
        """The temporary a process killed with SIGKILL in the middle of saving ``run``'s state leaves."""
        code = ("import os, sys, time; p = os.path.join(sys.argv[1], f'.train_state.pt.{os.getpid()}.tmp'); "
                "open(p, 'wb').write(b'half a state'); print(p, flush=True); time.sleep(60)")  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True
        )
        left = Path(proc.stdout.readline().strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert left.is_file()
        return left

    run = tmp_path / "run"
    run.mkdir()
    saving = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process's save in progress is not touched
        live = run / f".{STATE_FILENAME}.{saving.pid}.tmp"
        live.write_bytes(b"being written")
        other = run / ".vae_epoch_100.pt.1.tmp"  # another file's temporary: its own save cleans it
        other.write_bytes(b"")
        stale = killed_save(run)
        state = {"model_type": "vae", **{k: {} for k in STATE_KEYS["vae"]}, "step": 3}
        atomic_save({"kind": "train_state", **state}, run / STATE_FILENAME)
        assert not stale.exists() and live.is_file() and other.is_file()
        stale = killed_save(run)
        assert load_state(run, "vae")["step"] == 3  # resuming cleans up too
        assert not stale.exists() and live.is_file()
        assert sorted(p.name for p in run.iterdir()) == sorted(
            [STATE_FILENAME, live.name, other.name]
        )
    finally:
        saving.kill()
        saving.wait()


# --------------------------------------------------------------------------- 10: slow request heads


@pytest.fixture()
def real_server(serve_in_thread):
    """``real_server(head_timeout_s, max_connections=256)``: ``kickgen serve``'s uvicorn server
    (stub pipeline) on a free loopback port, in a thread, as a context manager."""
    pytest.importorskip("fastapi")
    from kickgen.serve.app import create_app
    from kickgen.serve.server import server_config

    def start(head_timeout_s: float, max_connections: int = 256):
        app = create_app(StubPipeline(quiet_kicks))
        return serve_in_thread(server_config(app, head_timeout_s, max_connections))

    return start


GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def read_response(conn) -> bytes:
    """One HTTP response (head and Content-Length body) from a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, v in (h.split(b":", 1) for h in head.split(b"\r\n")[1:])
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head.split(b"\r\n", 1)[0]


def closed_by_server(conn, within_s: float) -> bool:
    """True when the server closes ``conn`` within ``within_s`` seconds."""
    conn.settimeout(within_s)
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_10_connections_that_do_not_finish_their_headers_are_closed(real_server):
    import socket
    import time

    with real_server(head_timeout_s=0.5) as address:
        start = time.monotonic()
        silent = [socket.create_connection(address) for _ in range(30)]  # send nothing
        partial = [socket.create_connection(address) for _ in range(71)]
        for c in partial:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        trickle = socket.create_connection(address)  # a byte every 0.1 s does not move the deadline
        trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sent = 0
        try:
            while sent < 30 and not closed_by_server(trickle, 0.1):
                trickle.sendall(b"a")
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert 2 <= sent < 25  # closed after about 0.5 s, not at the end of the 3 s trickle
        assert all(closed_by_server(c, 3.0) for c in silent + partial)
        assert time.monotonic() - start < 4.0
        for c in [*silent, *partial, trickle]:
            c.close()

        with socket.create_connection(
            address
        ) as kept:  # keep-alive still works: idle, then a request
            kept.sendall(GET)
            assert read_response(kept) == b"HTTP/1.1 200 OK"
            time.sleep(1.0)  # longer than the head timeout, shorter than uvicorn's 5 s keep-alive
            kept.sendall(GET[:10])
            time.sleep(0.2)  # a request split across packets, in time
            kept.sendall(GET[10:])
            assert read_response(kept) == b"HTTP/1.1 200 OK"
            kept.sendall(GET[:10])  # the next head starts and stalls: closed
            assert closed_by_server(kept, 3.0)


def test_10_serve_refuses_bad_head_timeouts_and_caps(capsys):
    for flags in (["--head-timeout", "0"], ["--head-timeout", "nan"], ["--max-connections", "0"]):
        assert main(["serve", *flags]) == 2
        assert "--head-timeout" in capsys.readouterr().err


def test_10_connections_beyond_the_cap_get_503(real_server):
    import socket

    with real_server(head_timeout_s=5.0, max_connections=3) as address:
        idle = [socket.create_connection(address)]
        with socket.create_connection(address) as c:
            c.sendall(GET)
            assert read_response(c) == b"HTTP/1.1 200 OK"
        idle.append(socket.create_connection(address))
        with socket.create_connection(address) as c:
            c.sendall(GET)
            assert read_response(c) == b"HTTP/1.1 503 Service Unavailable"
        for c in idle:
            c.close()

"""Hostile files, recipes and CLI runs (issue 38, its file half): each test names the point it
checks and fails without its fix. Requests go to a stub pipeline; files are tiny."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import SAMPLE_RATE as SR
from kickgen.cli import main


def kick_wave(seconds: float = 0.5, freq: float = 55.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.08)).astype(np.float32)


def stub_recipe(rows: int = 1, steps: int = 2, **extra) -> dict:
    """A recipe the stub pipeline below regenerates (it was made from no checkpoint files)."""
    return {
        "recipe": 1, "settings": {"cfg_scale": 3.0, "steps": steps, "sampler": "ddim", "strength": 1.0},
        "rows": [{"seed": i, "prompt": "deep"} for i in range(rows)], "index": 0,
        "model": {"diffusion": None, "vae": None, "vocoder": None}, **extra,
    }  # fmt: skip


def wav_with_recipe(path: Path, recipe: dict) -> Path:
    """A WAV whose LIST/INFO comment holds ``recipe`` (as kickgen or an editor would write it)."""
    with sf.SoundFile(str(path), "w", SR, 1, "FLOAT", format="WAV") as f:
        f.comment = json.dumps(recipe, separators=(",", ":"))
        f.write(kick_wave())
    return path


class StubPipeline:
    """Stands in for KickPipeline in the server; ``render`` calls ``callback`` after each of its
    ``steps`` (``step_s`` apart) and counts the rows and steps it ran."""

    vocab = ["808", "deep"]

    def __init__(self, step_s: float = 0.0):
        import torch

        self.device = torch.device("cpu")
        self.step_s, self.rendered, self.steps_run = step_s, [], 0

    def parse_prompt(self, prompt):
        words = prompt.split()
        return SimpleNamespace(matched=words, unknown=[], suggestions={}, warning_text=lambda: "")

    def render(self, rows, cfg_scale, steps, *args, callback=None, **kwargs):
        import time

        import torch

        self.rendered.append(len(rows))
        for i in range(steps):
            time.sleep(self.step_s)
            self.steps_run += 1
            if callback is not None:
                callback(i, steps)
        return SimpleNamespace(raw=torch.full((len(rows), SR * 2), 0.1))


def serve_client(pipe):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from kickgen.serve.app import create_app

    return TestClient(create_app(pipe), raise_server_exceptions=False)


def one_line_error(capsys, *parts: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    return err


# --------------------------------------------------------------------------- 1: recipe limits


@pytest.mark.parametrize(
    "recipe, message",
    [
        (stub_recipe(rows=500), "rows holds 500 rows: a batch has at most 92"),
        (stub_recipe(steps=1000), "settings.steps is 1000: use a whole number from 1 to 200"),
        (stub_recipe(steps=201), "settings.steps is 201"),
    ],
)
def test_1_recipes_over_the_request_limits_are_refused_when_read(tmp_path, capsys, recipe, message):
    from kickgen.producer.engine import ProducerError
    from kickgen.producer.recall import read_recipe

    wav = wav_with_recipe(tmp_path / "k.wav", recipe)
    with pytest.raises(ProducerError, match="its kickgen recipe is damaged or edited") as err:
        read_recipe(wav)
    assert message in str(err.value)
    assert main(["regenerate", str(wav), "-q"]) == 2  # refused before any model is loaded
    one_line_error(capsys, message)
    pipe = StubPipeline()
    with serve_client(pipe) as c:
        res = c.post("/api/regenerate", json={"recipe": recipe})
    assert res.status_code == 422 and message in res.json()["detail"]
    assert pipe.rendered == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.wav"]


def test_1_the_largest_recipes_kickgen_writes_still_regenerate():
    from kickgen.producer.pack import FIRST_KEY, LAST_KEY
    from kickgen.producer.recall import MAX_ROWS, MAX_STEPS, check_recipe
    from kickgen.serve.context import MAX_FRAMES, MAX_N
    from kickgen.serve.context import MAX_STEPS as SERVE_STEPS

    assert MAX_ROWS == LAST_KEY - FIRST_KEY + 1 >= max(MAX_N, MAX_FRAMES, 16)
    assert MAX_STEPS == SERVE_STEPS
    assert len(check_recipe(stub_recipe(rows=MAX_ROWS, steps=MAX_STEPS)).rows) == MAX_ROWS
    pipe = StubPipeline()
    with serve_client(pipe) as c:
        res = c.post("/api/regenerate", json={"recipe": stub_recipe(rows=3, steps=MAX_STEPS)})
    assert res.status_code == 200 and res.json()["steps"] == MAX_STEPS and pipe.rendered == [3]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--steps", "201"], "--steps 201: use 1 to 200"),
        (["--batch-size", "93"], "--batch-size 93: use 1 to 92"),
    ],
)
def test_1_the_cli_makes_no_kick_whose_recipe_it_would_refuse(tmp_path, capsys, flags, message):
    assert main(["generate", "-n", "1", "-o", str(tmp_path / "k.wav"), "-q", *flags]) == 2
    one_line_error(capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_1_a_regenerate_whose_client_left_stops_at_the_next_step(serve_in_thread):
    pytest.importorskip("fastapi")
    import socket
    import time

    from kickgen.serve.app import create_app
    from kickgen.serve.server import server_config

    pipe = StubPipeline(step_s=0.02)  # 200 steps: 4 s
    body = json.dumps({"recipe": stub_recipe(rows=2, steps=200)}).encode()
    config = server_config(create_app(pipe))
    with serve_in_thread(config) as (host, port):
        conn = socket.create_connection((host, port))
        conn.sendall(b"POST /api/regenerate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        deadline = time.monotonic() + 10
        while pipe.steps_run < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.close()
        time.sleep(1.0)
        ran = pipe.steps_run
        time.sleep(0.5)
    assert 5 <= ran < 100 and pipe.steps_run == ran  # stopped, not run to its 200th step


# --------------------------------------------------------------------------- 4: server paths


def test_4_a_recipe_naming_a_server_path_is_refused_alike_whether_it_exists_or_not(tmp_path):
    from kickgen.producer.engine import file_sha256

    secret = tmp_path / "secret.wav"
    sf.write(str(secret), kick_wave(), SR)
    answers = []
    pipe = StubPipeline()
    with serve_client(pipe) as c:
        for name, sha in [(str(secret), file_sha256(secret)), (str(secret), "0" * 16),
                          ("/etc/passwd", "0" * 16), (str(tmp_path / "missing.wav"), "0" * 16)]:  # fmt: skip
            recipe = stub_recipe(init={name: sha})
            recipe["rows"][0]["init"] = name
            recipe["settings"]["strength"] = 0.5
            res = c.post("/api/regenerate", json={"recipe": recipe})
            assert res.status_code == 422
            answers.append(res.json()["detail"])
    assert len(set(answers)) == 1 and "only uploaded kicks (memory: names)" in answers[0]
    assert "secret" not in answers[0] and pipe.rendered == []


# --------------------------------------------------------------------------- 7: inflating checkpoints


def rewritten_archive(src: Path, dst: Path, member: str, deflate: bool = True) -> Path:
    """``src`` (a torch.save archive) copied to ``dst`` with its storage ``member`` deflated
    (``deflate``) or with an extra member of that name."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.infolist()[0].filename.split("/", 1)[0]
        for info in zin.infolist():
            data = zin.read(info.filename)
            if deflate and info.filename == f"{root}/{member}":
                zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(info, data)
        if not deflate:
            zout.writestr(f"{root}/{member}", b"\0" * 1024)
    return dst


def test_7_a_checkpoint_whose_members_inflate_is_refused_before_loading(
    tiny_checkpoint_dir, tmp_path, capsys, monkeypatch
):
    import zipfile

    import torch

    from kickgen import checkpoints as C

    ckpt = torch.load(tiny_checkpoint_dir / C.VAE_FILENAME, weights_only=True)
    ckpt["extra"] = torch.zeros(16 * 2**20)  # 64 MiB of zeros: deflated, about 64 KB
    torch.save(ckpt, tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "plain.pt") as z:
        extra = max((i for i in z.infolist()), key=lambda i: i.file_size).filename.split("/", 1)[1]
    bomb = rewritten_archive(tmp_path / "plain.pt", tmp_path / C.VAE_FILENAME, extra)
    (tmp_path / "plain.pt").unlink()
    assert bomb.stat().st_size < 8 * 2**20
    loaded, real_load = [], torch.load
    with monkeypatch.context() as m:
        m.setattr(torch, "load", lambda *a, **k: loaded.append(a) or real_load(*a, **k))
        with pytest.raises(
            C.CheckpointError, match=f"{extra}' is compressed, which torch.save never"
        ):
            C.load_vae(bomb)
        stray = rewritten_archive(
            tiny_checkpoint_dir / C.VOCODER_FILENAME, tmp_path / "v.pt", "data/../x", deflate=False
        )
        with pytest.raises(C.CheckpointError, match=r"/data/\.\./x', which torch.save never"):
            C.load_vocoder(stray)
    assert loaded == []  # refused before torch.load inflated anything
    flags = ["--diffusion-ckpt", str(tiny_checkpoint_dir / C.DIFFUSION_FILENAME), "--vae-ckpt", str(bomb),
             "--vocoder-ckpt", str(tiny_checkpoint_dir / C.VOCODER_FILENAME)]  # fmt: skip
    assert main(["generate", *flags, "--steps", "1", "-o", str(tmp_path / "k.wav"), "-q"]) == 2
    one_line_error(capsys, "is compressed")
    for path in (
        tiny_checkpoint_dir / C.VAE_FILENAME,
        *Path(C.__file__).parent.glob("weights/*.pt"),
    ):
        C.check_archive(path, "a checkpoint")  # what torch.save writes passes


# --------------------------------------------------------------------------- 8: silent levels


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ceiling_dbtp", "-1e300", "ceiling_dbtp=-1e+300: use -30 to 0 dBTP"),
        ("ceiling_dbtp", "-Infinity", "ceiling_dbtp=-inf: use -30 to 0 dBTP"),
        ("trim_db", "-Infinity", "trim_db=-inf: use -120 to -20 dB"),
        ("trim_db", "-1e300", "trim_db=-1e+300"),
    ],
)
def test_8_levels_that_silence_the_kick_are_refused(tmp_path, capsys, field, value, message):
    from kickgen.producer.hygiene import HygieneConfig, HygieneError

    with pytest.raises(HygieneError) as err:
        HygieneConfig(**{field: float(value.replace("Infinity", "inf"))}).check()
    assert message in str(err.value)
    pipe = StubPipeline()
    body = (
        f'{{"n": 1, "steps": 1, "hygiene": {{"level": "lufs", "trim": true, "{field}": {value}}}}}'
    )
    with serve_client(pipe) as c:
        res = c.post("/api/generate", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 422 and message in res.json()["detail"] and pipe.rendered == []
    recipe = stub_recipe(hygiene={field: float(value.replace("Infinity", "inf"))})
    if "e300" in value:  # JSON holds no infinity: a recipe file can only carry the huge number
        wav = wav_with_recipe(tmp_path / "k.wav", recipe)
        assert main(["regenerate", str(wav), "-q"]) == 2
        one_line_error(capsys, f"hygiene.{message}")
    if field == "ceiling_dbtp":
        flag = f"--ceiling={value.replace('Infinity', 'inf')}"
        assert (
            main(["generate", "--normalize", "lufs", flag, "-o", str(tmp_path / "g.wav"), "-q"])
            == 2
        )
        one_line_error(capsys, message)
        assert not (tmp_path / "g.wav").exists()


# --------------------------------------------------------------------------- 9: prompts in packs


def test_9_prompts_reach_pack_files_as_one_plain_line_and_names_as_plain_words():
    import csv
    import io
    import unicodedata
    import zipfile

    prompt = "808\n<region> sample=../../etc/passwd key=60\r\n/* deep\u202egnp.exe\u200b \x85x"
    pipe = StubPipeline()
    with serve_client(pipe) as c:
        made = c.post("/api/generate", json={"prompt": prompt, "n": 2, "steps": 1})
        assert made.status_code == 200, made.text
        res = c.post("/api/pack", json={"ids": made.json()["ids"], "name": "crate"})
    assert res.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(res.content))
    for name in z.namelist():
        assert not any(unicodedata.category(ch)[0] in "CZ" for ch in name), ascii(name)
        assert name.count("/") == 1 and ".." not in name  # crate/FILE, no path from the prompt
    sfz = z.read("crate/crate.sfz").decode()
    regions = [line for line in sfz.splitlines() if "<region>" in line]
    assert len(regions) == 2 and all(line.startswith("<region> sample=01-") or
                                     line.startswith("<region> sample=02-") for line in regions)  # fmt: skip
    assert "/*" not in sfz and "\u202e" not in sfz and "\r" not in sfz
    manifest = z.read("crate/manifest.csv").decode()
    assert manifest.count("\r\n") == 3  # the header and one line per kick
    rows = list(csv.DictReader(io.StringIO(manifest)))
    assert rows[0]["prompt"].startswith(
        "808 <region> sample=../../etc/passwd key=60 /* deep gnp.exe"
    )


# --------------------------------------------------------------------------- 10: status and message


def float_wav(samples: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_10_hostile_uploads_and_fields_get_422_naming_what_is_wrong(tmp_path):
    from kickgen.producer.engine import ProducerError, load_init_audio

    subnormal = float_wav(np.full(SR // 2, 1e-40, np.float32))
    huge = float_wav(np.tile(np.float32([[3.4e38, -3.4e38]]), (SR // 2, 1)))
    fine = float_wav(kick_wave())
    deep = "[" * 30_000 + "]" * 30_000
    pipe = StubPipeline()
    with serve_client(pipe) as c:

        def vary(payload: bytes, **fields: str):
            return c.post("/api/vary", data={"n": "1", "steps": "1", **fields},
                          files={"file": ("k.wav", payload)})  # fmt: skip

        for res, message in [
            (vary(fine, hygiene=deep), "hygiene: send a JSON object"),
            (vary(subnormal), "init audio is silent (peak at or below -120 dBFS)"),
            (vary(huge), "samples reach 3.4e+38, out of the range audio holds"),
        ]:
            assert res.status_code == 422 and message in res.json()["detail"], res.text
        assert pipe.rendered == []
        surrogate = b'"808 \\ud800"'
        recipe = json.dumps(stub_recipe()).replace('"deep"', '"808 \\ud800"').encode()
        for path, body, message in [
            ("/api/morph", b'{"prompts": [%s, "deep"], "frames": 2, "steps": 1}' % surrogate, "prompts.0"),
            ("/api/regenerate", b'{"recipe": %s}' % recipe, "use a string of Unicode text"),
            ("/api/pack", b'{"ids": [%s]}' % surrogate, "ids.0"),
        ]:  # fmt: skip
            res = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert res.status_code == 422 and message in res.json()["detail"], res.text
        assert c.get("/healthz").status_code == 200 and pipe.rendered == []
    (tmp_path / "quiet.wav").write_bytes(subnormal)
    with pytest.raises(ProducerError, match="is silent"):  # the CLI's --init-audio
        load_init_audio(tmp_path / "quiet.wav")


def test_10_eval_kicks_skips_out_of_range_files_instead_of_scoring_nan(tmp_path):
    from kickgen.evaluation.quality import load_kicks

    (tmp_path / "huge.wav").write_bytes(
        float_wav(np.tile(np.float32([[3.4e38, -3.4e38]]), (SR, 1)))
    )
    sf.write(str(tmp_path / "good.wav"), kick_wave(), SR)
    names, waves, skipped = load_kicks(tmp_path)
    assert names == ["good.wav"] and torch_isfinite(waves)
    assert len(skipped) == 1 and "out of the range audio holds" in skipped[0][1]


def torch_isfinite(waves) -> bool:
    import torch

    return bool(torch.isfinite(waves).all())


def test_10_a_client_leaving_mid_upload_logs_no_traceback(serve_in_thread):
    pytest.importorskip("fastapi")
    import logging
    import socket
    import time

    from kickgen.serve.app import create_app
    from kickgen.serve.server import server_config

    pipe = StubPipeline()
    config = server_config(create_app(pipe))  # configures uvicorn's loggers: listen after it
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        with serve_in_thread(config) as (host, port):
            for _ in range(3):
                conn = socket.create_connection((host, port))
                conn.sendall(b"POST /api/vary HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500000\r\n"
                             b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n" + b"a" * 5000)  # fmt: skip
                time.sleep(0.2)
                conn.close()
            time.sleep(0.5)
            conn = socket.create_connection((host, port))
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
            conn.close()
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    assert pipe.rendered == []


# --------------------------------------------------------------------------- 12: streaming WAVs


def streaming_wav(samples: np.ndarray) -> bytes:
    """A PCM WAV as a streaming writer leaves it (ffmpeg to a pipe): RIFF and data sizes 0xFFFFFFFF."""
    import io
    import struct

    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    data[4:8] = b"\xff" * 4
    pos = 12
    while data[pos : pos + 4] != b"data":
        pos += 8 + struct.unpack("<I", data[pos + 4 : pos + 8])[0]
    data[pos + 4 : pos + 8] = b"\xff" * 4
    return bytes(data)


def test_12_streaming_wavs_read_alike_on_the_command_line_and_the_server(tmp_path):
    from kickgen.audio import read_audio
    from kickgen.producer.engine import load_init_audio
    from kickgen.producer.variations import decode_upload

    payload = streaming_wav(kick_wave())
    (tmp_path / "stream.wav").write_bytes(payload)
    on_disk, rate = read_audio(tmp_path / "stream.wav")
    uploaded, upload_rate = decode_upload(payload)
    assert rate == upload_rate == SR and np.array_equal(on_disk[:, 0], uploaded)
    assert load_init_audio(tmp_path / "stream.wav").shape == (2 * SR,)
    pipe = StubPipeline()
    with serve_client(pipe) as c:
        res = c.post("/api/vary", data={"n": "1", "steps": "1"}, files={"file": ("s.wav", payload)})
        assert res.status_code == 200, res.text
        cut = c.post("/api/vary", data={"n": "1", "steps": "1"},
                     files={"file": ("c.wav", sf_bytes(kick_wave())[:-1000])})  # fmt: skip
        assert cut.status_code == 422 and "truncated WAV (1000 bytes" in cut.json()["detail"]


def sf_bytes(samples: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, samples, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --------------------------------------------------------------------------- 11: many kicks


def test_11_generate_writes_batch_by_batch_and_the_kicks_stay_the_same(
    tiny_checkpoint_dir, tmp_path, capsys, monkeypatch
):
    from kickgen.pipeline import KickPipeline

    out_dir = tmp_path / "out"
    calls: list[tuple[int, int]] = []  # (kicks asked for, files already staged on disk)
    real_call = KickPipeline.__call__

    def spy(self, prompt, n=1, *args, **kwargs):
        staged = len(list(out_dir.glob(".*"))) if out_dir.exists() else 0
        calls.append((n, staged))
        return real_call(self, prompt, n, *args, **kwargs)

    monkeypatch.setattr(KickPipeline, "__call__", spy)
    flags = ["--checkpoints", str(tiny_checkpoint_dir), "--steps", "1", "--seed", "3", "-q"]
    assert (
        main(
            [
                "generate",
                "-p",
                "808",
                "-n",
                "5",
                "--batch-size",
                "2",
                "-o",
                str(out_dir / "k.wav"),
                *flags,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert calls == [(2, 0), (2, 2), (1, 4)]  # each batch is on disk before the next is made
    monkeypatch.setattr(KickPipeline, "__call__", real_call)
    pipe = KickPipeline.from_pretrained(tiny_checkpoint_dir, device="cpu")
    whole = pipe("808", n=5, seed=3, steps=1, batch_size=2, warn_unknown=False).waveforms
    for i in range(5):
        wave, _ = sf.read(str(out_dir / f"k_{i}.wav"), dtype="float32")
        assert np.array_equal(wave, whole[i].numpy())
    assert (
        main(
            [
                "regenerate",
                str(out_dir / "k_4.wav"),
                "--checkpoints",
                str(tiny_checkpoint_dir),
                "--check",
                "-q",
            ]
        )
        == 0
    )


def test_11_generate_refuses_up_front_what_the_disk_cannot_hold(
    tiny_checkpoint_dir, tmp_path, capsys, monkeypatch
):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10 * 2**20))
    flags = ["--checkpoints", str(tiny_checkpoint_dir), "--steps", "1", "-q"]
    out = tmp_path / "new" / "folder"
    assert main(["generate", "-n", "100", "-o", str(out), *flags]) == 2
    one_line_error(capsys, f"{out}: 100 kicks need about 34 MiB and only 10 MiB are free there")
    assert not (tmp_path / "new").exists()
    assert main(["generate", "-n", "2", "-o", str(out), *flags]) == 0  # 0.7 MB fits
    assert len(list(out.glob("*.wav"))) == 2


def test_11_generate_with_producer_options_writes_chunk_by_chunk_too(
    tiny_checkpoint_dir, tmp_path, capsys, monkeypatch
):
    import kickgen.producer.kicks as K
    from kickgen.pipeline import KickPipeline
    from kickgen.producer.hygiene import HygieneConfig

    out_dir = tmp_path / "out"
    calls: list[tuple[int, int]] = []  # (kicks asked for, files already staged on disk)
    real = K.generate_kicks

    def spy(pipe, prompt="", n=1, *args, **kwargs):
        calls.append((n, len(list(out_dir.glob(".*"))) if out_dir.exists() else 0))
        return real(pipe, prompt, n, *args, **kwargs)

    monkeypatch.setattr(K, "generate_kicks", spy)
    flags = ["--checkpoints", str(tiny_checkpoint_dir), "--steps", "1", "--seed", "3"]
    args = ["-p", "808", "-n", "5", "--batch-size", "2", "--best-of", "2", "--hygiene"]
    assert main(["generate", *args, "-o", str(out_dir / "k.wav"), *flags]) == 0
    assert calls == [(2, 0), (2, 2), (1, 4)]
    assert capsys.readouterr().err.count("(best of 2: ") == 5
    pipe = KickPipeline.from_pretrained(tiny_checkpoint_dir, device="cpu")
    whole = real(
        pipe, "808", n=5, seed=3, steps=1, hygiene=HygieneConfig(), best_of=2, batch_size=2
    )
    for i, kick in enumerate(whole):
        wave, _ = sf.read(str(out_dir / f"k_{i}.wav"), dtype="float32")
        assert np.array_equal(wave, kick.wave)

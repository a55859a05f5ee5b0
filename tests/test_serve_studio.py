"""The studio routes of ``kickgen serve`` (vary, morph, regenerate, pack) against the real
pipeline (seeded random weights, tiny U-Net and vocoder), hostile uploads, and 50 concurrent
mixed requests on a real loopback server."""

from __future__ import annotations

import concurrent.futures
import csv
import http.client
import io
import json
import re
import tempfile
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="kickgen serve needs the serve extra (fastapi)")
pytest.importorskip(
    "python_multipart", reason="kickgen serve needs the serve extra (python-multipart)"
)
from fastapi.testclient import TestClient  # noqa: E402

from kickgen.audio import SAMPLE_RATE  # noqa: E402
from kickgen.serve.app import create_app  # noqa: E402
from kickgen.serve.context import MAX_UPLOAD_BYTES, ServeConfig  # noqa: E402

STEPS = 2
pytestmark = pytest.mark.filterwarnings("ignore::kickgen.prompts.UnknownKeywordWarning")


def synth_kick(f_body: float = 50.0, n: int = 88_200) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * (f_body * t + 120.0 * (1 - np.exp(-t * 30.0)) / 30.0)
    return (0.5 * np.sin(phase) * np.exp(-t * 6.0)).astype(np.float32)


def audio_file(
    x: np.ndarray, sr: int = SAMPLE_RATE, fmt: str = "WAV", subtype: str = "PCM_16"
) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def sfz_samples(text: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r"(\w+)=(\S+)", line))
        for line in text.splitlines()
        if line.startswith("<region>")
    ]


@pytest.fixture(scope="module")
def spipe(tiny_checkpoint_dir: Path):
    from kickgen.pipeline import KickPipeline

    return KickPipeline.from_pretrained(tiny_checkpoint_dir, device="cpu")


@pytest.fixture(scope="module")
def client(spipe):
    with TestClient(create_app(spipe), raise_server_exceptions=False) as c:
        yield c


def vary(client, payload: bytes | None, name: str = "kick.wav", **fields):
    data = {k: str(v) for k, v in {"steps": STEPS, "n": 2, "seed": 3, **fields}.items()}
    files = {"file": (name, payload, "audio/wav")} if payload is not None else None
    return client.post("/api/vary", data=data, files=files)


def test_studio_routes_are_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "multipart/form-data" in paths["/api/vary"]["post"]["requestBody"]["content"]
    form = paths["/api/vary"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"file", "strength", "prompt", "n", "seed", "cfg_scale", "steps", "hygiene"} <= set(
        form["properties"]
    )
    assert "application/zip" in paths["/api/pack"]["post"]["responses"]["200"]["content"]
    for path in ("/api/morph", "/api/regenerate"):
        assert "application/json" in paths[path]["post"]["requestBody"]["content"]
    limits = client.get("/api/limits").json()
    assert limits["upload"] == {"max_bytes": MAX_UPLOAD_BYTES, "max_seconds": 30.0}


def test_an_upload_is_varied_in_memory_and_can_be_regenerated(client, monkeypatch):
    def no_disk(*args, **kwargs):
        raise AssertionError("an upload touched the disk")

    for name in (
        "NamedTemporaryFile",
        "TemporaryDirectory",
        "mkstemp",
        "mkdtemp",
        "SpooledTemporaryFile",
    ):
        monkeypatch.setattr(tempfile, name, no_disk)
    real = sf.SoundFile

    def soundfile(file, mode="r", *args, **kwargs):
        assert "w" not in mode or isinstance(file, io.BytesIO), f"wrote {file} to disk"
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", soundfile)
    res = vary(client, audio_file(synth_kick(), 48_000), prompt="deep", strength=0.4)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["seeds"] == [3, 4] and body["strength"] == 0.4 and body["matched"] == ["deep"]
    assert body["source"]["name"] == "kick.wav" and body["source"]["root_note"]
    kick = body["kicks"][0]
    row = kick["recipe"]["rows"][kick["recipe"]["index"]]
    assert row["init"].startswith("memory:") and kick["recipe"]["settings"]["strength"] == 0.4
    assert set(kick["measure"]) >= {
        "lufs",
        "true_peak_dbtp",
        "decay_40_s",
        "body_pitch_hz",
        "root_note",
    }
    wav = client.get(kick["url"])
    wave, _ = sf.read(io.BytesIO(wav.content), dtype="float32")
    again = client.post("/api/regenerate", json={"recipe": kick["recipe"]})
    assert again.status_code == 200, again.text
    regen, _ = sf.read(io.BytesIO(client.get(again.json()["urls"][0]).content), dtype="float32")
    np.testing.assert_array_equal(regen, wave)  # the same batch, the same bits


def test_more_like_this_varies_a_kick_of_the_server(client):
    first = client.post(
        "/api/generate", json={"prompt": "808", "n": 1, "seed": 5, "steps": STEPS}
    ).json()
    res = vary(client, None, kick=first["ids"][0], strength=0.3, n=3)
    assert res.status_code == 200, res.text
    assert len(res.json()["kicks"]) == 3 and res.json()["source"] is None
    both = client.post(
        "/api/vary",
        data={"kick": first["ids"][0]},
        files={"file": ("k.wav", audio_file(synth_kick()))},
    )
    assert both.status_code == 422 and "not both or neither" in both.json()["detail"]
    gone = vary(client, None, kick="0123456789abcdef")
    assert gone.status_code == 404 and "regenerate it from its recipe" in gone.json()["detail"]


def five_minutes() -> bytes:
    return audio_file(np.zeros(8_000 * 300, np.float32) + 0.01, 8_000)  # 4.8 MB: under the size cap


@pytest.mark.parametrize(
    ("payload", "status", "problem"),
    [
        (b"", 422, "the uploaded file kick.wav is empty"),
        (b"this is a text file, not a kick\n" * 50, 422, "cannot read audio"),
        (audio_file(synth_kick())[:30_000], 422, "truncated WAV"),
        (bytes(60 * 2**20), 413, "upload over 20 MB"),
        (None, 422, "300.0 s long, more than the 30 s"),
        (audio_file(np.zeros(44_100, np.float32)), 422, "silent"),
        (audio_file(np.full((4_410, 3), 0.1, np.float32)), 422, "3 channels"),
    ],
    ids=["empty", "text", "truncated", "60MB-zeros", "5-minutes", "silence", "3-channels"],
)
def test_bad_uploads_get_a_4xx_naming_the_problem(client, payload, status, problem):
    res = vary(client, five_minutes() if payload is None else payload)
    assert res.status_code == status, res.text
    assert problem in res.json()["detail"] and "\n" not in res.json()["detail"]
    assert client.get("/healthz").json()["status"] == "ok"  # the server keeps answering
    assert client.get("/healthz").json()["running"] == 0


def test_bad_vary_forms(client):
    good = audio_file(synth_kick())
    assert (
        vary(client, good, strength=1.5)
        .json()["detail"]
        .startswith("strength: Input should be less")
    )
    assert (
        vary(client, good, colour="red").json()["detail"].startswith("colour: unknown form field")
    )
    assert vary(client, good, hygiene="{not json").json()["detail"] == "hygiene: send a JSON object"
    assert (
        vary(client, good, hygiene=json.dumps({"key": "H"}))
        .json()["detail"]
        .startswith("hygiene.key 'H'")
    )
    plain = client.post(
        "/api/vary",
        content=b"file=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert plain.status_code == 422 and "multipart/form-data" in plain.json()["detail"]
    big_json = client.post(
        "/api/pack",
        content=b"[" + b"1," * 40_000 + b"1]",
        headers={"content-type": "application/json"},
    )
    assert big_json.status_code == 413  # JSON routes keep the 64 KiB cap


def test_morph_between_two_kicks_seeds_or_prompts(client):
    a = client.post(
        "/api/generate", json={"prompt": "808", "n": 1, "seed": 1, "steps": STEPS}
    ).json()
    b = client.post(
        "/api/generate", json={"prompt": "deep", "n": 1, "seed": 9, "steps": STEPS}
    ).json()
    res = client.post(
        "/api/morph", json={"a": a["ids"][0], "b": b["ids"][0], "frames": 5, "steps": STEPS}
    )
    assert res.status_code == 200, res.text
    kicks = res.json()["kicks"]
    rows = [k["recipe"]["rows"][k["recipe"]["index"]] for k in kicks]
    assert len(kicks) == 5 and [r.get("t", 0.0) for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert rows[0]["seed"] == 1 and rows[0]["seed_b"] == 9 and rows[0]["prompt_b"] == "deep"
    assert res.json()["prompt"] == "808 → deep"
    seeds = client.post(
        "/api/morph", json={"seeds": [1, 2], "prompt": "808", "frames": 2, "steps": STEPS}
    )
    assert seeds.status_code == 200 and len(seeds.json()["kicks"]) == 2
    prompts = client.post(
        "/api/morph", json={"prompts": ["808", "909"], "seed": 4, "frames": 3, "steps": STEPS}
    )
    assert prompts.status_code == 200 and prompts.json()["kicks"][0]["seed"] == 4
    both = client.post("/api/morph", json={"a": a["ids"][0], "seeds": [1, 2]})
    assert both.status_code == 422 and "give two kick ids" in both.json()["detail"]
    many = client.post("/api/morph", json={"seeds": [1, 2], "frames": 17})
    assert many.status_code == 422


@pytest.mark.parametrize(
    ("fmt", "rate", "subtype"),
    [("pcm24", 48_000, "PCM_24"), ("float32", 44_100, "FLOAT"), ("pcm16", 44_100, "PCM_16")],
)
def test_pack_answers_a_zip_in_the_chosen_format_and_rate(client, fmt, rate, subtype):
    gen = client.post(
        "/api/generate", json={"prompt": "punchy 808", "n": 2, "seed": 20, "steps": STEPS}
    ).json()
    var = vary(client, audio_file(synth_kick()), n=1).json()
    ids = gen["ids"] + var["ids"]
    res = client.post(
        "/api/pack", json={"ids": ids, "format": fmt, "sample_rate": rate, "hygiene": {"key": "F"}}
    )
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/zip"
    assert 'filename="kickgen-crate.zip"' in res.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(res.content))
    regions = sfz_samples(z.read("kickgen-crate/kickgen-crate.sfz").decode())
    assert [r["key"] for r in regions] == ["36", "37", "38"]
    manifest = list(csv.DictReader(io.StringIO(z.read("kickgen-crate/manifest.csv").decode())))
    assert [r["file"] for r in manifest] == [r["sample"] for r in regions]
    for region, row in zip(regions, manifest, strict=True):
        info = sf.info(io.BytesIO(z.read(f"kickgen-crate/{region['sample']}")))
        assert (info.samplerate, info.subtype, info.channels) == (rate, subtype, 1)
        recipe = json.loads(z.read(f"kickgen-crate/{Path(region['sample']).with_suffix('.json')}"))
        assert (
            recipe["format"] == fmt
            and recipe["sample_rate"] == rate
            and recipe["hygiene"]["key"] == "F"
        )
        # the root note measured on the tuned kick is what the .sfz tells a sampler (random
        # weights make noise, whose "body" no tuning pins down: tests/test_tuning.py checks that)
        assert region.get("pitch_keycenter", "") == row["pitch_keycenter"]
    missing = client.post("/api/pack", json={"ids": ["0123456789abcdef"]})
    assert missing.status_code == 404 and "0123456789abcdef" in missing.json()["detail"]
    bad = client.post("/api/pack", json={"ids": ids, "format": "mp3"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("format:")


def test_generate_applies_clean_up_and_key_and_measures(client):
    res = client.post("/api/generate", json={"prompt": "808", "n": 1, "seed": 2, "steps": STEPS,
                                            "hygiene": {"level": "lufs", "lufs": -20, "ceiling_dbtp": -1, "trim": True}})  # fmt: skip
    assert res.status_code == 200, res.text
    kick = res.json()["kicks"][0]
    assert kick["recipe"]["hygiene"]["level"] == "lufs" and kick["recipe"]["hygiene"]["trim"]
    assert kick["measure"]["true_peak_dbtp"] <= -1.0 + 0.05
    assert (
        kick["measure"]["lufs"] <= -20.0 + 0.5
    )  # the trim after the level moves the gating a little
    wave, _ = sf.read(io.BytesIO(client.get(kick["url"]).content), dtype="float32")
    assert wave.size < 88_200 and kick["measure"]["duration_s"] == pytest.approx(
        wave.size / 44_100, abs=1e-4
    )
    bad = client.post("/api/generate", json={"n": 1, "steps": 1, "hygiene": {"lufs": 5}})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("hygiene.lufs=5")


# --------------------------------------------------------------------------- 50 concurrent requests


def multipart(fields: dict[str, str], payload: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="k.wav"\r\n'
                 "Content-Type: audio/wav\r\n\r\n".encode() + payload + b"\r\n")  # fmt: skip
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def call(address, method: str, path: str, body: bytes = b"", ctype: str = "application/json"):
    conn = http.client.HTTPConnection(*address, timeout=120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if body else {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_50_concurrent_mixed_requests_are_answered_or_refused_cleanly(spipe, serve_in_thread):
    from kickgen.serve.server import server_config

    app = create_app(spipe, ServeConfig(concurrency=1, queue_size=8))
    upload = audio_file(synth_kick())
    with serve_in_thread(server_config(app)) as address:
        status, _, body = call(
            address, "POST", "/api/generate", json.dumps({"n": 2, "seed": 1, "steps": 1}).encode()
        )
        assert status == 200
        crate = json.loads(body)["ids"]  # the client's crate before the rush
        before = list(crate)

        def request(i: int):
            kind = ("generate", "vary", "pack")[i % 3]
            if kind == "generate":
                out = call(
                    address,
                    "POST",
                    "/api/generate",
                    json.dumps({"n": 1, "seed": i, "steps": 1}).encode(),
                )
            elif kind == "vary":
                out = call(
                    address,
                    "POST",
                    "/api/vary",
                    *multipart({"n": "1", "seed": str(i), "steps": "1"}, upload),
                )
            else:
                out = call(
                    address,
                    "POST",
                    "/api/pack",
                    json.dumps({"ids": before, "format": "pcm16"}).encode(),
                )
            return kind, out

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(request, range(50)))

        served = {"generate": 0, "vary": 0, "pack": 0}
        for kind, (status, headers, body) in results:
            if status == 503:  # a clean refusal: JSON naming the reason, and when to retry
                assert (
                    json.loads(body)["detail"].startswith("server busy")
                    and int(headers["retry-after"]) >= 1
                )
                continue
            assert status == 200, (kind, status, body[:200])
            served[kind] += 1
            if kind == "pack":
                z = zipfile.ZipFile(io.BytesIO(body))
                assert len([n for n in z.namelist() if n.endswith(".wav")]) == len(before)
            else:
                crate += json.loads(body)["ids"]  # every kick of a 200 goes into the crate
        assert sum(served.values()) >= 9  # at least a full queue's worth was admitted
        status, _, body = call(
            address, "POST", "/api/vary", *multipart({"n": "1", "steps": "1"}, upload)
        )
        assert status == 200  # the rush is over: an upload is varied again
        crate += json.loads(body)["ids"]

        # Nothing lost: every kick the client was given is still there, and packs as one zip.
        for kick_id in crate:
            assert call(address, "GET", f"/api/kicks/{kick_id}.wav")[0] == 200
        status, _, body = call(address, "POST", "/api/pack", json.dumps({"ids": crate}).encode())
        assert status == 200, body[:200]
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        assert len([n for n in names if n.endswith(".wav")]) == len(crate)
        assert call(address, "GET", "/healthz")[0] == 200


def test_a_kick_taken_out_of_the_page_regenerates_on_the_command_line(client, spipe, tmp_path):
    from kickgen.producer.recall import regenerate

    body = client.post(
        "/api/generate",
        json={"prompt": "909", "n": 2, "seed": 30, "steps": STEPS, "hygiene": {"key": "A"}},
    ).json()
    path = tmp_path / "dragged.wav"
    path.write_bytes(client.get(body["urls"][1]).content)  # what the DownloadURL drag saves
    written, same = regenerate(spipe, path, tmp_path / "again.wav")
    assert same and written.is_file()


def test_the_queue_bound_applies_to_every_studio_route(spipe):
    import threading
    import time

    class Gated:
        """The real pipeline, whose rendering waits for ``gate`` once ``armed``."""

        def __init__(self, pipe):
            self.pipe, self.gate, self.armed = pipe, threading.Event(), False

        def __getattr__(self, name):
            return getattr(self.pipe, name)

        def render(self, rows, *args, **kwargs):
            if self.armed:
                assert self.gate.wait(timeout=60), "test never opened the gate"
            return self.pipe.render(rows, *args, **kwargs)

    gated = Gated(spipe)
    with TestClient(create_app(gated, ServeConfig(concurrency=1, queue_size=0))) as c:
        kick = c.post("/api/generate", json={"n": 1, "seed": 1, "steps": 1}).json()
        gated.armed = True
        blocked = threading.Thread(
            target=lambda: c.post("/api/generate", json={"n": 1, "seed": 2, "steps": 1})
        )
        blocked.start()
        deadline = time.monotonic() + 30
        while c.get("/healthz").json()["running"] != 1:
            assert time.monotonic() < deadline, "the generation never started"
            time.sleep(0.02)
        refused = [
            vary(c, audio_file(synth_kick()), n=1, steps=1),
            c.post("/api/vary", data={"kick": kick["ids"][0], "steps": "1", "n": "1"}),
            c.post("/api/morph", json={"seeds": [1, 2], "frames": 2, "steps": 1}),
            c.post("/api/regenerate", json={"recipe": kick["kicks"][0]["recipe"]}),
            c.post("/api/pack", json={"ids": kick["ids"]}),
        ]
        assert [r.status_code for r in refused] == [503] * 5
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        gated.gate.set()
        blocked.join(timeout=60)
        assert c.post("/api/pack", json={"ids": kick["ids"]}).status_code == 200

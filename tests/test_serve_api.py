"""The HTTP API of ``kickgen serve`` against the real pipeline (seeded random weights, tiny U-Net).

Only the full-queue test wraps the pipeline in a gate that holds generation until the test lets
it go, so the queue can be filled deterministically.
"""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="kickgen serve needs the serve extra (fastapi)")
from fastapi.testclient import TestClient  # noqa: E402

from kickgen.serve.app import create_app  # noqa: E402
from kickgen.serve.cli import LOOPBACK_NAMES, is_loopback  # noqa: E402
from kickgen.serve.context import MAX_N, MAX_STEPS, ServeConfig  # noqa: E402
from kickgen.serve.store import KickStore, encode_wav, kick_filename  # noqa: E402

STEPS = 3  # sampler steps: enough to exercise the sampler, fast on the tiny U-Net


def read_wav(data: bytes) -> tuple[np.ndarray, sf._SoundFileInfo]:
    info = sf.info(io.BytesIO(data))
    wave, _ = sf.read(io.BytesIO(data), dtype="float32")
    return wave, info


@pytest.fixture(scope="module")
def client(pipeline):
    with TestClient(create_app(pipeline)) as c:
        yield c


def test_vocab_health_page_and_schema(client, pipeline):
    # the keywords, and the producer words whose keywords this model knows (the page's chips)
    assert client.get("/api/vocab").json() == {
        "vocab": list(pipeline.vocab),
        "aliases": {"boomy": ["deep", "long"], "tight": ["short"], "thumpy": ["short", "punchy"]},
    }
    parsed = client.get("/api/parse", params={"prompt": "boomy 808s wobble"}).json()
    assert parsed["matched"] == ["deep", "long", "808"] and parsed["ignored"] == ["wobble"]
    assert parsed["read_as"] == {"boomy": ["deep", "long"], "808s": ["808"]}
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["vocab_size"] == len(pipeline.vocab)
    assert health["running"] == 0 and health["queued"] == 0
    limits = client.get("/api/limits").json()
    assert limits["n"]["max"] == MAX_N and limits["steps"]["max"] == MAX_STEPS
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/generate",
        "/api/generate.wav",
        "/api/kicks/{kick_id}.wav",
        "/api/vocab",
        "/healthz",
    ):
        assert path in paths
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    parsed = client.get("/api/parse", params={"prompt": "Punchy TR-808 wobble"}).json()
    assert parsed["matched"] == ["punchy", "808"] and parsed["ignored"] == ["wobble"]


@pytest.mark.filterwarnings("ignore::kickgen.prompts.UnknownKeywordWarning")
def test_generate_returns_the_pipelines_kicks(client, pipeline):
    res = client.post(
        "/api/generate",
        json={"prompt": "punchy 808 wobble", "n": 2, "seed": 7, "cfg_scale": 2.5, "steps": STEPS},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["seeds"] == [7, 8]
    assert body["matched"] == ["punchy", "808"] and body["ignored"] == ["wobble"]
    assert len(set(body["ids"])) == 2 and body["urls"] == [
        f"/api/kicks/{i}.wav" for i in body["ids"]
    ]
    assert body["steps"] == STEPS and body["cfg_scale"] == 2.5 and body["seconds"] > 0

    direct = pipeline(
        "punchy 808 wobble", n=2, seed=7, cfg_scale=2.5, steps=STEPS, warn_unknown=False
    )
    for i, url in enumerate(body["urls"]):
        wav = client.get(url)
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        assert (
            wav.headers["content-disposition"]
            == f'inline; filename="kick_punchy_808_s{7 + i:010d}.wav"'
        )
        wave, info = read_wav(wav.content)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (
            44100,
            1,
            88200,
            "FLOAT",
        )
        assert abs(np.abs(wave).max() - 0.95) < 1e-4
        np.testing.assert_array_equal(wave, direct.waveforms[i].numpy())


def test_generate_wav_answers_one_kick(client, pipeline):
    # Kick i of seed s uses seed s + i: seed 8 alone is the second kick of seed 7.
    res = client.post("/api/generate.wav", json={"prompt": "deep", "seed": 8, "steps": STEPS})
    assert res.status_code == 200 and res.headers["content-type"] == "audio/wav"
    assert res.headers["x-kickgen-seed"] == "8" and res.headers["x-kickgen-matched"] == "deep"
    assert 'filename="kick_deep_s0000000008.wav"' in res.headers["content-disposition"]
    wave, info = read_wav(res.content)
    assert (info.samplerate, info.frames) == (44100, 88200)
    # batched: equal up to float rounding, which the vocoder's mel refinement carries to ~3e-4 on
    # these random weights (4e-6 on the shipped ones)
    pair = pipeline("deep", n=2, seed=7, steps=STEPS)
    np.testing.assert_allclose(wave, pair.waveforms[1].numpy(), atol=3e-3)


def test_random_seed_is_reported(client):
    body = client.post("/api/generate", json={"n": 1, "steps": 1}).json()
    assert body["matched"] == [] and isinstance(body["seeds"][0], int) and body["seeds"][0] >= 0
    assert client.get(body["urls"][0]).headers["x-kickgen-seed"] == str(body["seeds"][0])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"n": 0}, "n: Input should be greater than or equal to 1"),
        ({"n": MAX_N + 1}, f"n: Input should be less than or equal to {MAX_N}"),
        ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
        ({"steps": MAX_STEPS + 1}, f"steps: Input should be less than or equal to {MAX_STEPS}"),
        ({"cfg_scale": -0.5}, "cfg_scale: Input should be greater than or equal to 0"),
        ({"cfg_scale": 1e9}, "cfg_scale: Input should be less than or equal to 20"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"prompt": "kick " * 41}, "prompt: String should have at most 200 characters"),
        ({"prompt": 808}, "prompt: Input should be a valid string"),
        ({"n": "four"}, "n: Input should be a valid integer"),
        ({"steps": 2.5}, "steps: Input should be a valid integer"),
        ({"temperature": 1}, "temperature: Extra inputs are not permitted"),
        ([1, 2], "body: Input should be a valid dictionary"),
    ],
)
def test_bad_requests_get_422_with_a_clear_message(client, payload, message):
    res = client.post("/api/generate", json=payload)
    assert res.status_code == 422
    assert res.json()["detail"].startswith(message), res.json()["detail"]


def test_malformed_json_and_bad_ids(client):
    res = client.post(
        "/api/generate", content=b'{"n": 2,', headers={"content-type": "application/json"}
    )
    assert res.status_code == 422 and res.json()["detail"].startswith(
        "body: invalid JSON at character"
    )
    nan = client.post(
        "/api/generate.wav",
        content=b'{"cfg_scale": NaN}',
        headers={"content-type": "application/json"},
    )
    assert (
        nan.status_code == 422
        and nan.json()["detail"] == "cfg_scale: Input should be a finite number"
    )
    bad_id = client.get("/api/kicks/..%2Fetc.wav")
    assert bad_id.status_code in (404, 422)
    assert client.get("/api/kicks/NOT-AN-ID.wav").status_code == 422
    plain = client.post(
        "/api/generate", content=b'{"n": 1}', headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 422
    assert plain.json()["detail"] == "body: send a JSON object with Content-Type: application/json"
    missing = client.get("/api/kicks/0123456789abcdef.wav")
    assert missing.status_code == 404 and "generate it again" in missing.json()["detail"]


def test_store_evicts_the_oldest_kicks(pipeline):
    with TestClient(create_app(pipeline, ServeConfig(store_items=2))) as c:
        urls = [
            c.post("/api/generate", json={"n": 1, "seed": s, "steps": 1}).json()["urls"][0]
            for s in range(3)
        ]
        assert [c.get(u).status_code for u in urls] == [404, 200, 200]
        assert c.get("/healthz").json()["stored_kicks"] == 2


def test_kick_store_bounds_bytes():
    wav = encode_wav(np.zeros(88200, np.float32))
    store = KickStore(max_items=100, max_bytes=3 * len(wav) + 10)
    kicks = [store.add(wav, seed=s, keywords=("deep",)) for s in range(5)]
    assert len(store) == 3 and store.nbytes == 3 * len(wav)
    assert store.get(kicks[0].id) is None and store.get(kicks[4].id).seed == 4
    assert kicks[4].filename == "kick_deep_s0000000004.wav"
    assert kick_filename(['a"b', "808"], 1) == "kick_ab_808_s0000000001.wav"
    assert kick_filename([], 3) == "kick_uncond_s0000000003.wav"
    with pytest.raises(ValueError, match="does not fit"):
        KickStore(max_bytes=10).add(wav, seed=0)


class GatedPipeline:
    """The real pipeline, whose rendering waits until ``gate`` is set (a slow generator)."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.gate = threading.Event()

    def __getattr__(self, name):  # vocab, device, parse_prompt, ...: the real pipeline's
        return getattr(self.pipe, name)

    def render(self, rows, *args, **kwargs):
        assert self.gate.wait(timeout=60), "test never opened the gate"
        return self.pipe.render(rows, *args, **kwargs)


def test_full_queue_answers_503_with_retry_after(pipeline):
    gated = GatedPipeline(pipeline)
    app = create_app(gated, ServeConfig(concurrency=1, queue_size=1))
    with TestClient(app) as c:
        results: list[int] = []

        def request(seed: int) -> None:
            results.append(
                c.post("/api/generate", json={"n": 1, "seed": seed, "steps": 1}).status_code
            )

        threads = [threading.Thread(target=request, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while True:  # the event loop keeps answering while generation is blocked
            health = c.get("/healthz").json()
            if (health["running"], health["queued"]) == (1, 1):
                break
            assert time.monotonic() < deadline, f"queue never filled: {health}"
            time.sleep(0.02)

        full = c.post("/api/generate", json={"n": 1, "seed": 3, "steps": 1})
        assert full.status_code == 503
        assert int(full.headers["retry-after"]) >= 1
        assert full.json()["detail"].startswith("server busy: 2 requests in flight")
        assert c.post("/api/generate.wav", json={"steps": 1}).status_code == 503

        gated.gate.set()
        for t in threads:
            t.join(timeout=60)
        assert results == [200, 200]
        assert c.get("/healthz").json()["queued"] == 0
        assert c.post("/api/generate", json={"n": 1, "seed": 3, "steps": 1}).status_code == 200


def test_pipeline_errors_become_422(pipeline):
    from kickgen.errors import PipelineError

    class Refusing(GatedPipeline):
        def render(self, rows, cfg_scale, steps, *args, **kwargs):
            raise PipelineError(f"steps={steps}: this model allows at most 2 steps")

    with TestClient(create_app(Refusing(pipeline))) as c:
        res = c.post("/api/generate", json={"steps": 3})
        assert res.status_code == 422
        assert res.json()["detail"] == "steps=3: this model allows at most 2 steps"
        assert c.get("/healthz").json()["queued"] == 0


def test_loopback_server_answers_loopback_host_names_only(pipeline):
    app = create_app(pipeline, ServeConfig(allowed_hosts=LOOPBACK_NAMES))
    for base, status in [
        ("http://127.0.0.1:8000", 200),
        ("http://localhost:8000", 200),
        ("http://[::1]:8000", 200),
        ("http://attacker.example:8000", 400),  # a rebound DNS name
    ]:
        assert TestClient(app, base_url=base).get("/healthz").status_code == status, base


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("192.168.1.5")
        and not is_loopback("example.com")
    )


@pytest.mark.slow  # two interpreter starts
def test_serve_command_errors_are_one_line(repo_root, tmp_path, checkpoint_dir):
    def serve(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "kickgen", "serve", *args]
        return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=120)

    res = serve("--checkpoints", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"kickgen: error: --checkpoints {tmp_path / 'nope'} is not a folder: name the folder holding "
        "diffusion_step_100000.pt, vae_epoch_100.pt and vocoder_epoch_50.pt"
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = serve("--checkpoints", str(checkpoint_dir), "--port", str(port))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"kickgen: error: cannot listen on 127.0.0.1:{port} (Address already in use): "
        "pick another --port or --host"
    ]


@pytest.fixture()
def live_server(pipeline, serve_in_thread):
    """A real uvicorn server (queue of 1) on a free loopback port, in a thread."""
    import uvicorn

    app = create_app(pipeline, ServeConfig(concurrency=1, queue_size=1))
    with serve_in_thread(uvicorn.Config(app, log_level="warning")) as (host, port):
        yield f"http://{host}:{port}"


def test_load_check_script(live_server, repo_root, tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "load_check", repo_root / "scripts" / "load_check.py"
    )
    load_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "load_check", load_check)  # its dataclass looks itself up
    spec.loader.exec_module(load_check)
    out = tmp_path / "load.json"
    args = ["--url", live_server, "--requests", "6", "--steps", "2", "--json", str(out)]
    assert load_check.main(args) == 0
    report = json.loads(out.read_text())
    assert report["invalid"] == 0 and report["ok_200"] + report["clean_503"] == 6
    assert report["ok_200"] >= 2 and report["clean_503"] >= 1  # a queue of 1 turns some away
    assert "6 concurrent POST /api/generate" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # only loopback addresses
        load_check.main(["--url", "http://192.0.2.1:8000", "--requests", "1"])

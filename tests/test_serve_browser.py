"""End to end: the audition page in headless Debian Chromium, driven by Playwright.

A real uvicorn server runs the real pipeline (seeded random weights, tiny U-Net) on a free
loopback port. The test types a prompt, generates, plays a kick with the mouse and with Space,
asks for more like it, downloads a WAV and checks it is the pipeline's 2 s, 44.1 kHz kick. The
page must make no request outside the server (it works offline). A screenshot is saved to
``test-artifacts/serve-page.png``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
STEPS = 5  # the page's smallest step count


@pytest.fixture()
def server_url(pipeline, serve_in_thread):
    """The real uvicorn server on a free loopback port, stopped after the test."""
    import uvicorn

    from kickgen.serve.app import create_app

    with serve_in_thread(uvicorn.Config(create_app(pipeline), log_level="warning")) as (host, port):
        yield f"http://{host}:{port}"


def test_page_generates_plays_and_downloads(server_url, pipeline, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium not found at /usr/bin/chromium: apt-get install chromium (.ci/run does)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console", lambda m: m.type == "error" and problems.append(f"console: {m.text}")
            )
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server_url + "/")

            # Keyword chips come from the model's vocabulary; a click adds the word.
            chips = page.locator("#chips .chip")
            chips.first.wait_for()
            assert chips.all_inner_texts() == list(pipeline.vocab)
            page.click('#chips .chip[data-word="deep"]')
            page.locator("#prompt").press("End")
            page.locator("#prompt").type(" punchy wobble")
            assert page.input_value("#prompt") == "deep punchy wobble"
            page.wait_for_selector("#parse .word.bad")
            assert page.locator("#parse .word.ok").all_inner_texts() == ["deep", "punchy"]
            assert page.locator("#parse .word.bad").all_inner_texts() == ["wobble"]
            assert page.locator('#chips .chip.active[data-word="punchy"]').count() == 1

            # Controls: fewest steps, 2 kicks, seed 11.
            page.eval_on_selector(
                "#steps",
                "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                str(STEPS),
            )
            assert page.inner_text("#steps-out") == str(STEPS)
            page.click('#count button[data-n="2"]')
            page.fill("#seed", "11")

            page.click("#generate")
            page.wait_for_function(
                "document.querySelectorAll('.kick.ready').length === 2", timeout=60_000
            )
            assert page.locator(".kick .seed").all_inner_texts() == ["11", "12"]
            assert page.locator(".batch-words .word").all_inner_texts() == ["deep", "punchy"]
            assert page.is_enabled("#generate")

            # Play with the mouse, then with Space on the selected (second) kick.
            first, second = page.locator(".kick").nth(0), page.locator(".kick").nth(1)
            first.locator("button.play").click()
            assert first.get_attribute("data-plays") == "1"
            page.keyboard.press("ArrowRight")
            assert "selected" in second.get_attribute("class")
            page.keyboard.press("Space")
            assert second.get_attribute("data-plays") == "1"
            page.wait_for_function("state.audio && state.audio.currentTime > 0", timeout=10_000)

            # Download the selected kick: the pipeline's seed-12 kick, 2 s at 44.1 kHz.
            with page.expect_download() as info:
                second.locator("a.download").click()
            download = info.value
            assert download.suggested_filename == "kick_deep_punchy_s12.wav"
            path = tmp_path / download.suggested_filename
            download.save_as(path)
            meta = sf.info(str(path))
            assert (meta.samplerate, meta.channels, meta.frames) == (44100, 1, 88200)
            assert meta.duration == pytest.approx(2.0)
            wave, _ = sf.read(str(path), dtype="float32")
            expected = pipeline("deep punchy", n=2, seed=11, steps=STEPS).waveforms[1].numpy()
            np.testing.assert_array_equal(wave, expected)

            # More like this: same prompt and settings, new seeds, a new batch on top.
            page.keyboard.press("m")
            page.wait_for_function(
                "document.querySelectorAll('.kick.ready').length === 4", timeout=60_000
            )
            assert page.locator(".batch").count() == 2
            new_seeds = page.locator(".batch").first.locator(".seed").all_inner_texts()
            assert len(new_seeds) == 2 and new_seeds != ["11", "12"]
            assert "more like seed 12" in page.inner_text(".batch-meta >> nth=0")

            page.keyboard.press("Space")  # plays the first kick of the new batch
            page.wait_for_timeout(150)  # let the playhead show in the screenshot
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "serve-page.png"))
        finally:
            context.close()

    assert not problems, problems
    outside = [
        u for u in requests if not (u.startswith(server_url) or u.startswith(("blob:", "data:")))
    ]
    assert not outside, f"the page reached outside the server: {outside}"

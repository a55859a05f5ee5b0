"""End to end: the audition page in headless Debian Chromium, driven by Playwright.

A real uvicorn server runs the real pipeline (seeded random weights, tiny U-Net) on a free
loopback port. The test types a prompt, generates, plays a kick with the mouse and with Space,
asks for more like it, downloads a WAV and checks it is the pipeline's 2 s, 44.1 kHz kick. The
page must make no request outside the server (it works offline). A screenshot is saved to
``test-artifacts/serve-page.png``.
"""

from __future__ import annotations

import json
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
            chips = page.locator("#chips .chip:not(.alias)")
            chips.first.wait_for()
            assert chips.all_inner_texts() == list(pipeline.vocab)
            # producers' words whose keywords the model knows are chips too (tiny vocab: 3)
            assert page.locator("#chips .chip.alias").all_inner_texts() == [
                "boomy",
                "tight",
                "thumpy",
            ]
            page.fill("#prompt", "boomy 808s")
            page.wait_for_selector("#parse .word.guessed")
            assert page.locator("#parse .word.ok").all_inner_texts() == [
                "boomy → deep long",
                "808s → 808",
            ]
            assert page.locator("#chips .chip.active").all_inner_texts() == [
                "808",
                "deep",
                "long",
                "boomy",
            ]
            page.fill("#prompt", "")
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
            # the whole seed is shown (never cut to an ellipsis) and copied by its button
            assert page.eval_on_selector_all(
                ".kick .seed", "els => els.every(e => e.scrollWidth <= e.clientWidth)"
            )
            page.locator(".kick").nth(1).locator("button.copy-seed").click()
            page.wait_for_selector('.kick button.copy-seed[data-copied="12"]')
            # the pictures span the part where the kick sounds, and say how long that is
            views = page.eval_on_selector_all(".kick", "els => els.map(e => e.dataset.view)")
            spans = page.locator(".kick .thumbs .span").all_inner_texts()
            assert spans == [f"0–{v} s" for v in views]
            decaying = (
                "() => { const x = new Float32Array(88200);"
                " for (let i = 0; i < x.length; i++) x[i] = Math.sin(i / 140) * Math.exp(-i / 3000);"
                " return soundSpan(x, 44100); }"
            )
            assert page.evaluate(decaying) == 0.5  # -50 dB at 0.39 s, plus 10 %
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
            assert download.suggested_filename == "kick_deep_punchy_s0000000012.wav"
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


def synth_wav() -> bytes:
    """A 1 s sine kick as a 16-bit WAV (what a producer drops onto the page)."""
    import io

    t = np.arange(44_100) / 44_100
    kick = 0.6 * np.sin(2 * np.pi * (50 * t + 4 * (1 - np.exp(-30 * t)))) * np.exp(-5 * t)
    buf = io.BytesIO()
    sf.write(buf, kick.astype(np.float32), 44_100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


DROP_JS = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "audio/wav" }));
  const drop = document.querySelector("#drop");
  drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
  drop.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}"""

DRAG_OUT_JS = """(node) => {
  const data = new DataTransfer();
  node.dispatchEvent(new DragEvent("dragstart", { dataTransfer: data, bubbles: true, cancelable: true }));
  return data.getData("DownloadURL");
}"""


def test_studio_drop_star_reload_morph_ab_export_and_drag_out(server_url, tmp_path):
    """The producer's loop in the page: bring a kick, star, reload, morph, A/B, export, drag out."""
    import base64
    import io
    import re
    import zipfile

    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium not found at /usr/bin/chromium: apt-get install chromium (.ci/run does)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

    problems: list[str] = []
    requests: list[str] = []
    ready = "n => document.querySelectorAll('.kick.ready').length === n"
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
            headless=True, accept_downloads=True, viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console", lambda m: m.type == "error" and problems.append(f"console: {m.text}")
            )
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server_url + "/")
            page.locator("#chips .chip").first.wait_for()
            page.eval_on_selector(
                "#steps",
                "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                str(STEPS),
            )
            page.click('#count button[data-n="2"]')
            page.fill("#prompt", "deep 808")
            page.fill("#seed", "21")
            page.click("#generate")
            page.wait_for_function(ready, arg=2, timeout=60_000)
            measure = page.locator(".kick .measure").first.inner_text()
            assert "LUFS" in measure and "dBTP" in measure and "decay" in measure
            # at 1400 x 900 the crate's export and morph are on screen, above the shortcut bar
            bar = page.locator("footer.foot").bounding_box()
            for control in ("#export", "#morph-go", "#crate-list"):
                box = page.locator(control).bounding_box()
                assert 0 <= box["y"] and box["y"] + box["height"] <= bar["y"], (control, box, bar)
            # the clean-up's loudness default is the CLI's (HygieneConfig), sent by the server
            assert page.input_value("#hy-lufs-target") == "-22"

            # Bring a kick: a WAV dropped onto the page comes back as variations of it.
            page.eval_on_selector(
                "#strength", "(el) => { el.value = '0.3'; el.dispatchEvent(new Event('input')); }"
            )
            with page.expect_response(lambda r: r.url.endswith("/api/vary")) as vary:
                page.evaluate(DROP_JS, [base64.b64encode(synth_wav()).decode(), "my_kick.wav"])
            page.wait_for_function(ready, arg=4, timeout=60_000)
            # "deep 808" is still in the prompt box: an upload uses it only when asked to
            assert "variations of my_kick.wav · no prompt · strength 0.30" in page.inner_text(
                ".batch-meta >> nth=0"
            )
            assert vary.value.json()["prompt"] == ""  # what the server used
            page.check("#upload-use-prompt")
            assert page.inner_text("#upload-prompt") == '"deep 808"'
            page.uncheck("#upload-use-prompt")
            assert "my_kick.wav" in page.inner_text("#drop-name")
            page.click("#pin-upload")  # the producer's own kick as the A/B reference
            assert "reference: my_kick.wav" in page.inner_text("#ab-ref")

            # Star: S on the selected kick, the star buttons on two more.
            kicks = page.locator(".kick")
            kicks.nth(0).locator(".thumbs").click()
            page.keyboard.press("s")
            kicks.nth(2).locator("button.star").click()
            kicks.nth(3).locator("button.star").click()
            page.wait_for_function("document.querySelectorAll('.crate-item').length === 3")
            assert page.locator(".kick.starred").count() == 3
            starred = page.eval_on_selector_all(".crate-item", "els => els.map(e => e.dataset.id)")

            # Reload: the crate, the history and the recipes are still there.
            page.reload()
            page.wait_for_function("document.querySelectorAll('.crate-item').length === 3")
            page.wait_for_function(ready, arg=4, timeout=30_000)
            assert page.locator(".batch").count() == 2
            assert (
                page.eval_on_selector_all(".crate-item", "els => els.map(e => e.dataset.id)")
                == starred
            )
            assert page.locator(".kick.starred").count() == 3

            # Morph between two crate kicks, rendered once; scrubbing plays the nearest frame.
            items = page.locator(".crate-item")
            items.nth(0).locator('button.end[data-end="a"]').click()
            items.nth(2).locator('button.end[data-end="b"]').click()
            page.select_option("#morph-frames", "5")
            page.click("#morph-go")
            page.wait_for_selector("#morph:not([hidden])", timeout=60_000)
            assert page.get_attribute("#morph-slider", "max") == "4"
            box = page.locator("#morph").bounding_box()  # opens in view, not under the bar
            assert (
                0 <= box["y"]
                and box["y"] + box["height"] <= page.locator("footer.foot").bounding_box()["y"]
            )
            page.eval_on_selector(
                "#morph-slider", "(el) => { el.value = '2'; el.dispatchEvent(new Event('input')); }"
            )
            assert page.get_attribute("#morph", "data-plays") == "1"
            assert page.get_attribute("#morph", "data-frame") == "2"
            page.keyboard.press(".")
            assert page.get_attribute("#morph", "data-frame") == "3"
            assert page.get_attribute("#morph", "data-plays") == "2"
            assert "frame 4 / 5" in page.inner_text("#morph-frame")
            page.wait_for_function("state.audio && state.audio.currentTime > 0", timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "studio-morph.png"))

            # A/B: pin the selected kick (P), select another, flip (A), loudness-matched.
            kicks.nth(1).locator(".thumbs").click()
            page.keyboard.press("p")
            assert "reference: seed" in page.inner_text("#ab-ref")
            kicks.nth(2).locator(".thumbs").click()
            page.keyboard.press("a")
            assert page.get_attribute("#ab", "data-side") == "ref"
            gain = float(page.get_attribute("#ab", "data-gain-db"))
            lufs = [
                float(
                    re.match(
                        r"(-?[\d.]+) LUFS", kicks.nth(i).locator(".measure").inner_text()
                    ).group(1)
                )
                for i in (1, 2)
            ]
            assert gain == pytest.approx(lufs[1] - lufs[0], abs=0.11)
            page.keyboard.press("a")
            assert page.get_attribute("#ab", "data-side") == "kick"

            # Any crate kick comes back from its recipe (a new id on the server).
            old = items.nth(1).get_attribute("data-id")
            items.nth(1).locator("button.regen").click()
            page.wait_for_function(
                f"document.querySelectorAll('.crate-item')[1].dataset.id !== '{old}'",
                timeout=60_000,
            )

            # Export the crate: one zip in the chosen format and rate, an .sfz naming the WAVs.
            page.select_option("#pack-format", "pcm16")
            page.select_option("#pack-rate", "48000")
            # The first answer says the server lost a crate kick (as after a restart): the page
            # regenerates it from its recipe and packs again.
            lost = items.nth(0).get_attribute("data-id")
            answers: list[int] = []

            def forget_once(route):
                if answers:
                    answers.append(200)
                    return route.continue_()
                answers.append(404)
                detail = f"kicks not held by the server any more: {lost}; regenerate them"
                route.fulfill(status=404, content_type="application/json",
                              body=json.dumps({"detail": detail}))  # fmt: skip

            page.route("**/api/pack", forget_once)
            with page.expect_download(timeout=60_000) as info:
                page.keyboard.press("e")
            assert info.value.suggested_filename == "kickgen-crate.zip"
            z = zipfile.ZipFile(info.value.path())
            wavs = [n for n in z.namelist() if n.endswith(".wav")]
            assert len(wavs) == 3
            for name in wavs:
                meta = sf.info(io.BytesIO(z.read(name)))
                assert (meta.samplerate, meta.subtype, meta.channels) == (48_000, "PCM_16", 1)
            sfz = z.read("kickgen-crate/kickgen-crate.sfz").decode()
            assert sorted(re.findall(r"sample=(\S+)", sfz)) == sorted(
                n.split("/", 1)[1] for n in wavs
            )
            assert "kickgen-crate/manifest.csv" in z.namelist()
            packs = [url for url in requests if url.endswith("/api/pack")]  # for the message
            assert answers == [404, 200], f"route answers {answers}, pack requests {packs}"
            assert items.nth(0).get_attribute("data-id") != lost

            # Take it out: Chromium's DownloadURL drag names the kick's WAV on this server.
            url = page.eval_on_selector(".kick a.download >> nth=0", DRAG_OUT_JS)
            assert re.fullmatch(
                rf"audio/wav:kick_\w+\.wav:{re.escape(server_url)}/api/kicks/[0-9a-f]{{16}}\.wav",
                url,
            ), url

            kicks.nth(0).locator(".thumbs").click()
            page.screenshot(path=str(ARTIFACTS / "studio-crate.png"))
        finally:
            context.close()

    lost_404 = [m for m in problems if "status of 404" in m]
    assert len(lost_404) == 1, problems  # the simulated loss, and nothing else
    assert not [m for m in problems if m not in lost_404], problems
    outside = [
        u for u in requests if not (u.startswith(server_url) or u.startswith(("blob:", "data:")))
    ]
    assert not outside, f"the page reached outside the server: {outside}"

"""Screenshots of the studio page for the README: a crate, and a morph being scrubbed.

    python scripts/studio_screenshots.py [--out docs] [--checkpoints DIR]

Serves the shipped weights (or ``--checkpoints``) on a free loopback port, drives Debian's
Chromium with Playwright through the producer's loop (generate with clean-up in key, bring a
kick, star, morph, scrub, pin for A/B) and writes ``studio-crate.png`` and ``studio-morph.png``,
each the 1400 x 900 window a producer sees.
Needs the serve and dev extras and ``/usr/bin/chromium``; about a minute on a laptop CPU.
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
READY = "n => document.querySelectorAll('.kick.ready').length === n"
DROP_JS = """async ([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "audio/wav" }));
  document.querySelector("#drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}"""


def own_kick() -> bytes:
    """A producer's kick to drop: a 55 Hz body with a pitch sweep, 1 s, 16-bit WAV."""
    t = np.arange(44_100) / 44_100
    x = 0.7 * np.sin(2 * np.pi * (55 * t + 5 * (1 - np.exp(-25 * t)))) * np.exp(-4 * t)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 44_100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def serve(checkpoints: Path | None):
    import uvicorn

    from kickgen.pipeline import KickPipeline
    from kickgen.serve.app import create_app
    from kickgen.serve.server import server_config
    from kickgen.weights import find_checkpoints

    files = find_checkpoints(checkpoints, vocoder_hint=None)
    pipe = KickPipeline.from_checkpoints(files.diffusion, files.vae, files.vocoder, "cpu")
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(create_app(pipe)))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    host, port = sock.getsockname()
    return server, f"http://{host}:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--checkpoints", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server, url = serve(args.checkpoints)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})  # what a laptop shows
        page.goto(url + "/")
        page.locator("#chips .chip").first.wait_for()
        page.eval_on_selector(
            "#steps", "(el) => { el.value = '30'; el.dispatchEvent(new Event('input')); }"
        )
        page.check("#hy-fade")
        page.check("#hy-align")
        page.select_option("#key", "F")
        page.fill("#prompt", "punchy 808")
        page.fill("#seed", "7")
        page.click("#generate")
        page.wait_for_function(READY, arg=4, timeout=120_000)
        page.evaluate(DROP_JS, [base64.b64encode(own_kick()).decode(), "my_kick.wav"])
        page.wait_for_function(READY, arg=8, timeout=120_000)
        for i in (0, 2, 5, 7):
            page.locator(".kick").nth(i).locator("button.star").click()
        page.wait_for_function("document.querySelectorAll('.crate-item').length === 4")
        page.locator(".kick").nth(1).locator(".thumbs").click()
        page.keyboard.press("p")
        page.locator(".kick").nth(0).locator(".thumbs").click()
        page.screenshot(path=str(args.out / "studio-crate.png"))
        items = page.locator(".crate-item")
        items.nth(0).locator('button.end[data-end="a"]').click()
        items.nth(3).locator('button.end[data-end="b"]').click()
        page.click("#morph-go")
        page.wait_for_selector("#morph:not([hidden])", timeout=120_000)
        page.eval_on_selector(
            "#morph-slider", "(el) => { el.value = '3'; el.dispatchEvent(new Event('input')); }"
        )
        page.screenshot(path=str(args.out / "studio-morph.png"))
        browser.close()
    server.should_exit = True
    print(args.out / "studio-crate.png", args.out / "studio-morph.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

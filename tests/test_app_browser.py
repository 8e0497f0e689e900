"""The app in a real browser (Debian's /usr/bin/chromium driven by Playwright; no browser download).

Flow: load → upload a clip → fill the transcript → Analyze → wait for results → set top-p in the slider's
number box and blur (the slider's ``release``) → the FLOPs text changes. Saves a full-page screenshot to
``$MESM_SCREENSHOT_DIR/app.png`` when that variable is set (docs/screenshots), else to pytest's tmp dir;
``$MESM_SCREENSHOT_CHECKPOINT`` picks the checkpoint shown (default: the bundled mesm demo checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium); Playwright's own download is not used"),
]


def _sample_or_generated(media, root: Path) -> tuple[Path, str]:
    """The bundled 10 s sample when present (a nicer screenshot), else a generated 3 s clip."""
    from mesm_viz.catalog import SAMPLES_DIR, sample_clips

    if os.environ.get("MESM_SCREENSHOT_DIR"):
        samples = sorted(sample_clips(SAMPLES_DIR), key=lambda s: Path(s[0]).stem != "happy")
        for video, text in samples:
            if text:
                return Path(video), text
    return media.make_face_clip(root / "face.mp4", seconds=3.0), media.TRANSCRIPT


@pytest.fixture(scope="module")
def app_url(models, tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("app_browser")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(root / "gradio"))
    from mesm_viz.app import build_app, launch_kwargs
    from mesm_viz.catalog import bundled_checkpoints
    from mesm_viz.studio import AppSettings

    # For the docs screenshot: $MESM_SCREENSHOT_CHECKPOINT or the bundled demo checkpoint gives it real
    # content. The test itself never relies on a trained checkpoint.
    checkpoint = None
    if os.environ.get("MESM_SCREENSHOT_DIR"):
        checkpoint = os.environ.get("MESM_SCREENSHOT_CHECKPOINT") or next(
            (c for c in bundled_checkpoints() if "mesm" in Path(c).name), None)
    settings = AppSettings(checkpoint=checkpoint or str(models.make_checkpoint(root / "mesm")),
                           export_dir=str(root / "exports"))
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    try:
        yield url, root
    finally:
        demo.close()


def test_upload_analyze_and_move_top_p(app_url, media, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, root = app_url
    clip, transcript = _sample_or_generated(media, root)
    shots = Path(os.environ.get("MESM_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load", timeout=90_000)
            analyze = page.get_by_role("button", name="Analyze", exact=True)
            expect(analyze).to_be_visible(timeout=60_000)

            page.locator("input[type=file]").first.set_input_files(str(clip))
            expect(page.locator("video").first).to_be_visible(timeout=60_000)
            page.locator("textarea").first.fill(transcript)
            analyze.click()
            status = page.locator("#mesm-status")
            expect(status).to_contain_text("Analysed", timeout=180_000)
            flops = page.locator("#mesm-flops")
            expect(flops).to_contain_text("FLOPs", timeout=60_000)
            expect(flops).to_contain_text("p = 0.", timeout=60_000)
            before = flops.inner_text()

            number = page.get_by_label("number input for top-p (nucleus share kept)")
            number.fill("0.9")
            number.press("Tab")  # blur → the slider's release event
            expect(flops).to_contain_text("p = 0.90", timeout=60_000)
            after = flops.inner_text()
            assert after != before

            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(1500)  # let plots and images finish drawing for the screenshot
            path = shots / "app.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 50_000
            for tab in ("Audio", "Cost"):  # the other views, for the docs (and a look at their layout)
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(1500)
                page.screenshot(path=str(shots / f"app_{tab.lower()}.png"), full_page=True)
        finally:
            browser.close()

"""The studio as a user meets it: slider release → view, upload → first result, several users at once.

    python benchmarks/studio_live.py [--phases slider,upload,concurrent] [--sessions 4] [--moves 12]
                                     [--app-arg=--concurrency=2 ...] [--out studio_live] [--no-write]

Drives the real app (``python app.py``, started here as a subprocess on 127.0.0.1) with headless Chromium
through Playwright (Debian's ``/usr/bin/chromium``; no browser download), on this machine's cores, the
browser included. Every wait is bounded. Times are taken inside the page (``performance.now()``): a
MutationObserver stamps the last change of each result view, so "view" means the last DOM change of the
visible views after the action, once they have been quiet for ``--quiet-ms``.

Phases:

* ``slider``: one session analyses the 5.7 s talking-face clip, then clicks the top-p track at new values
  (mouse down/up: the slider's release event); release → the Face tab's views (layer grid, FACS overlay and
  table, FLOPs line, label, probabilities) showing the new p. On the bundled demo checkpoint and on a
  full-size MESM (``mesm_iemocap``, random weights, MiniLM text: the cost does not depend on the weights).
* ``upload``: for each clip (short, talking face, 10 s AVI film clip, 3 s 4K clip, the 10 s sample), a
  fresh copy (new content hash, so no cache helps) is given to the file box, Analyze is pressed as soon
  as the page has the file, and upload → first result is the last change of the result views.
* ``concurrent``: ``--sessions`` browser contexts on one server. Session 0 analyses a fresh copy of the 4K
  clip; at the same moment session 1 analyses a fresh copy of the short clip (compared with its solo time
  from ``upload``), and the others move their sliders every ``--think-ms``; slider moves are counted
  while the 4K analysis runs.

Writes ``docs/results/<out>.json`` (every sample) and ``<out>.md``; benchmarks are not tests, nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # this checkout's mesm_core, not an installed one

from bench_util import REPO, finish_record, load_average, machine_record, markdown_header, quartiles, write_results  # noqa: E402
from live_clips import CLIPS, TRANSCRIPT, make_clips  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
DEMO = REPO / "assets" / "checkpoints" / "mesm_small"
SAMPLE = REPO / "assets" / "samples" / "sad_10s.mp4"
TOP_P = "top-p (nucleus share kept)"
FACE_VIEWS = ["mesm-layers", "mesm-facs", "mesm-facs-table", "mesm-flops", "mesm-label", "mesm-probabilities",
              "mesm-modality", "mesm-status"]
# The slider's positions a user clicks (off the 0.1 grid the cost curve caches, and on it).
MOVES = [0.35, 0.8, 0.15, 0.6, 0.25, 0.9, 0.45, 0.7, 0.2, 0.55, 0.3, 0.85, 0.4, 0.65, 0.1, 0.75]
TYPED = [0.33, 0.67, 0.47, 0.82, 0.21, 0.58]   # off the slider's positions: each runs the sparse stage

# Stamps, in the page, the last change of every view and the last pointer release. Changes inside Gradio's
# progress trackers (the spinner and timer of a running event, and the invisible trackers of "hidden"
# progress) are not changes of a view: they are left out.
PAGE_JS = r"""
(() => {
  const W = window.__mesm = {last: {}, release: null};
  const observer = new MutationObserver(records => {
    const now = performance.now();
    for (const r of records) {
      let node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (node && node.closest && node.closest('[data-testid="status-tracker"]')) continue;
      if (r.type === 'childList' && [...r.addedNodes, ...r.removedNodes].every(n => n.nodeType === 1 &&
          n.matches && n.matches('[data-testid="status-tracker"], .progress-text, .meta-text, .meta-text-center'))) continue;
      while (node && node !== document.body) {
        if (node.id && node.id.startsWith('mesm-')) { W.last[node.id] = now; }
        node = node.parentElement;
      }
    }
  });
  const start = () => observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                                       attributes: true});
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
  document.addEventListener('pointerup', () => { W.release = performance.now(); }, true);
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') W.release = performance.now(); }, true);
})();
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python app.py`` in a subprocess on 127.0.0.1, its log in ``log``; stopped by ``close``."""

    def __init__(self, checkpoint: Path, work: Path, extra: list[str], timeout_s: float = 240.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = work / f"server_{self.port}.log"
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                   GRADIO_TEMP_DIR=str(work / f"gradio_{self.port}"))
        command = [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--checkpoint", str(checkpoint), *extra]
        self.command = " ".join(command[1:])
        self.process = subprocess.Popen(command, cwd=str(REPO), env=env, stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited ({self.process.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(1.0)
        self.close()
        raise RuntimeError(f"the app did not answer within {timeout_s:.0f} s; see {self.log}")

    def memory_mb(self) -> dict[str, float]:
        """The app process's resident memory now and at its peak (Linux /proc), in MB."""
        out = {}
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
        except OSError:
            pass
        return out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


class LoadSampler:
    """The 1-minute load average every few seconds while the benchmark runs (other jobs share the cores)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            load = load_average()
            if load:
                self.samples.append((round(time.monotonic() - self._start, 1), load[0]))
            self._stop.wait(every_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        values = [v for _, v in self.samples]
        return {"samples": self.samples, **(quartiles(values) if values else {})}


def fresh_copy(path: Path, folder: Path, tag: str) -> Path:
    """A copy of ``path`` with a few bytes of its own appended: the same media, a content hash no other copy has
    (so no cache of the app helps)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}_{tag}{path.suffix}"
    shutil.copyfile(path, target)
    with target.open("ab") as handle:
        handle.write(f"\0{tag}:{time.time_ns()}".encode())
    return target


# --- one browser session ------------------------------------------------------------------------------


class Session:
    """One user: a browser context with the page open."""

    def __init__(self, page, name: str, args) -> None:
        self.page, self.name, self.args = page, name, args

    @classmethod
    async def open(cls, browser, url: str, name: str, args, width: int = 1400) -> "Session":
        context = await browser.new_context(viewport={"width": width, "height": 1000})
        await context.add_init_script(PAGE_JS)
        page = await context.new_page()
        await page.goto(url, wait_until="load", timeout=120_000)
        await page.get_by_role("button", name="Analyze", exact=True).wait_for(timeout=120_000)
        return cls(page, name, args)

    async def now(self) -> float:
        return await self.page.evaluate("performance.now()")

    async def wait_quiet(self, since: float, ids: list[str], ready_js: str, timeout_s: float) -> float:
        """Wait until ``ready_js`` holds and none of ``ids`` changed for the quiet time; the last change
        of those views after ``since`` minus ``since``, in seconds."""
        quiet = self.args.quiet_ms
        script = """([ids, since, quiet, ready]) => {
            const W = window.__mesm, now = performance.now();
            if (!(new Function('return (' + ready + ')')())) return null;
            const last = Math.max(since, ...ids.map(i => W.last[i] || 0));
            return now - last >= quiet ? last - since : null;
        }"""
        handle = await self.page.wait_for_function(script, arg=[ids, since, quiet, ready_js], polling=50,
                                                   timeout=timeout_s * 1000)
        return float(await handle.json_value()) / 1000.0

    async def status(self) -> str:
        return await self.page.locator("#mesm-status").inner_text()

    async def analyze(self, clip: Path, timeout_s: float = 240.0) -> dict[str, Any]:
        """Give the file, press Analyze once the page has it; upload → first result (s)."""
        page = self.page
        chooser = page.locator("#mesm-upload input[type=file]")
        if not await chooser.count():
            await page.locator("#mesm-upload").get_by_role("button", name="Clear").click()
            await chooser.wait_for(state="attached", timeout=30_000)
        start = await self.now()
        await chooser.set_input_files(str(clip))
        name = clip.name.replace('"', '\\"')
        await page.wait_for_function(
            f"""() => document.querySelector('#mesm-status').innerText.includes('“{name}”')""",
            polling=50, timeout=120_000)
        accepted = await self.now()
        await page.locator("#mesm-transcript textarea").fill(TRANSCRIPT)
        await page.get_by_role("button", name="Analyze", exact=True).click()
        ready = "document.querySelector('#mesm-status').innerText.match(/Analysed|Problem/)"
        first = await self.wait_quiet(start, FACE_VIEWS, ready, timeout_s)
        text = await self.status()
        strip = None
        if "Analysed" in text:   # the frame strip follows the first result (decoded again at display size)
            await page.wait_for_function("() => document.querySelectorAll('#mesm-strip .thumbnail-item').length > 0",
                                         polling=50, timeout=timeout_s * 1000)
            strip = (await self.now() - start) / 1000.0
        server = re.search(r"Analysed in ([\d.]+) s", text)
        return {"clip": clip.name, "first_result_s": first, "strip_s": strip, "accepted_s": (accepted - start) / 1000.0,
                "server_s": float(server.group(1)) if server else None, "ok": "Analysed" in text,
                "status": text.splitlines()[0][:200]}

    async def wait_cost_curve(self, timeout_s: float = 300.0) -> None:
        """Wait for the cost curve's sweep (every slider position run once): the clip line says so."""
        await self.page.wait_for_function(
            "() => document.querySelector('#mesm-clip').innerText.includes('every slider position')", polling=100,
            timeout=timeout_s * 1000)

    async def type_top_p(self, p: float, timeout_s: float = 120.0) -> dict[str, Any]:
        """Type ``p`` into the top-p box and press Enter (a value off the slider's positions: the sparse stage
        runs); Enter → view (s)."""
        box = self.page.get_by_label(f"number input for {TOP_P}")
        await box.fill(f"{p:g}")
        await box.press("Enter")
        release = await self.page.evaluate("window.__mesm.release")
        ready = (f"document.querySelector('#mesm-flops').innerText.includes('p = {p:.2f}') && "
                 f"document.querySelector('#mesm-status').innerText.includes('{p:g}')")
        seconds = await self.wait_quiet(release, FACE_VIEWS, ready, timeout_s)
        server = re.search(r"in ([\d.]+) s", await self.status())
        return {"session": self.name, "p": p, "typed": True, "release_to_view_s": seconds,
                "server_s": float(server.group(1)) if server else None, "at": time.monotonic()}

    async def move_slider(self, p: float, timeout_s: float = 120.0) -> dict[str, Any]:
        """Click the top-p track at ``p`` (pointer down + up: the slider's release); release → view (s)."""
        page = self.page
        track = page.get_by_label(f"range slider for {TOP_P}")
        box = await track.bounding_box()
        thumb = 16.0
        x = box["x"] + thumb / 2 + (p - 0.05) / 0.95 * (box["width"] - thumb)
        y = box["y"] + box["height"] / 2
        await page.mouse.move(x, y)
        await page.mouse.down()
        await page.mouse.up()
        release = await page.evaluate("window.__mesm.release")
        value = float(await page.get_by_label(f"number input for {TOP_P}").input_value())
        shown = f"p = {value:.2f}"
        ready = (f"document.querySelector('#mesm-flops').innerText.includes('{shown}') && "
                 f"document.querySelector('#mesm-status').innerText.includes('{value:g}')")
        seconds = await self.wait_quiet(release, FACE_VIEWS, ready, timeout_s)
        text = await self.status()
        server = re.search(r"in ([\d.]+) s", text)
        return {"session": self.name, "p": value, "release_to_view_s": seconds,
                "server_s": float(server.group(1)) if server else None, "at": time.monotonic()}


# --- phases --------------------------------------------------------------------------------------------


async def slider_phase(browser, url: str, clip: Path, args) -> dict[str, Any]:
    session = await Session.open(browser, url, "slider", args)
    analysis = await session.analyze(clip)
    await session.wait_cost_curve()
    moves = []
    for p in MOVES[: args.moves]:
        moves.append(await session.move_slider(p))
        print(f"  p {moves[-1]['p']:g}: release → view {moves[-1]['release_to_view_s']:.2f} s "
              f"(server {moves[-1]['server_s']} s)", flush=True)
    typed = []
    for p in TYPED[: args.typed]:
        typed.append(await session.type_top_p(p))
        print(f"  typed p {p:g}: Enter → view {typed[-1]['release_to_view_s']:.2f} s (server {typed[-1]['server_s']} s)",
              flush=True)
    await session.page.context.close()
    times = [m["release_to_view_s"] for m in moves]
    return {"analysis": analysis, "moves": moves, "release_to_view_s": quartiles(times),
            "server_s": quartiles([m["server_s"] for m in moves if m["server_s"] is not None] or [float("nan")]),
            "typed": typed, "typed_s": quartiles([m["release_to_view_s"] for m in typed] or [float("nan")])}


async def upload_phase(browser, url: str, clips: dict[str, Path], work: Path, args) -> dict[str, Any]:
    session = await Session.open(browser, url, "upload", args)
    rows = []
    for name, path in clips.items():
        for repeat in range(args.upload_repeats):
            result = await session.analyze(fresh_copy(path, work / "copies", f"u{repeat}"))
            result["name"] = name
            rows.append(result)
            print(f"  upload {name} #{repeat}: accepted {result['accepted_s']:.2f} s, strip {result['strip_s']}, first result {result['first_result_s']:.2f} s "
                  f"(server {result['server_s']})", flush=True)
    await session.page.context.close()
    return {"rows": rows}


async def concurrent_phase(browser, url: str, clips: dict[str, Path], work: Path, args) -> dict[str, Any]:
    n = max(2, args.sessions)
    sessions = [await Session.open(browser, url, f"s{i}", args) for i in range(n)]
    # Every slider session first has a clip analysed (its own clip: the caches are per clip).
    warm = [clips["talk"], clips["sample"], clips["film"], clips["short"]]
    for i, session in enumerate(sessions[1:], start=1):
        await session.analyze(fresh_copy(warm[(i - 1) % len(warm)], work / "copies", f"c{i}"))
        await session.wait_cost_curve()
    rounds = []
    for round_index in range(args.rounds):
        busy = asyncio.Event()
        moves: list[dict[str, Any]] = []

        async def heavy() -> dict[str, Any]:
            busy.set()
            try:
                return await sessions[0].analyze(fresh_copy(clips["uhd"], work / "copies", f"r{round_index}"))
            finally:
                busy.clear()

        async def short() -> dict[str, Any]:
            result = await sessions[1].analyze(fresh_copy(clips["short"], work / "copies", f"r{round_index}s"))
            await sessions[1].wait_cost_curve()
            return result

        async def mover(session: Session, offset: int) -> None:
            k = offset
            while busy.is_set():
                move = await session.move_slider(MOVES[k % len(MOVES)])
                move["during_4k"] = busy.is_set()
                moves.append(move)
                k += 1
                await asyncio.sleep(args.think_ms / 1000.0)

        heavy_task = asyncio.create_task(heavy())
        await asyncio.sleep(0.05)
        short_task = asyncio.create_task(short())
        movers = [asyncio.create_task(mover(s, 3 * i)) for i, s in enumerate(sessions[2:])]
        heavy_result, short_result = await heavy_task, await short_task
        await asyncio.gather(*movers)
        # The short clip's session joins the movers' count once its analysis is done.
        rounds.append({"uhd": heavy_result, "short": short_result, "moves": moves})
        during = [m["release_to_view_s"] for m in moves if m.get("during_4k")]
        print(f"  round {round_index}: 4K {heavy_result['first_result_s']:.2f} s, short "
              f"{short_result['first_result_s']:.2f} s, {len(during)} slider moves during 4K "
              f"(p95 {percentile(during, 95):.2f} s)", flush=True)
    for session in sessions:
        await session.page.context.close()
    during = [m["release_to_view_s"] for r in rounds for m in r["moves"] if m.get("during_4k")]
    return {"sessions": n, "rounds": rounds, "moves_during_4k_s": {**quartiles(during or [float("nan")]),
                                                                   "p95": percentile(during, 95), "n": len(during)}}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


# --- models --------------------------------------------------------------------------------------------


def full_size_checkpoint(work: Path) -> Path:
    """A full-size MESM (``mesm_iemocap``, MiniLM text encoder, random weights) saved once."""
    folder = work / "mesm_iemocap_random"
    if (folder / "config.json").is_file():
        return folder
    import torch

    import mesm_core

    torch.manual_seed(0)
    mesm_core.save_checkpoint(mesm_core.create_model("mesm_iemocap", text_model="minilm"), folder)
    return folder


# --- report --------------------------------------------------------------------------------------------


def targets(payload: dict[str, Any]) -> list[tuple[str, str, float | None, bool | None]]:
    """(target, limit, measured, met) rows."""
    rows: list[tuple[str, str, float | None, bool | None]] = []
    for name, limit in (("demo", 0.3), ("full", 0.6)):
        case = payload.get("slider", {}).get(name)
        value = case["release_to_view_s"]["median"] if case else None
        rows.append((f"slider release → view, median, {name}", f"≤ {limit} s", value,
                     None if value is None else value <= limit))
    conc = payload.get("concurrent")
    if conc:
        value = conc["moves_during_4k_s"]["p95"]
        rows.append((f"{conc['sessions']} sessions, one analysing the 4K clip: slider p95", "≤ 1 s", value,
                     value <= 1.0 if value == value else None))
    upload = payload.get("upload")
    if upload:
        worst = {}
        for row in upload["rows"]:
            if CLIPS.get(row["name"]) is None or CLIPS[row["name"]].seconds <= 10:
                worst[row["name"]] = max(worst.get(row["name"], 0.0), row["first_result_s"])
        for name, value in worst.items():
            rows.append((f"upload → first result, {name} (worst of the repeats)", "≤ 2 s", value, value <= 2.0))
    if conc and upload:
        solo = [r["first_result_s"] for r in upload["rows"] if r["name"] == "short"]
        together = [r["short"]["first_result_s"] for r in conc["rounds"]]
        if solo and together:
            ratio = statistics.median(together) / statistics.median(solo)
            rows.append(("short clip's analysis beside the 4K one ÷ alone (medians)", "≤ 2×", ratio, ratio <= 2.0))
    return rows


def markdown(payload: dict[str, Any]) -> str:
    lines = markdown_header("The studio in the browser: slider, upload, several users", payload["machine"])
    lines += [f"App: `{payload['app_command']}` (and the same with the full-size checkpoint). Browser: headless "
              f"Chromium {payload.get('browser_version', '?')} on the same cores, 1400×1000 px. Load average (1 min) "
              f"during the run: median {payload['load'].get('median', float('nan')):.2f}, "
              f"range {payload['load'].get('min', float('nan')):.2f}–{payload['load'].get('max', float('nan')):.2f}.",
              "", "## Targets", "", "| target | limit | measured | met |", "|---|---|---|---|"]
    for name, limit, value, met in targets(payload):
        shown = "—" if value is None else (f"{value:.2f}×" if "×" in limit else f"{value:.2f} s")
        lines.append(f"| {name} | {limit} | {shown} | {'—' if met is None else ('yes' if met else '**no**')} |")
    for name, case in payload.get("slider", {}).items():
        r = case["release_to_view_s"]
        lines += ["", f"## Slider, {name} checkpoint", "",
                  f"{len(case['moves'])} clicks on the top-p track after analysing `{case['analysis']['clip']}`. "
                  f"Release → view: median {r['median']:.2f} s (quartiles {r['q1']:.2f}–{r['q3']:.2f}, "
                  f"max {r['max']:.2f}); the server's own time (status line): median {case['server_s']['median']:.2f} s.",
                  "", "| p | release → view (s) | server (s) |", "|---|---|---|"]
        lines += [f"| {m['p']:g} | {m['release_to_view_s']:.2f} | {m['server_s'] if m['server_s'] is not None else '—'} |"
                  for m in case["moves"]]
        if case.get("typed"):
            t = case["typed_s"]
            lines += ["", f"Values typed into the box and applied with Enter, off the slider's positions (so the sparse "
                      f"stage runs for each): Enter → view median {t['median']:.2f} s (max {t['max']:.2f} s) over "
                      f"{len(case['typed'])} values; server {', '.join(str(m['server_s']) for m in case['typed'])} s."]
    if "upload" in payload:
        lines += ["", "## Upload → first result", "",
                  "A fresh copy of each clip (new content hash) in the file box, Analyze pressed when the page has "
                  "the file; the time runs from giving the file to the last change of the result views.", "",
                  "| clip | what | first result (s) | server analysis (s) |", "|---|---|---|---|"]
        for row in payload["upload"]["rows"]:
            what = CLIPS[row["name"]].what if row["name"] in CLIPS else "the bundled 10 s sample, 160×160"
            lines.append(f"| {row['name']} | {what} | {row['first_result_s']:.2f} | {row['server_s']} |")
    if "concurrent" in payload:
        conc = payload["concurrent"]
        m = conc["moves_during_4k_s"]
        lines += ["", f"## {conc['sessions']} sessions at once", "",
                  "Session 0 analyses a fresh copy of the 4K clip; session 1 a fresh copy of the short clip at the "
                  "same moment; the others click their sliders every "
                  f"{payload['args']['think_ms']} ms while the 4K analysis runs.", "",
                  f"Slider moves during the 4K analysis: {m['n']}, median {m['median']:.2f} s, p95 {m['p95']:.2f} s, "
                  f"max {m['max']:.2f} s.", "", "| round | 4K first result (s) | short first result (s) | moves |",
                  "|---|---|---|---|"]
        for i, r in enumerate(conc["rounds"]):
            lines.append(f"| {i} | {r['uhd']['first_result_s']:.2f} | {r['short']['first_result_s']:.2f} | "
                         f"{len(r['moves'])} |")
    memory = payload.get("memory", {})
    if memory:
        lines += ["", "## What one process holds", "",
                  "Resident memory of the app process (Linux `/proc`, MB): after start-up (the checkpoint, MTCNN and "
                  "the audio path warmed up), and after the phases above (clips prepared and cached, every slider "
                  "position of each swept, pictures drawn); *peak* is the process's high-water mark.", "",
                  "| checkpoint | moment | resident MB | peak MB |", "|---|---|---|---|"]
        for key, value in memory.items():
            model, moment = key.split("_", 1)
            lines.append(f"| {model} | {moment} | {value.get('rss_mb', float('nan')):.0f} | "
                         f"{value.get('peak_rss_mb', float('nan')):.0f} |")
    return "\n".join(lines) + "\n"


async def run(args, work: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    clips = {**make_clips(work / "clips"), "sample": SAMPLE}
    payload: dict[str, Any] = {"machine": machine_record(), "args": vars(args), "slider": {}}
    load = LoadSampler()
    extra = list(args.app_arg)
    phases = set(args.phases.split(","))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        payload["browser_version"] = browser.version
        try:
            server = Server(DEMO, work, extra)
            payload["app_command"] = server.command
            payload["memory"] = {"demo_idle": server.memory_mb()}
            try:
                if "slider" in phases:
                    payload["slider"]["demo"] = await slider_phase(browser, server.url, clips["talk"], args)
                    print(f"slider demo: median {payload['slider']['demo']['release_to_view_s']['median']:.2f} s",
                          flush=True)
                if "upload" in phases:
                    payload["upload"] = await upload_phase(browser, server.url, clips, work, args)
                if "concurrent" in phases:
                    payload["concurrent"] = await concurrent_phase(browser, server.url, clips, work, args)
                payload["memory"]["demo_after"] = server.memory_mb()
            finally:
                server.close()
            if "slider" in phases and not args.demo_only:
                server = Server(full_size_checkpoint(work), work, extra)
                payload["memory"]["full_idle"] = server.memory_mb()
                try:
                    payload["slider"]["full"] = await slider_phase(browser, server.url, clips["talk"], args)
                    payload["memory"]["full_after"] = server.memory_mb()
                    print(f"slider full: median {payload['slider']['full']['release_to_view_s']['median']:.2f} s",
                          flush=True)
                finally:
                    server.close()
        finally:
            await browser.close()
    payload["load"] = load.stop()
    finish_record(payload["machine"])
    payload["targets"] = [dict(zip(("target", "limit", "measured", "met"), row)) for row in targets(payload)]
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="slider,upload,concurrent")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="concurrent rounds (a fresh 4K analysis each)")
    parser.add_argument("--moves", type=int, default=12, help="slider clicks per checkpoint")
    parser.add_argument("--upload-repeats", type=int, default=2)
    parser.add_argument("--typed", type=int, default=4, help="values typed into the top-p box (off the slider's steps)")
    parser.add_argument("--think-ms", type=int, default=700, help="pause between a session's slider moves")
    parser.add_argument("--quiet-ms", type=int, default=400, help="a view is drawn once it has not changed for this long")
    parser.add_argument("--demo-only", action="store_true", help="skip the full-size checkpoint")
    parser.add_argument("--app-arg", action="append", default=[], help="extra app.py flag (repeatable), e.g. "
                                                                       "--app-arg=--concurrency=2")
    parser.add_argument("--work", default=None, help="folder for clips, checkpoints and logs (default: a temp dir)")
    parser.add_argument("--out", default="studio_live")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="mesm_live_"))
    payload = asyncio.run(run(args, work))
    for row in payload["targets"]:
        print(row)
    if not args.no_write:
        print("wrote", *write_results(args.out, payload, markdown(payload)))
    return payload


if __name__ == "__main__":
    main()

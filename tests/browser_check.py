"""Render a repository's `dvc plots show` in headless Chromium, offline, and check that every
declared plot drew: each interactive (Vega) plot has its drawn marks, each image plot its
file. Not part of the pytest suite (it needs Debian's `chromium` package and the npm
registry for Vega); run it by hand after a pipeline run:

    apt-get install chromium         # once
    python tests/browser_check.py [REPO] [--screenshot plots.png]

REPO defaults to this repository. The page is the one `make plots` writes: Vega, Vega-Lite
and Vega-Embed inlined from the npm registry, so nothing is loaded from the internet. Exits
non-zero, naming the plot, when one did not draw or DVC warned while collecting them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000"]


def chromium(*args: str, profile: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("browser_check: no chromium on PATH (apt-get install chromium)")
    proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", nargs="?", default=str(ROOT))
    ap.add_argument("--screenshot", help="also save a screenshot of the whole page (PNG)")
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT), ".vega/offline.html"], check=True)
    out = Path(tempfile.mkdtemp(prefix="dvc-plots-"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shown = subprocess.run(["dvc", "plots", "show", "--html-template", str(ROOT / ".vega" / "offline.html"),
                            "-o", str(out)], cwd=args.repo, env=env, capture_output=True, text=True)
    problems = []
    if shown.returncode != 0 or "failed to load" in shown.stdout + shown.stderr:
        problems.append(f"dvc plots show: {(shown.stdout + shown.stderr).strip()}")
    page = (out / "index.html").read_text(encoding="utf-8")
    if re.search(r"<script[^>]+src=[\"']https?:", page):
        problems.append("the page loads scripts from the internet")
    body = page[page.rfind("<body>"):]  # past the inlined Vega libraries
    vega_ids = re.findall(r'<div id = "([^"]+)">', body)
    images = re.findall(r'<img src="([^"]+)"', body)
    with tempfile.TemporaryDirectory() as profile:
        dom = chromium("--dump-dom", (out / "index.html").as_uri(), profile=profile)
        if args.screenshot:
            chromium(f"--screenshot={Path(args.screenshot).resolve()}", "--window-size=1300,5200",
                     "--hide-scrollbars", (out / "index.html").as_uri(), profile=profile)
    for plot_id in vega_ids:
        start = dom.find(f'id="{plot_id}"')
        following = dom[start: dom.find('<div id="', start + 1) if '<div id="' in dom[start + 1:] else None]
        if start < 0 or 'class="marks"' not in following:
            problems.append(f"interactive plot {plot_id} did not draw")
    for src in images:
        if not (out / src).is_file() or (out / src).stat().st_size == 0:
            problems.append(f"image plot {src} is missing")
    for p in problems:
        print(f"browser_check: {p}", file=sys.stderr)
    print(f"browser_check: {len(vega_ids)} interactive plots, {len(images)} images in {out / 'index.html'}: "
          + ("all drew" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

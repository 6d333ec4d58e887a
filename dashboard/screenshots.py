"""Screenshots of every dashboard view for docs/dashboard/, from a running `atlas serve` and a real atlas.

    atlas serve &                                   # with the dashboard built and an atlas ingested
    python dashboard/screenshots.py --base http://127.0.0.1:8000 --atlas smollm2-demo --word the [--steer]

Drives Debian's headless Chromium (packages chromium + chromium-driver) with Selenium, offline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

OUT = Path(__file__).resolve().parents[1] / "docs" / "dashboard"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--hide-scrollbars",
)


def chromium() -> Any:
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for f in FLAGS:
        opts.add_argument(f)
    return webdriver.Chrome(
        service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts
    )


def ready(d: Any, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if d.execute_script(
            "const m = document.querySelector('main'); return !!(m && m.dataset.ready && !m.hasAttribute('aria-busy')) "
            "&& !document.querySelector('[aria-busy]')"
        ):
            time.sleep(0.4)  # let charts and Cytoscape paint
            return
        time.sleep(0.1)
    raise TimeoutError(d.current_url)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8000")
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--word", default="the", help="a word to search for")
    ap.add_argument("--uid", default=None, help="the feature to show (default: the first search hit)")
    ap.add_argument("--min-similarity", type=float, default=0.3)
    ap.add_argument("--steer", action="store_true", help="run one steer request for the steering screenshot")
    ap.add_argument("--steer-atlas", default=None, help="atlas for the steering screenshot (default --atlas)")
    ap.add_argument("--steer-uid", default=None, help="seed for the steering screenshot (default the feature shown)")
    ap.add_argument("--steer-min-similarity", type=float, default=None)
    ap.add_argument("--steer-prompt", default="I think ", help="prompt of the feature page's steering box")
    ap.add_argument("--steer-strength", type=float, default=4.0)
    ap.add_argument("--key", default=None, help="API key for the steering screenshots (put in the key field)")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    d = chromium()
    try:

        def shot(hash_: str, name: str, full: bool = False) -> None:
            d.set_window_size(1400, 1000)
            d.get("about:blank")
            d.get(f"{a.base}/{hash_}")
            ready(d)
            save(name, full)

        def save(name: str, full: bool) -> None:
            if full:  # the whole page (feature pages and the overview are longer than one screen)
                height = int(d.execute_script("return document.documentElement.scrollHeight"))
                d.set_window_size(1400, min(6000, max(1000, height + 20)))
                time.sleep(0.4)
            d.save_screenshot(str(OUT / f"{name}.png"))
            d.set_window_size(1400, 1000)

        if a.key:  # the dashboard keeps the key in sessionStorage (the key field's storage)
            d.get(f"{a.base}/")
            d.execute_script("sessionStorage.setItem('atlas.apiKey', arguments[0])", a.key)
        shot(f"#/atlases?atlas={quote(a.atlas)}", "atlases", full=True)
        shot(f"#/search?q={quote(a.word)}&atlas={quote(a.atlas)}&module=res", "search")
        uid = a.uid or d.execute_script(
            "const x = document.querySelector('table.results a.uid'); return x && x.textContent"
        )
        if not uid:
            raise SystemExit(f"no feature found for {a.word!r}: pass --uid")
        shot(f"#/feature/{quote(uid, safe='')}", "feature", full=True)
        shot(f"#/graph/{quote(uid, safe='')}?direction=both&minSimilarity={a.min_similarity}", "flow-graph")
        nodes = d.execute_script("return (window.__atlasLastDrawn || {nodes: []}).nodes")
        earliest = min(
            (n for n in nodes if "-res/" in n), key=lambda u: int(u.split("/")[-2].split("-")[0]), default=uid
        )
        shot(f"#/path?uids={quote(earliest)},{quote(uid)}&minSimilarity={a.min_similarity}", "path-circuit")
        shot(
            f"#/graph/{quote(uid, safe='')}?direction=both&minSimilarity={a.min_similarity}&collapsed=all",
            "flow-graph-families",
        )
        if a.steer:  # the feature page's own steering box, baseline and steered side by side
            d.get("about:blank")
            d.get(
                f"{a.base}/#/feature/{quote(uid, safe='')}?prompt={quote(a.steer_prompt)}&strength={a.steer_strength}"
            )
            ready(d)
            d.find_element("css selector", "form.steer.inline button").click()
            end = time.monotonic() + 600
            while time.monotonic() < end and not d.find_elements(
                "css selector", ".steer-inline-result .gen.steered, .steer-inline-result .notice.error"
            ):
                time.sleep(0.5)
            d.execute_script("document.querySelector('[data-panel=steering]').scrollIntoView()")
            time.sleep(0.5)
            d.save_screenshot(str(OUT / "feature-steering.png"))
        s_atlas, s_uid = a.steer_atlas or a.atlas, a.steer_uid or uid
        s_min = a.min_similarity if a.steer_min_similarity is None else a.steer_min_similarity
        if a.steer:
            d.get(f"{a.base}/#/steer?atlas={quote(s_atlas)}&seeds={quote(s_uid)}:8&tokens=24&minSimilarity={s_min}")
            ready(d)
            d.find_element("css selector", "form.steer button").click()
            end = time.monotonic() + 600
            while time.monotonic() < end and not d.find_elements(
                "css selector", ".gen.steered, .steer-result .notice.error"
            ):
                time.sleep(0.5)
            time.sleep(1.0)
        else:
            d.get(f"{a.base}/#/steer?atlas={quote(s_atlas)}&seeds={quote(s_uid)}:8")
            ready(d)
        d.save_screenshot(str(OUT / "steering.png"))
    finally:
        d.quit()
    print(f"saved {sorted(p.name for p in OUT.glob('*.png'))} in {OUT}")


if __name__ == "__main__":
    main()

"""The dashboard in a real browser (Debian's headless Chromium via Selenium) against `atlas serve`'s app on a
planted atlas in the real Neo4j, with a tiny Llama for steering.

What a user does: search → open a feature → its flow graph shows exactly the nodes and edges of the same
`lineage` query; a slider change refetches and redraws; a reload restores the view from the URL; a steering
round trip with the API key typed into the page; unknown uids and missing keys show typed errors; no view
logs a console error. ATLAS_DASHBOARD_SCREENSHOTS=DIR saves a screenshot of each view; ATLAS_DASHBOARD_BENCH=FILE
records the performance figures (bench/bench_dashboard.py runs this module that way).
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_api.app import DASHBOARD_DIR
from atlas_api.settings import ApiSettings
from queries.db import Graph
from queries.ids import feature_uid
from queries.labels import SET_FEATURE_LABELS
from queries.maintenance import drop_atlas
from tests.browser import console_errors, start_chromium
from tests.servers import gql, running_api

KEY = "dash-sekret"
WORDS = [
    "river",
    "music",
    "python",
    "garden",
    "winter",
    "number",
    "question",
    "city",
    "colour",
    "money",
    "travel",
    "science",
]
LINEAGE_Q = """query($uid: String!, $direction: LineageDirection!, $minSimilarity: Float!, $moduleMinSimilarity: Float!, $topK: Int!) {
  lineage(uid: $uid, direction: $direction, minSimilarity: $minSimilarity, moduleMinSimilarity: $moduleMinSimilarity, topK: $topK) {
    nodes { uid } edges { source target } } }"""


@pytest.fixture(scope="module")
def site(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (DASHBOARD_DIR / "index.html").is_file():
        msg = f"the dashboard is not built ({DASHBOARD_DIR}): cd dashboard && npm ci && npm run build (deploy/install.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama

    model_dir = tmp_path_factory.mktemp("tiny-model")
    lm = tiny_llama(seed=0, d_model=128)
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    name = f"test-dash-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name, n_layers=4, d_model=128, d_sae=48, model=str(model_dir), seed=3)
    manifest_path = pa.write(tmp_path_factory.mktemp("dash") / "atlas")
    ingest_atlas(load_manifest(manifest_path), graph, k=2, backend="numpy")
    # The seed: a layer-3 residual feature whose planted chain goes back at least one layer.
    seed = next(
        i for (layer, i), t in sorted(pa.truth.items()) if layer == 3 and t.category in ("translated", "processed")
    )
    rows = []
    for (layer, i), t in pa.truth.items():
        word = "wedding" if (layer, i) == (3, seed) else WORDS[i % len(WORDS)]
        rows.append(
            {
                "uid": feature_uid(name, layer, "res", i),
                "label": f"{word} {t.category}",
                "frequency": 1e-3 * (1 + i % 7),
                "max_activation": 2.5,
                "top_contexts": [f"…the «{word}» was near…", f"…a big «{word}» today…"],
            }
        )
    graph.write(SET_FEATURE_LABELS, {"rows": rows})
    os.environ["ATLAS_STEER_MANIFESTS"] = json.dumps([str(manifest_path)])
    try:
        with running_api(ApiSettings(api_key=KEY)) as base:
            yield {"base": base, "atlas": name, "seed": feature_uid(name, 3, "res", seed)}
    finally:
        os.environ.pop("ATLAS_STEER_MANIFESTS", None)
        drop_atlas(graph, name)


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    d = start_chromium()
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()


# -- helpers -----------------------------------------------------------------------------------------
def _ready(d: Any) -> str:
    return d.execute_script(
        "const m = document.querySelector('main'); return (m && !m.hasAttribute('aria-busy') && m.dataset.ready) || ''"
    )


def _wait(d: Any, cond: Any, timeout: float = 30, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda drv: cond(drv), message=what)


def load(d: Any, url: str) -> None:
    """A full page load (new document) of `url`, then wait for its first view."""
    d.get("about:blank")
    d.get(url)
    _wait(d, lambda drv: _ready(drv) != "", what=f"first view of {url}")


def goto(d: Any, hash_: str) -> None:
    """In-page navigation (hash change), then wait for the new view."""
    old = _ready(d)
    d.execute_script("location.hash = arguments[0]", hash_)
    _wait(d, lambda drv: _ready(drv) not in ("", old), what=f"view {hash_}")


def wait_graph(d: Any, fetches: int) -> dict[str, Any]:
    _wait(
        d,
        lambda drv: drv.execute_script(
            "const c = document.querySelector('[data-testid=flow-graph]'); return c && !c.hasAttribute('aria-busy') && Number(c.dataset.fetches) >= arguments[0]",
            fetches,
        ),
        what=f"flow graph fetch #{fetches}",
    )
    return d.execute_script("return window.__atlasLastDrawn")


def api_lineage(base: str, uid: str, **kw: Any) -> tuple[set[str], set[tuple[str, str]]]:
    v = {"uid": uid, "direction": "BOTH", "minSimilarity": 0.5, "moduleMinSimilarity": 0.15, "topK": 1, **kw}
    out = gql(base, LINEAGE_Q, v)["data"]["lineage"]
    return {n["uid"] for n in out["nodes"]}, {(e["source"], e["target"]) for e in out["edges"]}


def drawn_sets(drawn: dict[str, Any]) -> tuple[set[str], set[tuple[str, str]]]:
    return set(drawn["nodes"]), {(s, t) for s, t in drawn["edges"]}


def shot(d: Any, name: str) -> None:
    folder = os.environ.get("ATLAS_DASHBOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(Path(folder) / f"{name}.png"))


def no_console_errors(d: Any) -> None:
    errors = console_errors(d)
    assert errors == [], errors


# -- tests -------------------------------------------------------------------------------------------
def test_search_open_feature_and_its_lineage_graph(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, base, seed = browser, site["base"], site["seed"]
    load(d, f"{base}/#/atlases")
    assert d.find_element(By.CSS_SELECTOR, f'section[data-atlas="{site["atlas"]}"]')
    assert (
        len(d.find_elements(By.CSS_SELECTOR, f'section[data-atlas="{site["atlas"]}"] canvas')) >= 2
    )  # category bars + histograms
    shot(d, "atlases")
    goto(d, "#/search")
    d.find_element(By.NAME, "q").send_keys("wedding")
    d.find_element(By.CSS_SELECTOR, f'select[name=atlas] option[value="{site["atlas"]}"]').click()
    old = _ready(d)
    d.find_element(By.CSS_SELECTOR, "form.search button").click()
    _wait(d, lambda drv: _ready(drv) not in ("", old))
    links = [a.text for a in d.find_elements(By.CSS_SELECTOR, "table.results a.uid")]
    assert links == [seed]
    shot(d, "search")
    old = _ready(d)
    d.find_element(By.LINK_TEXT, seed).click()
    _wait(d, lambda drv: _ready(drv) not in ("", old))
    assert d.execute_script("return document.querySelector('main').dataset.view") == "feature"
    assert [m.text for m in d.find_elements(By.CSS_SELECTOR, ".contexts mark")] == ["wedding", "wedding"]
    assert "was born" in d.find_element(By.CSS_SELECTOR, "[data-testid=origin]").text
    assert d.find_elements(By.CSS_SELECTOR, ".neighbours table")  # predecessors/successors listed
    shot(d, "feature")
    old = _ready(d)
    d.find_element(By.LINK_TEXT, "Flow graph").click()
    _wait(d, lambda drv: _ready(drv) not in ("", old))
    drawn = wait_graph(d, 1)
    nodes, edges = api_lineage(base, seed)
    assert len(nodes) >= 2 and drawn_sets(drawn) == (nodes, edges)
    shot(d, "flow-graph")
    no_console_errors(d)


def test_slider_refetches_redraws_and_reload_restores(browser: Any, site: dict[str, Any]) -> None:
    d, base, seed = browser, site["base"], site["seed"]
    load(d, f"{base}/#/graph/{seed.replace('/', '%2F')}?direction=both")
    before = drawn_sets(wait_graph(d, 1))
    assert before == api_lineage(base, seed)
    d.execute_script(
        "const s = document.querySelector('input[name=minSimilarity]'); s.value = '0'; s.dispatchEvent(new Event('change'))"
    )
    after = drawn_sets(wait_graph(d, 2))
    expected = api_lineage(base, seed, minSimilarity=0.0)
    assert after == expected and after != before
    assert "minSimilarity=0" in d.current_url
    d.refresh()
    _wait(d, lambda drv: _ready(drv) != "")
    restored = drawn_sets(wait_graph(d, 1))
    assert restored == expected
    assert d.execute_script("return document.querySelector('input[name=minSimilarity]').value") == "0"
    # The download links ask /export/lineage for the same graph as the view's (API JSON and circuit-tracer JSON).
    fetch = "return fetch(document.querySelector(arguments[0]).href).then(r => r.json())"
    exported = d.execute_script(fetch, "a[data-format=json]")
    assert {n["uid"] for n in exported["nodes"]} == expected[0]
    assert {(e["source"], e["target"]) for e in exported["edges"]} == expected[1]
    tracer = d.execute_script(fetch, "a[data-format=circuit-tracer]")
    assert len(tracer["nodes"]) == len(expected[0]) and "metadata" in tracer
    no_console_errors(d)


def test_unknown_uid_and_path_views(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, base, atlas, seed = browser, site["base"], site["atlas"], site["seed"]
    load(d, f"{base}/#/feature/{atlas}%2F3-res%2F999")
    box = d.find_element(By.CSS_SELECTOR, ".notice.error")
    assert f"No feature {atlas}/3-res/999" in box.text and box.find_element(By.LINK_TEXT, "search for the feature")
    nodes, _ = api_lineage(base, seed, direction="UPSTREAM")
    earliest = min(nodes, key=lambda u: (int(u.split("/")[1].split("-")[0]), "-res/" not in u))
    goto(d, f"#/path?uids={earliest},{seed}&minSimilarity=0.3")
    _wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "[data-testid=circuit-graph] canvas"))
    assert "score" in d.find_element(By.CSS_SELECTOR, "section.path").text
    shot(d, "path-circuit")
    no_console_errors(d)


def test_steering_round_trip_with_the_api_key_field(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, base, atlas, seed = browser, site["base"], site["atlas"], site["seed"]
    load(d, f"{base}/#/steer?atlas={atlas}&seeds={seed}:6&tokens=4")
    d.execute_script("sessionStorage.clear()")
    d.find_element(By.CSS_SELECTOR, "form.steer button").click()
    err = _wait(
        d, lambda drv: drv.find_elements(By.CSS_SELECTOR, ".steer-result .notice.error"), what="missing-key error"
    )[0]
    assert "API key" in err.text
    # The refused request is a 401, which Chromium logs itself; that one line is expected, nothing else.
    assert [m for m in console_errors(d) if "status of 401" not in m] == []
    d.execute_script(
        "const k = document.querySelector('header input[type=password]'); k.value = arguments[0]; k.dispatchEvent(new Event('change'))",
        KEY,
    )
    d.find_element(By.CSS_SELECTOR, "form.steer button").click()
    _wait(
        d,
        lambda drv: (
            drv.find_elements(By.CSS_SELECTOR, ".gen.steered")
            or drv.find_elements(By.CSS_SELECTOR, ".steer-result .notice.error")
        ),
        timeout=180,
        what="steer result",
    )
    errs = d.find_elements(By.CSS_SELECTOR, ".steer-result .notice.error")
    assert not errs, errs[0].text
    assert d.find_element(By.CSS_SELECTOR, ".gen.baseline").text.startswith("baseline")
    coef = {
        r.find_elements(By.TAG_NAME, "td")[0].text for r in d.find_elements(By.CSS_SELECTOR, "table.coefs tbody tr")
    }
    assert seed in coef
    _wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "table.runs tbody tr"), what="past runs listed")
    shot(d, "steering")
    # An invalid strength is the API's typed InvalidInput, shown as such.
    d.execute_script("document.querySelector('textarea[name=seeds]').value = arguments[0]", f"{seed}:1e300")
    d.find_element(By.CSS_SELECTOR, "form.steer button").click()
    err = _wait(
        d,
        lambda drv: drv.find_elements(By.CSS_SELECTOR, ".steer-result .notice.error"),
        timeout=60,
        what="invalid strength",
    )[0]
    assert "Invalid input" in err.text
    no_console_errors(d)


def test_performance_figures(browser: Any, site: dict[str, Any]) -> None:
    """First view, shipped bundle size and a 500-node graph render; recorded (not asserted as timings)."""
    d, base = browser, site["base"]
    first = []
    for _ in range(5):
        load(d, f"{base}/#/atlases")
        first.append(float(d.execute_script("return Number(document.querySelector('main').dataset.readyAt)")))
    renders = [d.execute_script("return window.__atlasBench.renderGraph(500)") for _ in range(5)]
    assert all(r["nodes"] == 500 for r in renders)
    shipped = [p for p in (DASHBOARD_DIR / "assets").iterdir() if p.suffix in (".js", ".css")]
    kb_gzip = sum(len(gzip.compress(p.read_bytes(), 9)) for p in shipped) / 1024
    assert kb_gzip <= 500, f"the dashboard ships {kb_gzip:.0f} kB gzip (budget 500)"
    no_console_errors(d)
    out = os.environ.get("ATLAS_DASHBOARD_BENCH")
    if out:
        Path(out).write_text(
            json.dumps(
                {
                    "first_view_ms": round(statistics.median(first), 1),
                    "first_view_ms_runs": first,
                    "bundle_kb_gzip": round(kb_gzip, 1),
                    "bundle_files": sorted(p.name for p in shipped),
                    "graph500_render_ms": round(statistics.median(r["ms"] for r in renders), 1),
                    "graph500_render_ms_runs": [round(r["ms"], 1) for r in renders],
                    "graph500_layout_and_init_ms": round(statistics.median(r["layoutMs"] for r in renders), 1),
                },
                indent=2,
            )
        )


def test_database_down_is_explained(browser: Any, site: dict[str, Any]) -> None:
    """An API whose Neo4j does not answer: the page shows the API's message and the command that fixes it."""
    from selenium.webdriver.common.by import By

    from queries.settings import Neo4jSettings
    from tests.servers import free_port

    with running_api(neo4j=Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}")) as down:
        load(browser, f"{down}/#/atlases")
        box = browser.find_element(By.CSS_SELECTOR, ".notice.error")
        assert "atlas db start" in box.text
        goto(browser, "#/feature/x%2F1-res%2F2")
        assert "atlas db start" in browser.find_element(By.CSS_SELECTOR, ".notice.error").text
    no_console_errors(browser)


def test_keyed_reads_work_through_the_key_field(browser: Any, site: dict[str, Any]) -> None:
    """A server with ATLAS_API_READS=keyed: the page says a key is needed; typed into the field, every view reads."""
    from selenium.webdriver.common.by import By

    d = browser
    with running_api(ApiSettings(api_key=KEY, reads="keyed")) as keyed:
        load(d, f"{keyed}/#/atlases")
        d.execute_script("sessionStorage.clear()")
        d.refresh()
        _wait(d, lambda drv: _ready(drv) != "")
        assert "API key" in d.find_element(By.CSS_SELECTOR, ".notice.error").text
        assert [m for m in console_errors(d) if "status of 401" not in m] == []
        d.execute_script(
            "const k = document.querySelector('header input[type=password]'); k.value = arguments[0]; k.dispatchEvent(new Event('change'))",
            KEY,
        )
        d.refresh()
        _wait(d, lambda drv: _ready(drv) != "")
        assert d.find_element(By.CSS_SELECTOR, f'section[data-atlas="{site["atlas"]}"]')
        goto(d, f"#/graph/{site['seed'].replace('/', '%2F')}?direction=both")
        assert drawn_sets(wait_graph(d, 1)) == api_lineage(site["base"], site["seed"])
        exported = d.execute_script(
            "return fetch(document.querySelector('a[data-format=json]').href, {headers: {'x-api-key': arguments[0]}}).then(r => r.json())",
            KEY,
        )
        assert {n["uid"] for n in exported["nodes"]} == api_lineage(site["base"], site["seed"])[0]
        d.execute_script("sessionStorage.clear()")
    no_console_errors(d)

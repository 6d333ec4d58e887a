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
PROSE = (
    "The wedding was held by the river in early winter. Music drifted over the garden while the city slept; "
    "a question about money and travel came up, and someone answered with a number. Science, colour and python "
    "code filled the rest of the evening, and the river kept running past the old stone bridge. "
)
PAGE_Q = """query($uid: String!) { feature(uid: $uid) { ... on Feature {
  page { firingTokens activationHistogram { counts } exampleGroups { name examples { tokens activations maxIndex } }
         logitLens { positive { token weight } negative { token weight } } }
  predecessors(topK: 3) { feature { uid } } successors(topK: 3) { feature { uid } } } }
  origin(uid: $uid) { ... on Origin { chain { feature { uid } } source { uid } } } }"""
LINEAGE_Q = """query($uid: String!, $direction: LineageDirection!, $minSimilarity: Float!, $moduleMinSimilarity: Float!, $topK: Int!) {
  lineage(uid: $uid, direction: $direction, minSimilarity: $minSimilarity, moduleMinSimilarity: $moduleMinSimilarity, topK: $topK) {
    nodes { uid } edges { source target } } }"""


def sae_metrics_from_pages(atlas: str, pages: Any) -> list[dict[str, Any]]:
    """L0 and dead fraction per SAE measured by the pages' held-out pass (EV is not measured there: left out)."""
    from queries.ids import sae_key

    out = []
    for (layer, module), rows in pages.pages.items():
        fired = [r["firing"] for r in rows]
        out.append(
            {
                "key": sae_key(atlas, layer, module),
                "explained_variance": None,
                "l0": sum(fired) / pages.heldout_tokens,
                "dead_fraction": sum(1 for f in fired if f == 0) / len(fired),
                "heldout_tokens": pages.heldout_tokens,
                "train_tokens": 0,
            }
        )
    return out


@pytest.fixture(scope="module")
def site(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (DASHBOARD_DIR / "index.html").is_file():
        msg = f"the dashboard is not built ({DASHBOARD_DIR}): cd dashboard && npm ci && npm run build (deploy/install.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    from ingest.pipeline import ingest_atlas
    from queries.sae_metrics import set_sae_metrics
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama
    from training.corpus import Chunk
    from training.feature_pages_publish import atlas_pages, store_atlas_pages

    model_dir = tmp_path_factory.mktemp("tiny-model")
    lm = tiny_llama(seed=0, d_model=128)
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    name = f"test-dash-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name, n_layers=4, d_model=128, d_sae=48, model=str(model_dir), seed=3)
    manifest_path = pa.write(tmp_path_factory.mktemp("dash") / "atlas")
    manifest = load_manifest(manifest_path)
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    # Feature pages from a real held-out pass: the tiny Llama's activations encoded by the planted SAEs.
    chunks = [Chunk("held-out", i, (PROSE[i * 37 :] + PROSE[: i * 37])) for i in range(12)]
    pages = atlas_pages(manifest, lm, chunks, heldout_tokens=1_500, seq_len=64, out_dir=manifest_path.parent)
    store_atlas_pages(graph, name, pages)
    # Steerability from the real screen (steering.steerability) with the same tiny Llama and SAEs.
    from queries.steerability import store_steerability
    from steering.hooks import HookPoint
    from steering.saes import SAEBank
    from steering.steerability import feature_rows, measure_atlas

    screen = measure_atlas(lm, SAEBank(manifest, lm), [HookPoint(e.layer, e.module) for e in manifest.saes])
    store_steerability(
        graph, name, feature_rows(screen, name, lm.tokenizer), [], alpha=screen.alpha, prompts=screen.prompts
    )
    set_sae_metrics(graph, sae_metrics_from_pages(name, pages))
    # The seed: a layer-3 residual feature whose planted chain goes back at least one layer and that fired.
    firing = {r["index"]: r["firing"] for r in pages.pages[(3, "res")]}
    seed = max(
        (i for (layer, i), t in sorted(pa.truth.items()) if layer == 3 and t.category in ("translated", "processed")),
        key=lambda i: (firing[i] >= 5, -i),
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
            yield {"base": base, "atlas": name, "seed": feature_uid(name, 3, "res", seed), "pages": pages}
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
    # category bars + histograms, drawn as SVG (no canvas-only charts)
    assert len(d.find_elements(By.CSS_SELECTOR, f'section[data-atlas="{site["atlas"]}"] svg.chart')) >= 2
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


# -- the feature page, the overview and the flow graph's families (issue 27) --------------------------
STEER_Q = "query($uid: String!) { feature(uid: $uid) { ... on Feature { steerability { kl } } } }"
PANELS_SEEN: list[str] = []


def panels_with_data(d: Any) -> dict[str, bool]:
    return d.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('[data-panel]')].map(p => [p.dataset.panel, p.dataset.hasData === 'true']))"
    )


def test_feature_page_panels_show_the_stored_data(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, base, seed = browser, site["base"], site["seed"]
    api = gql(base, PAGE_Q, {"uid": seed})["data"]
    page = api["feature"]["page"]
    load(d, f"{base}/#/feature/{seed.replace('/', '%2F')}")
    panels = panels_with_data(d)
    for name in ("density", "examples", "logits", "steerability", "origin", "neighbours", "contexts"):
        assert panels.get(name) is True, (name, panels)
    kl_text = d.find_element(By.CSS_SELECTOR, "[data-testid=steer-kl]").text
    stored_kl = gql(base, STEER_Q, {"uid": seed})["data"]["feature"]["steerability"]["kl"]
    assert f"{stored_kl:.4f} nats" in kl_text, (kl_text, stored_kl)
    PANELS_SEEN.extend(f"feature:{n}" for n, ok in panels.items() if ok)
    # density: one SVG bar per histogram bin, counts as the API's; the SAE's density histogram with this feature marked
    bars = d.execute_script(
        "return [...document.querySelectorAll('[data-testid=activation-histogram] rect.bar')].map(b => Number(b.dataset.count))"
    )
    assert bars == page["activationHistogram"]["counts"] and sum(bars) == page["firingTokens"] > 0
    assert "this feature" in d.find_element(By.CSS_SELECTOR, "[data-testid=sae-density-histogram]").text
    # examples: every group, every token shaded with the API's activation (the title says the value)
    groups = d.execute_script(
        "return [...document.querySelectorAll('.example-group')].map(g => ({name: g.dataset.group, ex: [...g.querySelectorAll('.tokens')].map(t => [...t.querySelectorAll('.tok')].map(x => Number(x.dataset.act)))}))"
    )
    assert [g["name"] for g in groups] == [g["name"] for g in page["exampleGroups"]]
    assert groups[0]["ex"] == [e["activations"] for e in page["exampleGroups"][0]["examples"]]
    first = d.find_element(By.CSS_SELECTOR, ".example-group[data-group=top] .tok.max")
    top = page["exampleGroups"][0]["examples"][0]
    assert first.get_attribute("title").endswith(f"activation {top['activations'][top['maxIndex']]}")
    # logit lens: the API's top tokens in order, with bars
    shown = [c.text for c in d.find_elements(By.CSS_SELECTOR, "[data-sign=positive] td.token code")]
    assert shown == [json.dumps(t["token"], ensure_ascii=False) for t in page["logitLens"]["positive"]]
    assert len(d.find_elements(By.CSS_SELECTOR, "[data-sign=negative] svg.hbar")) == len(page["logitLens"]["negative"])
    # origin path: one node per chain step (+ the module source when there is one); neighbours with bars
    o = api["origin"]
    circles = d.find_elements(By.CSS_SELECTOR, "[data-testid=origin-path] circle")
    assert len(circles) == len(o["chain"])
    bars = d.find_elements(By.CSS_SELECTOR, ".panel-neighbours svg.hbar")
    f = api["feature"]
    assert len(bars) == len(f["predecessors"]) + len(f["successors"]) > 0
    shot(d, "feature-page")
    no_console_errors(d)


def test_overview_panels_draw_flow_categories_and_sae_quality(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    d, base, atlas = browser, site["base"], site["atlas"]
    load(d, f"{base}/#/atlases?atlas={atlas}")
    panels = panels_with_data(d)
    for name in ("flow-res", "categories", "sae-l0", "sae-dead", "entry-points"):
        assert panels.get(name) is True, (name, panels)
    PANELS_SEEN.extend(f"overview:{n}" for n, ok in panels.items() if ok)
    q = """query($n: String!) { atlases(name: $n) { saes { layer module controls { predecessor scoreMedian nullMedian } }
      entryPoints { uid size } } }"""
    a = gql(base, q, {"n": atlas})["data"]["atlases"][0]
    res = sorted((s for s in a["saes"] if s["module"] == "RES"), key=lambda s: s["layer"])
    with_res = [c for s in res for c in s["controls"] if c["predecessor"] == "RES"]
    titles = [
        t.get_attribute("textContent")
        for t in d.find_elements(By.CSS_SELECTOR, "[data-testid=flow-chart-res] .point title")
    ]
    assert len(titles) == len(with_res) and titles and f"{with_res[0]['scoreMedian']:.3f}" in titles[0]
    assert len(d.find_elements(By.CSS_SELECTOR, "[data-testid=flow-chart-res] rect.null-band")) == len(with_res)
    links = [x.text for x in d.find_elements(By.CSS_SELECTOR, "table.entry-points a.uid")]
    assert links == [e["uid"] for e in a["entryPoints"]]
    shot(d, "overview")
    no_console_errors(d)


def test_flow_graph_families_collapse_export_and_deep_link(browser: Any, site: dict[str, Any]) -> None:
    d, base, seed = browser, site["base"], site["seed"]
    load(d, f"{base}/#/graph/{seed.replace('/', '%2F')}?direction=both&minSimilarity=0")
    drawn = drawn_sets(wait_graph(d, 1))
    assert drawn == api_lineage(base, seed, minSimilarity=0.0)
    n_fam = int(d.execute_script("return document.querySelector('[data-testid=flow-graph]').dataset.families"))
    assert n_fam >= 1
    # "c" collapses every family: fewer nodes, supernodes drawn; the URL says so and a reload restores it
    d.find_element("css selector", "body").send_keys("c")
    _wait(d, lambda drv: "collapsed=all" in drv.current_url, what="collapse all")
    collapsed = d.execute_script("return window.__atlasLastDrawn")
    fam_nodes = [u for u in collapsed["nodes"] if u.startswith("family:")]
    assert len(fam_nodes) == n_fam and len(collapsed["nodes"]) < len(drawn[0])
    svg = d.execute_script("return window.__atlasGraphSvg()")
    assert svg.startswith("<svg") and all(f"<title>{u}</title>" in svg for u in collapsed["nodes"])
    png = d.execute_script("return window.__atlasGraphPng()")
    assert png.startswith("data:image/png;base64,") and len(png) > 1000
    d.refresh()
    _wait(d, lambda drv: _ready(drv) != "")
    wait_graph(d, 1)
    assert sorted(d.execute_script("return window.__atlasLastDrawn")["nodes"]) == sorted(collapsed["nodes"])
    d.find_element("css selector", "body").send_keys("e")
    _wait(d, lambda drv: "collapsed" not in drv.current_url, what="expand all")
    assert drawn_sets(d.execute_script("return window.__atlasLastDrawn")) == drawn
    assert "cosine" in d.find_element("css selector", ".methods-note").text
    PANELS_SEEN.extend(["graph:families", "graph:export-svg", "graph:export-png"])
    shot(d, "flow-graph-families")
    no_console_errors(d)


def test_keyboard_navigation(browser: Any, site: dict[str, Any]) -> None:
    d, base, seed = browser, site["base"], site["seed"]
    load(d, f"{base}/#/feature/{seed.replace('/', '%2F')}")
    body = d.find_element("css selector", "body")
    old = _ready(d)
    body.send_keys("j")
    _wait(d, lambda drv: _ready(drv) not in ("", old), what="next feature")
    idx = int(seed.rsplit("/", 1)[1])
    assert (
        d.execute_script("return decodeURIComponent(location.hash)") == f"#/feature/{seed.rsplit('/', 1)[0]}/{idx + 1}"
    )
    body.send_keys("?")
    assert d.find_element("css selector", "[data-testid=key-help]").is_displayed()
    body.send_keys("a")
    _wait(d, lambda drv: drv.execute_script("return document.querySelector('main').dataset.view") == "atlases")
    no_console_errors(d)


def test_feature_page_steering_box_refuses_without_a_key_and_steers_with_one(
    browser: Any, site: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By

    d, base, seed = browser, site["base"], site["seed"]
    load(d, f"{base}/#/feature/{seed.replace('/', '%2F')}?prompt=the%20river&strength=6")
    d.execute_script("sessionStorage.clear()")
    assert d.find_element(By.NAME, "steer-prompt").get_attribute("value") == "the river"
    d.find_element(By.NAME, "steer-tokens").clear()
    d.find_element(By.NAME, "steer-tokens").send_keys("6")
    d.find_element(By.CSS_SELECTOR, "form.steer.inline button").click()
    err = _wait(
        d, lambda drv: drv.find_elements(By.CSS_SELECTOR, ".steer-inline-result .notice.error"), what="refusal"
    )[0]
    assert "Steering refused" in err.text and "API key" in err.text and "steer role" in err.text
    assert [m for m in console_errors(d) if "status of 401" not in m] == []
    d.execute_script(
        "const k = document.querySelector('header input[type=password]'); k.value = arguments[0]; k.dispatchEvent(new Event('change'))",
        KEY,
    )
    d.find_element(By.CSS_SELECTOR, "form.steer.inline button").click()
    _wait(
        d,
        lambda drv: (
            drv.find_elements(By.CSS_SELECTOR, ".steer-inline-result .gen.steered")
            or drv.find_elements(By.CSS_SELECTOR, ".steer-inline-result .notice.error")
        ),
        timeout=180,
        what="steer result",
    )
    errs = d.find_elements(By.CSS_SELECTOR, ".steer-inline-result .notice.error")
    assert not errs, errs[0].text
    base_text = d.find_element(By.CSS_SELECTOR, ".steer-inline-result .gen.baseline").text
    steered = d.find_element(By.CSS_SELECTOR, ".steer-inline-result .gen.steered").text
    assert base_text.startswith("baseline") and steered.startswith("steered (strength 6)")
    marked = d.find_elements(By.CSS_SELECTOR, ".steer-inline-result .gen.steered ins")
    summary = d.find_element(By.CSS_SELECTOR, ".steer-inline-result p.hint").text
    assert summary.startswith(f"{len(marked)} of ")
    assert d.find_element(By.CSS_SELECTOR, "[data-panel=steering]").get_attribute("data-has-data") == "true"
    assert "strength=6" in d.current_url
    PANELS_SEEN.append("feature:steering")
    shot(d, "feature-steering")
    d.execute_script("sessionStorage.clear()")
    no_console_errors(d)


def test_page_load_p95(browser: Any, site: dict[str, Any], graph: Graph) -> None:
    """Feature-page and overview p95 load (full page load, warm server) on ATLAS_DASHBOARD_BENCH_ATLAS (the default
    atlas, bench/bench_dashboard.py) or the planted one; recorded, not asserted as a timing."""
    d, base = browser, site["base"]
    atlas = os.environ.get("ATLAS_DASHBOARD_BENCH_ATLAS") or site["atlas"]
    rows = graph.read(
        "MATCH (f:Feature {atlas: $a}) WHERE f.page IS NOT NULL RETURN f.uid AS uid ORDER BY f.uid LIMIT 2000",
        {"a": atlas},
    )
    assert rows, f"atlas {atlas} has no feature pages"
    import random

    uids = random.Random(0).sample([r["uid"] for r in rows], min(30, len(rows)))

    def timed(url: str, want: str) -> float:
        load(d, url)
        _wait(d, lambda drv: drv.find_elements("css selector", want), what=want)
        return float(d.execute_script("return Number(document.querySelector('main').dataset.readyAt)"))

    timed(f"{base}/#/feature/{uids[0].replace('/', '%2F')}", "[data-panel=examples]")  # warm-up
    feature_ms = [timed(f"{base}/#/feature/{u.replace('/', '%2F')}", "[data-panel=examples]") for u in uids]
    overview_ms = [timed(f"{base}/#/atlases?atlas={atlas}", "[data-panel=categories]") for _ in range(20)]
    no_console_errors(d)
    out = os.environ.get("ATLAS_DASHBOARD_PAGES_BENCH")
    if out:
        from queries.feature_pages import page_bytes

        def p95(xs: list[float]) -> float:
            ys = sorted(xs)
            return round(ys[min(len(ys) - 1, round(0.95 * (len(ys) - 1)))], 1)

        sizes = page_bytes(graph, atlas)
        Path(out).write_text(
            json.dumps(
                {
                    "atlas": atlas,
                    "feature_page_p95_ms": p95(feature_ms),
                    "feature_page_median_ms": round(statistics.median(feature_ms), 1),
                    "feature_page_runs_ms": feature_ms,
                    "overview_page_p95_ms": p95(overview_ms),
                    "overview_page_median_ms": round(statistics.median(overview_ms), 1),
                    "overview_page_runs_ms": overview_ms,
                    "paged_features": sizes["n"],
                    "bytes_per_feature": round(float(sizes["mean_chars"] or 0), 1),
                    "panels": sorted(set(PANELS_SEEN)),
                },
                indent=2,
            )
        )

"""Interventions on a tiny random Llama with synthetic SAEs: exact displacement for additive steering,
exact removal for r = 0, exact schedule coefficients, strategy selection, seeded generation."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from queries.errors import InvalidInput
from queries.flow_graph import FlowEdge, FlowGraph, FlowNode
from queries.ids import FeatureRef, Module, parse_uid
from saes.manifest import AtlasManifest, SAEEntry
from saes.saelens_format import save_sae_dir
from saes.sources import SAEWeights
from steering.generate import GenerationConfig, generate
from steering.hooks import HookPoint, capture, run_capture
from steering.interventions import (
    Mode,
    Schedule,
    SteerFeature,
    Strategy,
    Units,
    compile_plan,
    merge_features,
    schedule_coefficient,
    select_from_graph,
)
from steering.model import LoadedModel
from steering.saes import SAEBank
from tests.factories import tiny_llama

D = 64
D_SAE = 32
ATLAS = "tiny-atlas"


def _unit_sae(rng: np.random.Generator, architecture: str = "standard") -> SAEWeights:
    """Unit-norm decoder rows with the tied encoder W_enc = W_dec.T, so w_i·d_i = 1 (r = 0 then removes exactly)."""
    rows = rng.standard_normal((D_SAE, D)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return SAEWeights(
        W_dec=rows * 1.0,
        W_enc=rows.T.copy(),
        b_enc=np.zeros(D_SAE, np.float32),
        b_dec=np.zeros(D, np.float32),
        threshold=np.full(D_SAE, 1e-6, np.float32) if architecture == "jumprelu" else None,
        architecture=architecture,
    )


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_llama(seed=1, d_model=D)


@pytest.fixture(scope="module")
def bank(tiny: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> SAEBank:
    folder = tmp_path_factory.mktemp("atlas")
    rng = np.random.default_rng(0)
    entries = []
    for layer in range(tiny.n_layers):
        for mod in Module:
            arch = "jumprelu" if mod is Module.MLP else "standard"
            save_sae_dir(folder / f"{layer}-{mod.value}", _unit_sae(rng, arch))
            entries.append(SAEEntry(layer, mod, path=f"{layer}-{mod.value}"))
    return SAEBank(AtlasManifest(ATLAS, "tiny", D, entries, base_dir=folder), tiny)


def _ids(tiny: LoadedModel) -> torch.Tensor:
    return tiny.tokenizer("the atlas of features flows", return_tensors="pt").input_ids


def ref(layer: int, module: str, index: int) -> FeatureRef:
    return FeatureRef(ATLAS, layer, Module(module), index)


def test_additive_moves_hidden_state_by_exactly_s_d(tiny: LoadedModel, bank: SAEBank) -> None:
    ids = _ids(tiny)
    res1 = HookPoint(1, Module.RES)
    base = run_capture(tiny, [res1], ids)[res1]
    s1, s2 = 3.5, -2.0
    plan = compile_plan([SteerFeature(ref(1, "mlp", 4), s1), SteerFeature(ref(1, "mlp", 9), s2)], bank, units=Units.RAW)
    with plan.apply(tiny):
        moved = run_capture(tiny, [res1], ids)[res1]
    d = bank.get(HookPoint(1, Module.MLP)).W_dec
    expected = s1 * d[4] + s2 * d[9]
    torch.testing.assert_close(moved - base, expected.expand_as(base), rtol=1e-4, atol=1e-5)  # every position
    after = run_capture(tiny, [res1], ids)[res1]
    torch.testing.assert_close(after, base, rtol=0, atol=0)  # hooks removed


def test_activation_units_scale_by_typical_activation(tiny: LoadedModel, bank: SAEBank) -> None:
    point = HookPoint(2, Module.RES)
    typical = bank.typical_activation(point)
    assert typical.shape == (D_SAE,) and bool((typical > 0).all())
    plan = compile_plan([SteerFeature(ref(2, "res", 5), 2.0)], bank, units=Units.ACTIVATION)
    applied = plan.applied[0]
    assert applied.unit == pytest.approx(float(typical[5]))
    assert applied.vector_norm == pytest.approx(2.0 * float(typical[5]), rel=1e-5)  # unit-norm decoder row
    torch.testing.assert_close(plan.ops[point].add, 2.0 * typical[5] * bank.get(point).W_dec[5])


@pytest.mark.parametrize("point", [HookPoint(1, Module.RES), HookPoint(2, Module.MLP), HookPoint(0, Module.ATT)])
def test_rescale_zero_removes_the_feature_activation(tiny: LoadedModel, bank: SAEBank, point: HookPoint) -> None:
    ids = _ids(tiny)
    sae = bank.get(point)
    before = sae.encode(run_capture(tiny, [point], ids)[point])[0]  # [T, d_sae]
    idx = int(before.sum(0).argmax())
    peak = float(before[:, idx].max())
    assert peak > 1e-5  # the feature is active somewhere, so removing it is a real test
    plan = compile_plan([SteerFeature(FeatureRef(ATLAS, point.layer, point.module, idx), 0.0, Mode.RESCALE)], bank)
    with plan.apply(tiny), torch.no_grad(), capture(tiny, [point]) as acts:
        tiny.model(input_ids=ids)
    after = sae.encode(acts[point])[0]
    assert float(after[:, idx].abs().max()) < 1e-4 * peak
    # r = 2 doubles the feature's reconstruction term: h' = h + a·d, so the activation doubles (w·d = 1)
    plan2 = compile_plan([SteerFeature(FeatureRef(ATLAS, point.layer, point.module, idx), 2.0, Mode.RESCALE)], bank)
    with plan2.apply(tiny), torch.no_grad(), capture(tiny, [point]) as acts2:
        tiny.model(input_ids=ids)
    h = run_capture(tiny, [point], ids)[point]
    a = before[:, idx]
    torch.testing.assert_close(
        acts2[point][0] - h[0], a[:, None] * sae.W_dec[idx][None, :], rtol=1e-4, atol=1e-4 * peak
    )


def test_schedules_are_exact() -> None:
    s = 6.0
    assert schedule_coefficient(Schedule.CONSTANT, s, 9, 3, 12) == s
    assert schedule_coefficient(Schedule.EXPONENTIAL, s, 3, 3, 12) == s
    assert schedule_coefficient(Schedule.EXPONENTIAL, s, 10, 3, 12, alpha=-0.05) == pytest.approx(s * math.exp(-0.35))
    assert schedule_coefficient(Schedule.EXPONENTIAL, s, 5, 3, 12, alpha=-0.25) == pytest.approx(s * math.exp(-0.5))
    # linear: s at l_start, s* = 1 at l_end, straight line between
    assert schedule_coefficient(Schedule.LINEAR, s, 3, 3, 13) == pytest.approx(6.0)
    assert schedule_coefficient(Schedule.LINEAR, s, 13, 3, 13) == pytest.approx(1.0)
    assert schedule_coefficient(Schedule.LINEAR, s, 8, 3, 13) == pytest.approx(3.5)
    assert schedule_coefficient(Schedule.LINEAR, s, 8, 3, 13, final=0.0) == pytest.approx(3.0)
    assert schedule_coefficient(Schedule.LINEAR, s, 5, 5, 5) == s


def _graph() -> FlowGraph:
    def node(layer: int, module: str, index: int) -> FlowNode:
        return FlowNode(f"{ATLAS}/{layer}-{module}/{index}", ATLAS, layer, Module(module), index)

    nodes = [
        node(1, "res", 7),
        node(2, "mlp", 3),
        node(2, "res", 1),
        node(3, "att", 2),
        node(3, "res", 4),
        node(4, "res", 8),
    ]
    edges = [
        FlowEdge(nodes[0].uid, nodes[2].uid, 0.9),
        FlowEdge(nodes[1].uid, nodes[2].uid, 0.4),
        FlowEdge(nodes[2].uid, nodes[4].uid, 0.8),
        FlowEdge(nodes[3].uid, nodes[4].uid, 0.3),
        FlowEdge(nodes[4].uid, nodes[5].uid, 0.7),
    ]
    return FlowGraph(seeds=[nodes[4].uid], nodes=nodes, edges=edges)


def test_strategies_select_the_paper_sets() -> None:
    g = _graph()
    seeds = select_from_graph(g, Strategy.SEEDS, 4.0)
    assert [(f.ref.short, f.coefficient) for f in seeds] == [("3/res/4", 4.0)]
    single = select_from_graph(g, Strategy.SINGLE, 4.0, layer=2)
    assert sorted(f.ref.short for f in single) == ["2/mlp/3", "2/res/1"]
    assert {f.coefficient for f in single} == {4.0}
    assert sorted(f.ref.short for f in select_from_graph(g, Strategy.SINGLE, 4.0)) == [
        "3/att/2",
        "3/res/4",
    ]  # seed's layer
    cum = select_from_graph(g, Strategy.CUMULATIVE, 4.0, layer=3, schedule=Schedule.LINEAR)
    assert sorted(f.ref.short for f in cum) == ["1/res/7", "2/mlp/3", "2/res/1", "3/att/2", "3/res/4"]
    coef = {f.ref.short: f.coefficient for f in cum}
    # span l_start=1, l_end=4: k = (1-4)/3 = -1 → 4, 3, 2 at layers 1, 2, 3
    assert coef == pytest.approx({"1/res/7": 4.0, "2/mlp/3": 3.0, "2/res/1": 3.0, "3/att/2": 2.0, "3/res/4": 2.0})
    assert len(select_from_graph(g, Strategy.CUMULATIVE, 4.0)) == 6  # default l = l_end
    merged = merge_features(cum + [SteerFeature(parse_uid(f"{ATLAS}/1-res/7"), -9.0)])
    assert {f.ref.short: f.coefficient for f in merged}["1/res/7"] == -9.0 and len(merged) == 5


def test_bad_plans_fail_clearly(tiny: LoadedModel, bank: SAEBank) -> None:
    with pytest.raises(InvalidInput, match=r"feature index 99 is out of range .*valid: 0–31"):
        compile_plan([SteerFeature(ref(1, "res", 99), 1.0)], bank)
    with pytest.raises(InvalidInput, match="strength inf is not valid"):
        compile_plan([SteerFeature(ref(1, "res", 1), float("inf"))], bank)
    with pytest.raises(InvalidInput, match="belongs to atlas 'other'"):
        compile_plan([SteerFeature(FeatureRef("other", 1, Module.RES, 1), 1.0)], bank)
    with pytest.raises(InvalidInput, match=r"layer 9 is out of range"):
        compile_plan([SteerFeature(ref(9, "res", 1), 1.0)], bank)


def test_bank_rejects_atlas_that_does_not_fit(tiny: LoadedModel, tmp_path: Path) -> None:
    save_sae_dir(tmp_path / "0-res", SAEWeights(W_dec=np.ones((4, 32), np.float32)))
    with pytest.raises(InvalidInput, match=r"d_model 32, but model tiny-llama-1 has d_model 64"):
        SAEBank(AtlasManifest(ATLAS, "tiny", 32, [SAEEntry(0, Module.RES, path="0-res")], base_dir=tmp_path), tiny)
    bank = SAEBank(AtlasManifest(ATLAS, "tiny", None, [SAEEntry(0, Module.RES, path="0-res")], base_dir=tmp_path), tiny)
    with pytest.raises(InvalidInput, match=r"reads d_in = 32, but model tiny-llama-1 has d_model 64"):
        bank.get(HookPoint(0, Module.RES))


def test_generation_is_seeded_and_steering_changes_it(tiny: LoadedModel, bank: SAEBank) -> None:
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=5)
    a = generate(tiny, ["I think ", "hello"], cfg)
    b = generate(tiny, ["I think ", "hello"], cfg)
    assert a.texts == b.texts and len(a.texts) == 2
    assert (
        generate(
            tiny, ["I think ", "hello"], GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=6)
        ).texts
        != a.texts
    )
    plan = compile_plan([SteerFeature(ref(l, "res", 3), 40.0) for l in range(tiny.n_layers)], bank, units=Units.RAW)
    greedy = GenerationConfig(max_new_tokens=12, temperature=0)
    steered = generate(tiny, ["I think "], greedy, plan)
    assert steered.texts == generate(tiny, ["I think "], greedy, plan).texts
    assert steered.texts != generate(tiny, ["I think "], greedy).texts
    assert a.new_tokens > 0 and a.tokens_per_s > 0


def test_concurrent_requests_do_not_interleave_hooks(tiny: LoadedModel, bank: SAEBank) -> None:
    greedy = GenerationConfig(max_new_tokens=10, temperature=0)
    plans = [None] + [compile_plan([SteerFeature(ref(1, "res", i), 30.0)], bank, units=Units.RAW) for i in (1, 2, 3)]
    expected = [generate(tiny, ["abc"], greedy, p).texts for p in plans]
    results: dict[int, list[str]] = {}

    def worker(i: int) -> None:
        for _ in range(3):
            out = generate(tiny, ["abc"], greedy, plans[i]).texts
            if results.setdefault(i, out) != out:
                results[i] = ["MISMATCH"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(plans))] == expected


def test_generation_limits() -> None:
    tiny = tiny_llama(seed=2)
    for cfg, msg in [
        (GenerationConfig(max_new_tokens=0), "maxNewTokens 0"),
        (GenerationConfig(max_new_tokens=10_000), "maxNewTokens 10000"),
        (GenerationConfig(temperature=-1), "temperature -1"),
        (GenerationConfig(top_p=0), "topP 0"),
    ]:
        with pytest.raises(InvalidInput, match=msg):
            generate(tiny, ["x"], cfg)
    with pytest.raises(InvalidInput, match="prompt #1 is empty"):
        generate(tiny, ["  "], GenerationConfig())
    with pytest.raises(InvalidInput, match="no prompt"):
        generate(tiny, [], GenerationConfig())

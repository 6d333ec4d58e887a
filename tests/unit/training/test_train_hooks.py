"""`atlas train --res-hook/--mlp-hook NAME`: SAEs trained on any d_model hook the model has (TransformerLens
names resolved by steering.architectures), saved with that hook name; bad names list the valid ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from atlas_cli.main import app
from saes.manifest import load_manifest
from saes.saelens_format import load_sae_dir
from steering.hooks import run_capture
from steering.model import load_model
from tests.factories import tiny_hf


def _save(tmp_path: Path, arch: str) -> Path:
    model_dir = tmp_path / arch
    hf, tok = tiny_hf(arch, seed=4, spread=1.0)
    hf.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return model_dir


def _args(model_dir: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        *("--model", str(model_dir), "--name", "tiny-hooks", "--layers", "0-1", "--modules", "res,mlp"),
        *("--width", "32", "--k", "4", "--tokens", "1000", "--corpus", str(corpus), "--seq-len", "32"),
        *("--batch-seqs", "4", "--heldout-tokens", "200", "--held-out-fraction", "0.25", "--out", str(out)),
        *extra,
    ]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["norm", "gain", "river", "stone", "token", "layer", "mid"]
    (d / "docs.jsonl").write_text("\n".join(json.dumps({"text": " ".join(rng.choice(words, 60))}) for _ in range(20)))
    return d


def test_saes_read_the_named_hooks(tmp_path: Path, corpus: Path) -> None:
    model_dir = _save(tmp_path, "llama")
    out = tmp_path / "atlas"
    extra = ("--res-hook", "hook_resid_pre", "--mlp-hook", "blocks.{L}.ln2.hook_normalized")
    res = CliRunner().invoke(app, _args(model_dir, corpus, out, *extra))
    assert res.exit_code == 0, res.output
    manifest = load_manifest(out / "atlas.toml")
    lm = load_model(str(model_dir))
    text = json.loads((corpus / "docs.jsonl").read_text().splitlines()[0])["text"]
    ids = torch.tensor([lm.tokenizer(text)["input_ids"][:32]])
    names = [
        "blocks.1.hook_resid_pre",
        "blocks.1.ln2.hook_normalized",
        "blocks.1.hook_resid_post",
        "blocks.1.hook_mlp_out",
    ]
    acts = {n: a[0, 1:].mean(0).numpy() for n, a in run_capture(lm, names, ids).items()}
    for module, hook, other in (("res", names[0], names[2]), ("mlp", names[1], names[3])):
        entry = next(e for e in manifest.saes if e.layer == 1 and e.module.value == module)
        w = load_sae_dir(out / str(entry.path))
        assert w.hook_name == hook
        # b_dec starts at the mean of the activations the SAE reads (1,000 tokens move it little): it sits by
        # the named hook's mean, not by the module's default hook's
        b = np.asarray(w.b_dec, dtype=np.float64)
        assert np.linalg.norm(b - acts[hook]) < 0.6 * np.linalg.norm(b - acts[other])


def test_bad_hook_names_list_the_valid_ones(tmp_path: Path, corpus: Path) -> None:
    llama = _save(tmp_path, "llama")
    for extra, says in (
        (("--mlp-hook", "mlp.hook_post"), "mlp hook 'mlp.hook_post' is not valid (valid: hook_resid_pre"),
        (("--res-hook", "attn.hook_z"), "res hook 'attn.hook_z' is not valid"),
        (("--res-hook", "blocks.{L}.hook_resid_middle"), "hook_resid_mid, ln2.hook_normalized"),
    ):
        res = CliRunner().invoke(app, _args(llama, corpus, tmp_path / "x", *extra))
        assert res.exit_code != 0 and says in (res.output + str(res.exception)), (extra, res.output, res.exception)
    # GPT-NeoX's parallel blocks have no hook_resid_mid: the model's own list of valid names
    neox = _save(tmp_path, "gpt_neox")
    res = CliRunner().invoke(app, _args(neox, corpus, tmp_path / "y", "--res-hook", "hook_resid_mid"))
    msg = res.output + str(res.exception)
    assert res.exit_code != 0 and "is not valid for this gpt_neox model" in msg and "hook_resid_mid," not in msg
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "atlas.toml").exists()

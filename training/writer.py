"""The job's output: one SAELens folder per SAE (weights, cfg.json with the held-out metrics and recipe in its
metadata, feature labels), ``atlas.toml`` for ``atlas ingest``, and the per-SAE metrics (training.train writes
``metrics.json`` from them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.job import TrainingJob
from training.phases import HeldOut, TrainedBank
from training.spec import TrainSpec


@dataclass
class WrittenAtlas:
    manifest_path: Path
    sae_metrics: list[dict[str, Any]]  # the atlas's SAEs, in bank order
    ceiling_metrics: list[dict[str, Any]]  # the seed-ceiling copies (controls, not ingested as features)


def write_atlas(job: TrainingJob, trained: TrainedBank, heldout: HeldOut) -> WrittenAtlas:
    from saes.manifest import AtlasManifest, SAEEntry
    from saes.saelens_format import save_sae_dir
    from saes.sources import SAEWeights
    from saes.synthetic import HOOK_NAMES
    from training.labels import LABELS_FILE, feature_rows, write_labels_file

    spec, out_dir = job.spec, job.out_dir
    entries: list[SAEEntry] = []
    ceilings: list[SAEEntry] = []
    sae_metrics: list[dict[str, Any]] = []
    ceiling_metrics: list[dict[str, Any]] = []
    host_bank = job.bank.cpu() if job.device != "cpu" else job.bank
    for i, (src, group) in enumerate(zip(job.layout.sources, job.layout.groups, strict=True)):
        p = job.points[src]
        rel = f"saes/{p.layer}-{p.module.value}" + (f"-seed{spec.seed + group}" if group else "")
        sae_dir = out_dir / rel
        w = host_bank.export(i)
        read = job.reads[src]
        hook_name = read if isinstance(read, str) else HOOK_NAMES[p.module].format(L=p.layer)
        save_sae_dir(
            sae_dir,
            SAEWeights(
                W_dec=w["W_dec"],
                W_enc=w["W_enc"],
                b_enc=w["b_enc"],
                b_dec=w["b_dec"],
                k=spec.k_for(p.module.value),
                architecture="topk",
                hook_name=hook_name,
            ),
            model_name=job.model_name,
        )
        m = {
            "layer": p.layer,
            "module": p.module.value,
            "hook_name": hook_name,
            "d_sae": spec.d_sae,
            "k": spec.k_for(p.module.value),
            **heldout.results[i],
            "train_tokens": trained.tokens_trained,
            "unique_train_tokens": trained.unique_tokens,
            "epochs": spec.epochs,
        }
        add_training_metadata(sae_dir, m, spec)
        if group:  # a seed-ceiling SAE: a control, not part of the atlas's features (no labels)
            ceilings.append(SAEEntry(layer=p.layer, module=p.module, path=rel))
            ceiling_metrics.append({**m, "seed": spec.seed + group})
            continue
        rows = feature_rows(
            job.loaded.tokenizer, heldout.sequences, spec.seq_len, heldout.top, i, heldout.frequencies[i]
        )
        write_labels_file(sae_dir / LABELS_FILE, rows)
        entries.append(SAEEntry(layer=p.layer, module=p.module, path=rel))
        sae_metrics.append(m)
    manifest = AtlasManifest(
        name=spec.atlas,
        model=job.model_name,
        d_model=job.loaded.d_model,
        saes=entries,
        base_dir=out_dir,
        ceilings=ceilings,
        revision=spec.spec_hash(),
    )
    return WrittenAtlas(manifest.write(out_dir / "atlas.toml"), sae_metrics, ceiling_metrics)


def add_training_metadata(sae_dir: Path, m: dict[str, Any], spec: TrainSpec) -> None:
    """Record the held-out metrics and the training recipe in cfg.json's metadata (SAELens keeps
    unknown metadata keys), so the numbers travel with the SAE."""
    cfg_path = sae_dir / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    meta = cfg.setdefault("metadata", {})
    meta["training"] = {
        "trainer": "feature-atlas TopK (AuxK)",
        "explained_variance_heldout": m["explained_variance"],
        "explained_variance_without_outliers_heldout": m.get("explained_variance_without_outliers"),
        "l0_heldout": m["l0"],
        "dead_fraction_heldout": m["dead_fraction"],
        "heldout_tokens": m["heldout_tokens"],
        "train_tokens": m["train_tokens"],
        "corpus": spec.corpus,
        "lr": spec.lr,
        "seq_len": spec.seq_len,
    }
    cfg_path.write_text(json.dumps(cfg, indent=2))

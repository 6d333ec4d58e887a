"""The training job: corpus → one forward pass per batch → a bank of TopK SAEs → SAELens dirs + atlas.toml.

Output folder layout (``out_dir``)::

    atlas.toml                      ready for ``atlas ingest`` (paths relative to it)
    saes/{layer}-{module}/          SAELens format: cfg.json + sae_weights.safetensors
                                    (+ feature_labels.jsonl: top contexts and frequency per feature)
    metrics.json                    spec, per-SAE held-out EV / L0 / dead fraction, timings
    checkpoint.pt                   while training (removed when the job completes)

Invariants
- The job is cached by its spec: a folder whose ``metrics.json`` carries the same ``spec_hash`` is
  returned as is (``atlas demo``'s second run takes seconds).
- A checkpoint every ``checkpoint_every`` steps stores the bank, the optimiser and how many sequences
  were consumed, so an interrupted run resumes where it stopped, on the same data order.
- Metrics are measured on held-out tokens only (training.corpus splits by chunk hash).

The job's parts live apart, as SAELens keeps runner, trainer and checkpointing apart: training.spec (what
determines an atlas), training.job (the prepared state), training.phases (train, held-out), training.checkpoint,
training.writer (SAELens dirs, labels, atlas.toml). This module runs them in order and caches by spec.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.checkpoint import CHECKPOINT_FILE, Checkpointer
from training.metrics import summarise
from training.spec import DEFAULT_HOOKS, TRAINABLE_HOOKS, TrainSpec, normalize_hook, parse_layers

if TYPE_CHECKING:
    from steering.model import LoadedModel
    from training.settings import TrainingSettings

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_HOOKS",
    "METRICS_FILE",
    "TRAINABLE_HOOKS",
    "TrainResult",
    "TrainSpec",
    "load_cached",
    "machine_description",
    "normalize_hook",
    "parse_layers",
    "peak_rss_mib",
    "train_atlas",
]

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


@dataclass
class TrainResult:
    out_dir: Path
    manifest_path: Path
    metrics: dict[str, Any]
    cached: bool

    @property
    def saes(self) -> list[dict[str, Any]]:
        return list(self.metrics["saes"])


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_description() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def load_cached(out_dir: Path, spec: TrainSpec) -> TrainResult | None:
    mpath = out_dir / METRICS_FILE
    if not mpath.is_file() or not (out_dir / "atlas.toml").is_file():
        return None
    try:
        metrics = json.loads(mpath.read_text())
    except json.JSONDecodeError:
        return None
    if metrics.get("spec_hash") != spec.spec_hash():
        return None
    return TrainResult(out_dir, out_dir / "atlas.toml", metrics, cached=True)


def train_atlas(
    spec: TrainSpec,
    out_dir: Path,
    *,
    loaded: LoadedModel | None = None,
    settings: TrainingSettings | None = None,
    progress: bool = True,
    resume: bool = True,
    force: bool = False,
) -> TrainResult:
    """Train one TopK SAE per (layer, module) of ``spec`` and write an ingestable atlas into ``out_dir``."""
    out_dir = Path(out_dir)
    if not force:
        cached = load_cached(out_dir, spec)
        if cached is not None:
            log.info("atlas %s is already trained in %s (spec %s)", spec.atlas, out_dir, spec.spec_hash())
            return cached

    from training.job import prepare_job
    from training.phases import evaluate_heldout, train_bank
    from training.settings import TrainingSettings
    from training.writer import write_atlas

    started = time.perf_counter()
    job = prepare_job(spec, out_dir, loaded, settings or TrainingSettings(), started)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpointer(out_dir / CHECKPOINT_FILE, spec.spec_hash(), job.trainer, spec.checkpoint_every)
    pos = ckpt.resume(spec.atlas) if resume else ckpt.resume_nothing()

    trained = train_bank(job, ckpt, pos, progress=progress)
    timings = job.timings
    timings["train_total_s"] = round(trained.train_s, 2)
    timings["forward_s"] = round(trained.forward_s, 2)
    timings["sae_step_s"] = round(trained.train_s - trained.forward_s, 2)
    timings["phase1_s"] = round(trained.phase1_s, 2)

    heldout = evaluate_heldout(job, progress=progress)
    timings["heldout_s"] = round(heldout.seconds, 2)

    t = time.perf_counter()
    written = write_atlas(job, trained, heldout)
    timings["write_s"] = round(time.perf_counter() - t, 2)
    timings["total_s"] = round(time.perf_counter() - started, 2)
    metrics = {
        "spec_hash": spec.spec_hash(),
        "spec": asdict(spec),
        "model": job.model_name,
        "corpus": str(job.corpus_path),
        "saes": written.sae_metrics,
        "ceiling_saes": written.ceiling_metrics,
        "summary": summarise(written.sae_metrics),
        "tokens_trained": trained.tokens_trained,
        "unique_train_tokens": trained.unique_tokens,
        "timings": timings,
        "forward_tokens_per_s": round(
            (trained.unique_tokens + heldout.tokens) / max(1e-9, trained.forward_s + timings["heldout_s"]), 1
        ),
        "train_tokens_per_s_per_sae": round(
            trained.tokens_trained * job.layout.n / max(1e-9, trained.train_s - trained.forward_s), 1
        ),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "machine": machine_description(),
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    ckpt.remove()
    return TrainResult(out_dir, written.manifest_path, metrics, cached=False)

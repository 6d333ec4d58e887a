"""One training job's prepared state: the model's hook points and what each SAE reads, the corpus split, the
bank of SAEs with its trainer, and (for ``epochs > 1``) the activation cache. Built once by
:func:`prepare_job`; the phases (training.phases) and the writer (training.writer) read it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from queries.errors import InvalidInput
from queries.ids import Module
from training.spec import DEFAULT_HOOKS, TrainSpec

if TYPE_CHECKING:
    from steering.hooks import HookPoint
    from steering.model import LoadedModel
    from training.corpus import CorpusSplit
    from training.loop import ActivationCache, BankLayout
    from training.sae import BankTrainer, TopKBank
    from training.settings import TrainingSettings

log = logging.getLogger(__name__)


@dataclass
class TrainingJob:
    spec: TrainSpec
    out_dir: Path
    loaded: LoadedModel
    device: str
    model_name: str
    points: list[HookPoint]  # in (layer, module-in-spec-order) order: stable SAE indices
    reads: list[HookPoint | str]  # per point: its module's standard point, or the hook the spec names
    corpus_path: Path
    split: CorpusSplit
    layout: BankLayout
    bank: TopKBank
    trainer: BankTrainer
    cache: ActivationCache | None
    timings: dict[str, float]

    @property
    def tokens_per_seq(self) -> int:
        return self.spec.tokens_per_seq

    @property
    def total_seqs(self) -> int:
        return self.spec.total_seqs

    @property
    def n_points(self) -> int:
        return len(self.points)


def prepare_job(
    spec: TrainSpec, out_dir: Path, loaded: LoadedModel | None, settings: TrainingSettings, started: float
) -> TrainingJob:
    """Load the model (unless given), check the hook points, split the corpus and build the bank (seeded by
    ``spec.seed`` right before the bank is initialised)."""
    import torch

    from steering.hooks import HookPoint, validate_points
    from steering.model import DEFAULT_MODEL, load_model
    from training.corpus import load_split, resolve_corpus
    from training.loop import ActivationCache, BankLayout, total_steps
    from training.sae import BankTrainer, TopKBank, TopKConfig

    timings: dict[str, float] = {}
    device = spec.resolved_device()
    if loaded is None:
        loaded = load_model(spec.model, device=device)
    timings["model_load_s"] = round(time.perf_counter() - started, 2)
    model_name = spec.model or loaded.name or DEFAULT_MODEL
    points = validate_points(loaded, [HookPoint(layer, Module(m)) for layer in spec.layers for m in spec.modules])
    reads = resolve_reads(loaded, points, spec, model_name)

    t = time.perf_counter()
    corpus_path = resolve_corpus(spec.corpus, settings)
    split = load_split(corpus_path, held_out_fraction=spec.held_out_fraction, text_field=spec.text_field)
    timings["corpus_s"] = round(time.perf_counter() - t, 2)
    log.info("corpus %s: %s", corpus_path, split.describe())

    torch.manual_seed(spec.seed)
    # The atlas's SAEs first, then the seed-ceiling copies of the seeded points (training.loop.BankLayout).
    n = len(points)
    seeded = [i for i, p in enumerate(points) if p.module.value in spec.seeded_modules] if spec.seeds > 1 else []
    layout = BankLayout.with_seeds(n, seeded, spec.seeds)
    cfg = TopKConfig(
        d_in=loaded.d_model,
        d_sae=spec.d_sae,
        k=max(spec.k_for(points[src].module.value) for src in layout.sources),
        ks=tuple(spec.k_for(points[src].module.value) for src in layout.sources) if spec.module_k else None,
        lr=spec.lr,
        dead_after_tokens=spec.dead_after_tokens,
        seed=spec.seed,
    )
    bank = TopKBank(layout.n, cfg).to(device)
    trainer = BankTrainer(bank, total_steps(spec.token_budget, spec.train_batch_tokens, spec.epochs))
    cache = None
    if spec.epochs > 1:
        cache_tokens = spec.total_seqs * spec.tokens_per_seq
        # d_model wide for every read (resolve_reads checked that every named hook has that width)
        need = ActivationCache.bytes_needed(n, cache_tokens, loaded.d_model)
        log.info(
            "epochs %g: caching %d tokens × %d points in memory (%.2f GiB, bf16)",
            spec.epochs,
            cache_tokens,
            n,
            need / 2**30,
        )
        cache = ActivationCache(n, cache_tokens, loaded.d_model)
    return TrainingJob(
        spec,
        out_dir,
        loaded,
        device,
        model_name,
        points,
        reads,
        corpus_path,
        split,
        layout,
        bank,
        trainer,
        cache,
        timings,
    )


def resolve_reads(
    loaded: LoadedModel, points: list[HookPoint], spec: TrainSpec, model_name: str
) -> list[HookPoint | str]:
    """The hook each point's SAE reads, checked on the loaded model: a name it lacks (e.g. ``hook_resid_mid`` of a
    parallel block) is InvalidInput listing its valid names; a hook not ``d_model`` wide (one run shares one width;
    ``attn.hook_z`` is ``n_heads·d_head``) is InvalidInput saying what to do instead."""
    import torch

    from steering.architectures import parse_hook_name
    from steering.hooks import run_capture

    reads: list[HookPoint | str] = []
    for p in points:
        hook = getattr(spec, f"{p.module.value}_hook")
        if hook == DEFAULT_HOOKS[p.module.value]:
            reads.append(p)
        else:
            reads.append(str(parse_hook_name(loaded.model, f"blocks.{p.layer}.{hook}")))
    named = [r for r in reads if isinstance(r, str)]
    if named:  # one 2-token forward measures each named hook's width
        ids = torch.zeros((1, 2), dtype=torch.long, device=loaded.device)
        with loaded.lock:
            acts = run_capture(loaded, named, ids, stop_early=True)
        for r in named:
            width = int(acts[r].flatten(2).shape[-1])
            if width != loaded.d_model:
                raise InvalidInput(
                    f"{r} of {model_name} is {width} wide but d_model is {loaded.d_model}; one training run shares one "
                    "width (train the SAEs of that hook alone with --modules, or read another hook)"
                )
    return reads

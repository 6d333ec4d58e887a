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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queries.errors import InvalidInput
from queries.ids import Module, check_atlas_name
from steering.architectures import HOOKS_IN_ORDER
from training.metrics import summarise

if TYPE_CHECKING:
    from steering.hooks import HookPoint
    from steering.model import LoadedModel
    from training.settings import TrainingSettings

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.pt"
SPEC_VERSION = 1


# Where each module's SAEs read by default (TransformerLens names, per layer); another hook is a spec choice.
DEFAULT_HOOKS = {"res": "hook_resid_post", "att": "hook_attn_out", "mlp": "hook_mlp_out"}
# Hooks an SAE can be trained on here: in d_model space (one run shares one width; ingest compares d_model rows),
# or attn.hook_z for att SAEs (ingest maps it through W_O). mlp.hook_post is d_mlp wide and has no such map.
TRAINABLE_HOOKS = tuple(h for h in HOOKS_IN_ORDER if h != "mlp.hook_post")
_BLOCK_PREFIX = re.compile(r"^blocks\.(\{L\}|\d+)\.")


def normalize_hook(module: str, name: str) -> str:
    """``"blocks.{L}.ln2.hook_normalized"`` or ``"ln2.hook_normalized"`` → ``"ln2.hook_normalized"``, checked.

    Raises InvalidInput listing the valid names (per layer; the model's own check comes in :func:`train_atlas`)."""
    hook = _BLOCK_PREFIX.sub("", name.strip())
    valid = [h for h in TRAINABLE_HOOKS if h != "attn.hook_z" or module == "att"]
    if hook not in valid:
        raise InvalidInput(
            f"{module} hook {name!r} is not valid (valid: {', '.join(valid)}, optionally written blocks.{{L}}.<hook>)"
        )
    return hook


_NO_DEFAULT = object()
# Options whose default stays out of the spec hash, so atlases trained before the option existed keep theirs.
_HASH_DEFAULTS: dict[str, Any] = {
    **{f"{m}_hook": h for m, h in DEFAULT_HOOKS.items()},
    "epochs": 1.0,
    "seeds": 1,
    "seed_modules": None,
    "module_k": None,
}


@dataclass
class TrainSpec:
    """Everything that determines a trained atlas (its hash names the cache entry)."""

    atlas: str
    model: str | None  # None → the offline SmolLM2 default
    layers: list[int]
    modules: list[str] = field(default_factory=lambda: ["res", "att", "mlp"])
    # the hook each module's SAEs read (TransformerLens per-layer names, steering.architectures.HOOKS_IN_ORDER);
    # e.g. att_hook = "attn.hook_z" (per-head space, mapped through W_O at ingest), mlp_hook = "ln2.hook_normalized"
    res_hook: str = DEFAULT_HOOKS["res"]
    att_hook: str = DEFAULT_HOOKS["att"]
    mlp_hook: str = DEFAULT_HOOKS["mlp"]
    d_sae: int = 2048
    k: int = 32
    lr: float = 2e-3
    token_budget: int = 200_000
    seq_len: int = 128
    seqs_per_batch: int = 8
    buffer_batches: int = 4
    train_batch_tokens: int = 1024
    heldout_tokens: int = 16_384
    held_out_fraction: float = 0.05
    corpus: str = "default"
    text_field: str = "text"
    dead_after_tokens: int = 50_000
    n_contexts: int = 5
    seed: int = 0
    checkpoint_every: int = 50
    # Passes over the training tokens: the first streams forward passes, later ones replay cached activations
    # (training.loop). Fractions allowed; > 1 holds the activations in memory (bf16).
    epochs: float = 1.0
    # SAEs per hook point of ``seed_modules`` (None: every module): the extra ones are the seed ceiling.
    seeds: int = 1
    seed_modules: list[str] | None = None
    # TopK k per module where it differs from ``k`` (e.g. {"att": 32, "mlp": 32}: res SAEs converge across layers
    # at a low k, att/mlp SAEs need more active latents to reconstruct their module's output)
    module_k: dict[str, int] | None = None
    device: str = "cpu"  # "cpu", "cuda" or "auto" (CUDA when available); not part of the cache key

    def __post_init__(self) -> None:
        check_atlas_name(self.atlas)
        self.modules = [Module.parse(m).value for m in self.modules]
        for m in DEFAULT_HOOKS:
            setattr(self, f"{m}_hook", normalize_hook(m, getattr(self, f"{m}_hook")))
        if not self.layers:
            raise InvalidInput("no layers chosen (give --layers, e.g. 4-9 or 3,5,7)")
        if any(layer < 0 for layer in self.layers):
            raise InvalidInput(f"layers {self.layers} are not valid (use layer indices ≥ 0)")
        self.layers = sorted(set(self.layers))
        for name in (
            "token_budget",
            "seq_len",
            "seqs_per_batch",
            "buffer_batches",
            "heldout_tokens",
            "train_batch_tokens",
        ):
            if getattr(self, name) <= 0:
                raise InvalidInput(f"{name} = {getattr(self, name)} is not valid (use a positive integer)")
        if self.seq_len < 8:
            raise InvalidInput(f"seq_len = {self.seq_len} is too short (use ≥ 8; 128 is the default)")
        if not 1.0 <= self.epochs <= 1000:
            raise InvalidInput(
                f"epochs = {self.epochs} is not valid (use 1 to 1000; fractions such as 2.5 are allowed)"
            )
        if not 1 <= self.seeds <= 8:
            raise InvalidInput(
                f"seeds = {self.seeds} is not valid (use 1, or 2+ to train seed-ceiling SAEs; at most 8)"
            )
        if self.module_k is not None:
            self.module_k = {Module.parse(m).value: int(v) for m, v in self.module_k.items()}
            if bad := {m: v for m, v in self.module_k.items() if not 0 < v <= self.d_sae}:
                raise InvalidInput(f"module k {bad} is not valid for d_sae = {self.d_sae} (use 1..d_sae)")
        if self.seed_modules is not None:
            self.seed_modules = [Module.parse(m).value for m in self.seed_modules]
            if missing := [m for m in self.seed_modules if m not in self.modules]:
                raise InvalidInput(
                    f"seed modules {missing} are not trained by this spec (modules: {', '.join(self.modules)})"
                )

    def k_for(self, module: str) -> int:
        return (self.module_k or {}).get(module, self.k)

    @property
    def seeded_modules(self) -> list[str]:
        return self.modules if self.seed_modules is None else self.seed_modules

    def spec_hash(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k != "device" and _HASH_DEFAULTS.get(k, _NO_DEFAULT) != v}
        return hashlib.sha256(json.dumps({"v": SPEC_VERSION, **d}, sort_keys=True).encode()).hexdigest()[:16]

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInput(
                f"device {self.device!r} was asked for but torch sees no CUDA GPU (use --device cpu or auto)"
            )
        return self.device


def parse_layers(text: str) -> list[int]:
    """``"4-9"`` → [4..9]; ``"3,5,7"``; ``"all"`` is resolved by the caller."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise InvalidInput(f"layers {text!r} are not valid (use e.g. '4-9', '3,5,7' or 'all')") from None
    return out


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

    import torch
    from tqdm.auto import tqdm

    from saes.manifest import AtlasManifest, SAEEntry
    from saes.saelens_format import save_sae_dir
    from saes.sources import SAEWeights
    from saes.synthetic import HOOK_NAMES
    from steering.hooks import HookPoint, validate_points
    from steering.model import DEFAULT_MODEL, load_model
    from training.activations import forward_batches, shuffled_training_batches
    from training.corpus import load_split, resolve_corpus
    from training.labels import LABELS_FILE, TopContexts, feature_rows, write_labels_file
    from training.loop import ActivationCache, BankLayout, run_phase2, total_steps
    from training.sae import BankTrainer, MetricsAccumulator, TopKBank, TopKConfig
    from training.settings import TrainingSettings

    settings = settings or TrainingSettings()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    device = spec.resolved_device()
    if loaded is None:
        loaded = load_model(spec.model, device=device)
    timings["model_load_s"] = round(time.perf_counter() - started, 2)
    model_name = spec.model or loaded.name or DEFAULT_MODEL
    points = validate_points(loaded, [HookPoint(layer, Module(m)) for layer in spec.layers for m in spec.modules])
    # what each SAE reads: its module's standard point, or the hook the spec names for that module
    reads = resolve_reads(loaded, points, spec, model_name)
    # Keep the points in (layer, module-in-spec-order) order for stable SAE indices.
    n = len(points)

    t = time.perf_counter()
    corpus_path = resolve_corpus(spec.corpus, settings)
    split = load_split(corpus_path, held_out_fraction=spec.held_out_fraction, text_field=spec.text_field)
    timings["corpus_s"] = round(time.perf_counter() - t, 2)
    log.info("corpus %s: %s", corpus_path, split.describe())

    torch.manual_seed(spec.seed)
    # The atlas's SAEs first, then the seed-ceiling copies of the seeded points (training.loop.BankLayout).
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
    tokens_per_seq = spec.seq_len - 1
    total_seqs = -(-spec.token_budget // tokens_per_seq)
    steps_total = total_steps(spec.token_budget, spec.train_batch_tokens, spec.epochs)
    trainer = BankTrainer(bank, steps_total)
    cache = None
    if spec.epochs > 1:
        cache_tokens = total_seqs * tokens_per_seq
        # d_model wide for every read (hook_z runs check above that the per-head space has that width)
        need = ActivationCache.bytes_needed(n, cache_tokens, loaded.d_model)
        log.info(
            "epochs %g: caching %d tokens × %d points in memory (%.2f GiB, bf16)",
            spec.epochs,
            cache_tokens,
            n,
            need / 2**30,
        )
        cache = ActivationCache(n, cache_tokens, loaded.d_model)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_FILE
    consumed_seqs, tokens_trained, phase1_steps = 0, 0, None
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=False)
        if state.get("spec_hash") == spec.spec_hash():
            trainer.load_state_dict(state["trainer"])
            consumed_seqs, tokens_trained = int(state["consumed_seqs"]), int(state["tokens_trained"])
            phase1_steps = state.get("phase1_steps")
            log.info("resuming %s from step %d (%d tokens trained)", spec.atlas, trainer.step_no, tokens_trained)
        else:
            log.warning("ignoring checkpoint %s: it was written for another spec", ckpt_path)

    def checkpoint() -> None:
        torch.save(
            {
                "spec_hash": spec.spec_hash(),
                "trainer": trainer.state_dict(),
                "consumed_seqs": consumed_seqs,
                "tokens_trained": tokens_trained,
                "phase1_steps": phase1_steps,
            },
            ckpt_path,
        )

    # --- phase 1: one forward per batch for all points, streamed through a small shuffle buffer ---
    t = time.perf_counter()
    fwd_s = 0.0
    in_phase2 = phase1_steps is not None
    rebuild = in_phase2 and cache is not None  # resumed after phase 1: re-run the forwards to refill the cache
    start_seqs = 0 if rebuild else consumed_seqs
    fb = forward_batches(
        loaded,
        reads,
        split.train,
        seq_len=spec.seq_len,
        seqs_per_batch=spec.seqs_per_batch,
        shuffle_seed=spec.seed,
        skip_sequences=start_seqs,
        max_sequences=max(0, total_seqs - start_seqs) if (rebuild or not in_phase2) else 0,
        keep_on_device=device != "cpu",
    )

    def timed(it: Any) -> Any:
        nonlocal fwd_s
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            fwd_s += time.perf_counter() - t0
            yield item

    bar = tqdm(
        total=steps_total * spec.train_batch_tokens,
        initial=trainer.step_no * spec.train_batch_tokens,
        unit="tok",
        desc=f"train {layout.n} SAEs" + (f" × {spec.epochs:g} epochs" if spec.epochs > 1 else ""),
        disable=not progress,
    )
    last_stats: dict[str, Any] = {}
    last_ckpt_step = trainer.step_no
    order_gen = torch.Generator().manual_seed(spec.seed + 7919 * (consumed_seqs + 1))
    for x, seqs_done in shuffled_training_batches(
        timed(fb), buffer_batches=spec.buffer_batches, seed=spec.seed + start_seqs
    ):
        if cache is not None:
            cache.append(x)
        if rebuild:
            continue
        # The seed-ceiling copies see each buffer in their own order (group 0 keeps the buffer's).
        orders: list[torch.Tensor | None] = [None] + [
            torch.randperm(x.shape[1], generator=order_gen).to(x.device) for _ in range(1, layout.n_groups)
        ]
        xb = layout.gather(x, orders)
        # Split the mixed buffer slice into training batches of about train_batch_tokens.
        for j, part in enumerate(torch.split(xb, spec.train_batch_tokens, dim=1)):
            if j > 0 and part.shape[1] < spec.train_batch_tokens // 4:
                continue  # a sliver at the end of a buffer carries too few tokens for a useful Adam step
            last_stats = trainer.step(part.to(device, non_blocking=True))
            tokens_trained += part.shape[1]
            bar.update(part.shape[1])
        consumed_seqs += seqs_done
        if last_stats:
            bar.set_postfix(
                nmse=f"{float(last_stats['nmse'].mean()):.3f}", dead=f"{float(last_stats['dead'].mean()):.3f}"
            )
            if trainer.step_no - last_ckpt_step >= spec.checkpoint_every:
                last_ckpt_step = trainer.step_no
                checkpoint()
    if phase1_steps is None:
        phase1_steps = trainer.step_no
    forward_done_s = time.perf_counter() - t

    # --- phase 2: more epochs over the cached activations (no forward passes) ---
    if cache is not None and cache.size:

        def step(xb: torch.Tensor) -> None:
            nonlocal tokens_trained, last_ckpt_step
            trainer.step(xb.to(device, non_blocking=True))
            tokens_trained += xb.shape[1]
            bar.update(xb.shape[1])
            if trainer.step_no - last_ckpt_step >= spec.checkpoint_every:
                last_ckpt_step = trainer.step_no
                checkpoint()

        run_phase2(
            cache,
            layout,
            batch_tokens=spec.train_batch_tokens,
            seed=spec.seed,
            step_no=trainer.step_no,
            phase1_steps=phase1_steps,
            total=steps_total,
            step=step,
        )
        del cache
    bar.close()
    train_s = time.perf_counter() - t
    timings["train_total_s"] = round(train_s, 2)
    timings["forward_s"] = round(fwd_s, 2)
    timings["sae_step_s"] = round(train_s - fwd_s, 2)
    timings["phase1_s"] = round(forward_done_s, 2)
    unique_tokens = min(tokens_trained, total_seqs * tokens_per_seq)

    # --- held-out: EV, L0, dead fraction, top contexts and frequencies, from one more streamed pass ---
    t = time.perf_counter()
    acc = MetricsAccumulator(
        layout.n, spec.d_sae, max_tokens=-(-spec.heldout_tokens // tokens_per_seq) * tokens_per_seq
    )
    top = TopContexts(n, spec.d_sae, spec.n_contexts)
    sequences: list[list[int]] = []
    offset = 0
    heldout_seqs = -(-spec.heldout_tokens // tokens_per_seq)
    bar = tqdm(total=heldout_seqs * tokens_per_seq, unit="tok", desc="held-out eval", disable=not progress)
    same_order: list[torch.Tensor | None] = [None] * layout.n_groups
    for b in forward_batches(
        loaded,
        reads,
        split.held_out,
        seq_len=spec.seq_len,
        seqs_per_batch=spec.seqs_per_batch,
        shuffle_seed=None,
        max_sequences=heldout_seqs,
    ):
        # In pieces of train_batch_tokens: dense pre-activations of every SAE must fit in memory.
        for piece in torch.split(layout.gather(b.acts, same_order), spec.train_batch_tokens, dim=1):
            recon, vals, idx = (t.cpu() for t in bank.reconstruct_raw(piece.to(device)))
            acc.update(piece, recon, vals, idx)
            top.update(vals[:n], idx[:n], offset)
            offset += piece.shape[1]
        sequences.extend(b.token_ids.tolist())
        bar.update(b.acts.shape[1])
    bar.close()
    results = acc.results()
    freqs = acc.frequencies()
    timings["heldout_s"] = round(time.perf_counter() - t, 2)

    # --- write SAELens dirs, labels, atlas.toml, metrics.json ---
    t = time.perf_counter()
    entries: list[SAEEntry] = []
    ceilings: list[SAEEntry] = []
    sae_metrics: list[dict[str, Any]] = []
    ceiling_metrics: list[dict[str, Any]] = []
    host_bank = bank.cpu() if device != "cpu" else bank
    for i, (src, group) in enumerate(zip(layout.sources, layout.groups, strict=True)):
        p = points[src]
        rel = f"saes/{p.layer}-{p.module.value}" + (f"-seed{spec.seed + group}" if group else "")
        sae_dir = out_dir / rel
        w = host_bank.export(i)
        read = reads[src]
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
            model_name=model_name,
        )
        m = {
            "layer": p.layer,
            "module": p.module.value,
            "hook_name": hook_name,
            "d_sae": spec.d_sae,
            "k": spec.k_for(p.module.value),
            **results[i],
            "train_tokens": tokens_trained,
            "unique_train_tokens": unique_tokens,
            "epochs": spec.epochs,
        }
        _add_training_metadata(sae_dir, m, spec)
        if group:  # a seed-ceiling SAE: a control, not part of the atlas's features (no labels)
            ceilings.append(SAEEntry(layer=p.layer, module=p.module, path=rel))
            ceiling_metrics.append({**m, "seed": spec.seed + group})
            continue
        write_labels_file(
            sae_dir / LABELS_FILE, feature_rows(loaded.tokenizer, sequences, spec.seq_len, top, i, freqs[i])
        )
        entries.append(SAEEntry(layer=p.layer, module=p.module, path=rel))
        sae_metrics.append(m)
    manifest = AtlasManifest(
        name=spec.atlas,
        model=model_name,
        d_model=loaded.d_model,
        saes=entries,
        base_dir=out_dir,
        ceilings=ceilings,
        revision=spec.spec_hash(),
    )
    manifest_path = manifest.write(out_dir / "atlas.toml")
    timings["write_s"] = round(time.perf_counter() - t, 2)
    timings["total_s"] = round(time.perf_counter() - started, 2)
    metrics = {
        "spec_hash": spec.spec_hash(),
        "spec": asdict(spec),
        "model": model_name,
        "corpus": str(corpus_path),
        "saes": sae_metrics,
        "ceiling_saes": ceiling_metrics,
        "summary": summarise(sae_metrics),
        "tokens_trained": tokens_trained,
        "unique_train_tokens": unique_tokens,
        "timings": timings,
        "forward_tokens_per_s": round((unique_tokens + offset) / max(1e-9, fwd_s + timings["heldout_s"]), 1),
        "train_tokens_per_s_per_sae": round(tokens_trained * layout.n / max(1e-9, train_s - fwd_s), 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "machine": machine_description(),
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    if ckpt_path.exists():
        ckpt_path.unlink()
    return TrainResult(out_dir, manifest_path, metrics, cached=False)


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


def _add_training_metadata(sae_dir: Path, m: dict[str, Any], spec: TrainSpec) -> None:
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

"""A bank of TopK sparse autoencoders trained together, one per hook point (Gao et al. 2024, "Scaling and
evaluating sparse autoencoders": TopK activation, AuxK loss for dead latents, tied initialisation).

Why a bank: every SAE of an atlas sees the same batch of tokens (one forward pass of the LM yields the
activations of all hook points), and stacking their weights as ``[n_saes, ...]`` turns n small matrix
products into one batched product — the fastest form on a 2-core CPU (measured: bench/bench_demo.py).
The SAEs stay mathematically independent: no parameter is shared and Adam is per element.

Invariants
- Inputs are scaled per SAE by a constant ``scale`` (set from the first batch so that E‖x‖² = d_in),
  which makes one learning rate fit residual, attention and MLP outputs alike. :meth:`TopKBank.export`
  folds the scale back, so saved SAEs read raw activations and return raw-scale reconstructions.
- Decoder rows have unit norm after every step (feature directions; ingest compares them by cosine).
- A latent is *dead* once it has not fired for ``dead_after_tokens`` training tokens; AuxK then trains
  the ``k_aux`` largest dead pre-activations to reconstruct the residual error.

Metrics (held-out): explained variance ``1 - Σ‖x - x̂‖² / Σ‖x - mean(x)‖²``, L0 (mean active latents per
token) and the dead fraction (latents that never fire on the held-out tokens).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from queries.errors import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopKConfig:
    d_in: int
    d_sae: int
    k: int = 32
    k_aux: int = 256
    aux_coef: float = 1.0 / 32.0
    lr: float = 1e-3
    warmup_steps: int = 20
    dead_after_tokens: int = 50_000
    seed: int = 0
    # Per-SAE k where the SAEs of one bank differ (e.g. res SAEs at k = 16, att/mlp at 32); ``k`` is their max.
    ks: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.d_in <= 0 or self.d_sae <= 0:
            raise InvalidInput(f"SAE shape d_in={self.d_in}, d_sae={self.d_sae} is not valid (both must be positive)")
        for k in (self.k, *(self.ks or ())):
            if not 0 < k <= self.d_sae:
                raise InvalidInput(
                    f"TopK k={k} is not valid for d_sae={self.d_sae} (valid: 1..d_sae; the demo uses 16)"
                )
        if self.ks is not None and max(self.ks) != self.k:
            raise InvalidInput(f"per-SAE ks {self.ks} must have k = {self.k} as their maximum")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TopKBank(nn.Module):
    """``n`` TopK SAEs with stacked weights. ``x`` is always ``[n, batch, d_in]``."""

    def __init__(self, n: int, cfg: TopKConfig) -> None:
        super().__init__()
        self.n, self.cfg = n, cfg
        g = torch.Generator().manual_seed(cfg.seed)
        w_dec = torch.randn(n, cfg.d_sae, cfg.d_in, generator=g)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        # Tied initialisation (encoder = decoder transpose) starts every latent alive and aligned.
        self.W_enc = nn.Parameter(w_dec.transpose(1, 2).clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(n, cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(n, cfg.d_in))
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("tokens_since_fired", torch.zeros(n, cfg.d_sae, dtype=torch.long))
        if cfg.ks is not None and len(cfg.ks) != n:
            raise InvalidInput(f"{len(cfg.ks)} per-SAE ks given for a bank of {n} SAEs")
        # [n, 1, k]: which of the k largest pre-activations each SAE keeps (all when every SAE has the same k)
        ks = torch.tensor(cfg.ks or [cfg.k] * n)
        self.register_buffer("keep", (torch.arange(cfg.k)[None, :] < ks[:, None])[:, None, :], persistent=False)
        self.uniform_k = cfg.ks is None or len(set(cfg.ks)) == 1

    def _top(self, pre: torch.Tensor) -> torch.Tensor:
        """Indices of each SAE's TopK latents, ``[n, B, k]`` (k = the largest; sorted when SAEs' k differ, so that
        the first k_i are SAE i's — the rest are then zeroed through ``keep``)."""
        return pre.topk(self.cfg.k, dim=-1, sorted=not self.uniform_k).indices

    def _keep(self, vals: torch.Tensor) -> torch.Tensor:
        return vals if self.uniform_k else vals * self.keep

    # -- model ---------------------------------------------------------------------------------
    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        """Set the input scales and ``b_dec`` (the mean) from the first batch of raw activations."""
        sq = x.pow(2).sum(-1).mean(-1)  # [n]
        self.scale.copy_(torch.sqrt(self.cfg.d_in / sq.clamp_min(1e-12)))
        self.b_dec.copy_(x.mean(1) * self.scale[:, None])
        self.initialised.fill_(True)

    def pre_acts(self, xs: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations for scaled inputs ``xs``."""
        # (x − b_dec)·W_enc written as x·W_enc − b_dec·W_enc: the input of the big product then needs no
        # gradient, which saves one [batch × d_sae × d_in] matrix product per step (of six).
        bias = self.b_enc[:, None, :] - torch.bmm(self.b_dec[:, None, :], self.W_enc)
        return torch.baddbmm(bias, xs, self.W_enc)

    def encode_topk(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._top(pre)
        return self._keep(pre.gather(-1, idx).relu()), idx

    def _flat(self, idx: torch.Tensor) -> torch.Tensor:
        """Latent indices ``[n, B, k]`` → rows of the bank's stacked ``[n * d_sae, ...]`` weights."""
        offsets = torch.arange(self.n, device=idx.device) * self.cfg.d_sae
        return idx + offsets[:, None, None]

    def decode(self, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        z = torch.zeros(vals.shape[0], vals.shape[1], self.cfg.d_sae, dtype=vals.dtype, device=vals.device).scatter(
            -1, idx, vals
        )
        return torch.baddbmm(self.b_dec[:, None, :], z, self.W_dec)

    # -- training ------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Normalised MSE (≈ 1 − EV, per SAE) plus AuxK on dead latents; ``x`` raw ``[n, B, d_in]``.

        Dense products throughout: a gather-based step through the k selected latents only (fewer FLOPs) was
        measured 1.7× slower per step on the 2-core CPU (16 SAEs, 1,024 latents, k = 16, 256 tokens)."""
        if not bool(self.initialised):
            self.initialise(x)
        xs = x * self.scale[:, None, None]
        pre = self.pre_acts(xs)
        vals, idx = self.encode_topk(pre)
        recon = self.decode(vals, idx)
        err = xs - recon
        centred = xs - xs.mean(1, keepdim=True)
        var = centred.pow(2).sum(-1).mean(-1).clamp_min(1e-12)  # [n]
        nmse = err.pow(2).sum(-1).mean(-1) / var
        total = nmse.sum()
        with torch.no_grad():
            # set, not scatter: a latent selected with value 0 on one token must not undo a firing on another
            fired = torch.zeros(self.n, self.cfg.d_sae, dtype=torch.bool, device=x.device)
            fired.view(-1)[self._flat(idx)[vals > 0]] = True
            self.tokens_since_fired += x.shape[1]
            self.tokens_since_fired[fired] = 0
            dead = self.tokens_since_fired >= self.cfg.dead_after_tokens  # [n, d_sae]
        aux = torch.zeros(self.n, device=x.device)
        if bool(dead.any()):
            k_aux = min(self.cfg.k_aux, int(dead.sum(-1).max()))
            masked = pre.masked_fill(~dead[:, None, :], float("-inf"))
            a_vals, a_idx = masked.topk(k_aux, dim=-1, sorted=False)
            a_vals = torch.where(torch.isfinite(a_vals), a_vals.relu(), torch.zeros_like(a_vals))
            z_aux = torch.zeros_like(pre).scatter(-1, a_idx, a_vals)
            err_hat = torch.bmm(z_aux, self.W_dec)
            target = err.detach()
            aux = (target - err_hat).pow(2).sum(-1).mean(-1) / target.pow(2).sum(-1).mean(-1).clamp_min(1e-12)
            aux = torch.where(dead.any(-1), aux, torch.zeros_like(aux))
            total = total + self.cfg.aux_coef * aux.sum()
        stats = {"nmse": nmse.detach(), "aux": aux.detach(), "dead": dead.float().mean(-1)}
        return total, stats

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    # -- evaluation and export -----------------------------------------------------------------
    @torch.no_grad()
    def encode_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TopK activations in raw scale (as the exported SAE computes them): ``(vals, idx)``."""
        xs = x * self.scale[:, None, None]
        vals, idx = self.encode_topk(self.pre_acts(xs))
        return vals / self.scale[:, None, None], idx

    @torch.no_grad()
    def reconstruct_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xs = x * self.scale[:, None, None]
        vals, idx = self.encode_topk(self.pre_acts(xs))
        recon = self.decode(vals, idx) / self.scale[:, None, None]
        return recon, vals / self.scale[:, None, None], idx

    @torch.no_grad()
    def export(self, i: int) -> dict[str, np.ndarray]:
        """SAE ``i`` with the input scale folded in: raw activations in, raw-scale reconstructions out.

        With ``z' = z / s``: ``z' = TopK((x − b_dec/s)·W_enc + b_enc/s)`` and ``x̂ = W_dec·z' + b_dec/s``,
        the same latents and reconstruction as training, with unit-norm decoder rows kept.
        """
        s = float(self.scale[i])
        return {
            "W_enc": self.W_enc[i].detach().float().numpy().copy(),
            "W_dec": self.W_dec[i].detach().float().numpy().copy(),
            "b_enc": (self.b_enc[i] / s).detach().float().numpy().copy(),
            "b_dec": (self.b_dec[i] / s).detach().float().numpy().copy(),
        }


def lr_at(step: int, total_steps: int, cfg: TopKConfig) -> float:
    """Linear warm-up, constant, then linear decay to zero over the last 20% of steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = int(0.8 * total_steps)
    if total_steps > 0 and step >= decay_start:
        return cfg.lr * max(0.0, (total_steps - step) / max(1, total_steps - decay_start))
    return cfg.lr


class BankTrainer:
    """Adam on a :class:`TopKBank`; one :meth:`step` per batch of ``[n, B, d_in]`` raw activations."""

    def __init__(self, bank: TopKBank, total_steps: int, *, tf32: bool | None = None) -> None:
        self.bank = bank
        self.total_steps = max(1, total_steps)
        # CPU steps stay fp32: bf16 autocast was 1.6× faster per token on the AVX512_BF16 machine but cost flow
        # (res 9→10 pairs with s_res ≥ 0.5: 42% vs 57% with the default recipe, same run; issue #18 notes).
        # On a CUDA GPU the SAE steps' matrix products run in TF32 (10-bit mantissa products, fp32
        # accumulation) unless told otherwise: fp32 training does not need fp32 products, and the
        # full profile's steps were 2-4x faster on an H200 (bench/results/gpu.json). The flag is set
        # only around each step, so exact-fp32 code in the same process (ingest matching) is untouched.
        self.tf32 = tf32
        self.opt = torch.optim.Adam(bank.parameters(), lr=bank.cfg.lr, betas=(0.9, 0.999))
        self.step_no = 0

    def step(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step_no, self.total_steps, self.bank.cfg)
        use_tf32 = x.is_cuda if self.tf32 is None else (self.tf32 and x.is_cuda)
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = use_tf32
        try:
            loss, stats = self.bank.loss(x)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
        self.bank.normalise_decoder()
        self.step_no += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {
            "bank": self.bank.state_dict(),
            "opt": self.opt.state_dict(),
            "step_no": self.step_no,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank.load_state_dict(state["bank"])
        self.opt.load_state_dict(state["opt"])
        self.step_no = int(state["step_no"])


class MetricsAccumulator:
    """Streams held-out EV, L0 and firing counts per SAE without holding the activations."""

    def __init__(self, n: int, d_sae: int, max_tokens: int = 65_536) -> None:
        from training.metrics import TrimmedVariance

        self.n, self.d_sae = n, d_sae
        self.tokens = 0
        self.trimmed = TrimmedVariance(n, max_tokens)  # EV without the 1% largest-norm tokens
        self.sse = torch.zeros(n, dtype=torch.float64)
        self.sum_x = None  # type: torch.Tensor | None
        self.sum_sq = torch.zeros(n, dtype=torch.float64)
        self.active = torch.zeros(n, dtype=torch.float64)
        self.fire_counts = torch.zeros(n, d_sae, dtype=torch.long)

    def update(self, x: torch.Tensor, recon: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor) -> None:
        xd = x.double()
        if self.sum_x is None:
            self.sum_x = torch.zeros(self.n, x.shape[-1], dtype=torch.float64)
        self.sse += (xd - recon.double()).pow(2).sum((1, 2))
        self.sum_x += xd.sum(1)
        self.sum_sq += xd.pow(2).sum((1, 2))
        on = vals > 0
        self.active += on.sum((1, 2)).double()
        self.fire_counts.scatter_add_(1, idx.reshape(self.n, -1), on.reshape(self.n, -1).long())
        self.tokens += x.shape[1]
        self.trimmed.update(x, recon)

    def results(self) -> list[dict[str, float]]:
        if self.tokens == 0 or self.sum_x is None:
            raise InvalidInput("no held-out tokens were evaluated (the held-out split is empty; give more text)")
        # Σ‖x − mean‖² = Σ‖x‖² − N‖mean‖²
        sst = self.sum_sq - self.sum_x.pow(2).sum(-1) / self.tokens
        out = []
        trimmed = self.trimmed.results()
        for i in range(self.n):
            out.append(
                {
                    "explained_variance": float(1.0 - self.sse[i] / sst[i]) if sst[i] > 0 else float("nan"),
                    **trimmed[i],
                    "l0": float(self.active[i] / self.tokens),
                    "dead_fraction": float((self.fire_counts[i] == 0).double().mean()),
                    "heldout_tokens": float(self.tokens),
                }
            )
        return out

    def frequencies(self) -> torch.Tensor:
        """Fraction of held-out tokens on which each latent fires, ``[n, d_sae]``."""
        return self.fire_counts.double() / max(1, self.tokens)


def effective_lr(d_sae: int, base: float = 2e-4) -> float:
    """The 1/sqrt(width) learning-rate rule of Gao et al., anchored at 2e-4 for 16k latents."""
    return base / math.sqrt(d_sae / 16384)

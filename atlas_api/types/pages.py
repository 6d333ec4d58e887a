"""A feature's page (training.feature_pages, stored as one JSON string per feature) and an SAE's density histogram."""

from __future__ import annotations

import json

import strawberry


@strawberry.type(description="A histogram: `counts[i]` values fell in [binEdges[i], binEdges[i+1]).")
class Histogram:
    bin_edges: list[float]
    counts: list[int]


@strawberry.type(description="A window of held-out tokens around one activation of the feature.")
class ActivationExample:
    tokens: list[str]
    activations: list[float] = strawberry.field(description="The feature's activation at every token of the window.")
    max_index: int = strawberry.field(description="Index into tokens of the token this example was picked for.")


@strawberry.type(
    description="Examples of one activation range: the strongest, or one quantile of the non-zero activations."
)
class ExampleGroup:
    name: str = strawberry.field(
        description="`top` (the strongest activations) or `q1`…`qN`: equal-count quantile groups of the non-zero activations, q1 lowest."
    )
    min_activation: float
    max_activation: float
    examples: list[ActivationExample]


@strawberry.type
class TokenWeight:
    token: str
    weight: float


@strawberry.type(
    description="Logit lens of the unit decoder direction d: W_U · (final-norm gain ⊙ d) over the vocabulary, up to one positive scale."
)
class LogitLens:
    positive: list[TokenWeight] = strawberry.field(description="The most promoted tokens, largest first.")
    negative: list[TokenWeight] = strawberry.field(description="The most suppressed tokens, most negative first.")
    histogram: Histogram = strawberry.field(description="All vocabulary logit weights of the direction.")


@strawberry.type(description="What a researcher judges a feature by, computed once over held-out tokens.")
class FeaturePage:
    heldout_tokens: int = strawberry.field(description="Held-out tokens the page was computed on (the denominator).")
    firing_tokens: int = strawberry.field(description="Held-out tokens on which the feature fired (activation > 0).")
    density: float = strawberry.field(description="firingTokens / heldoutTokens.")
    activation_histogram: Histogram = strawberry.field(
        description="Its non-zero activation values in equal bins over (0, max]."
    )
    example_groups: list[ExampleGroup]
    logit_lens: LogitLens | None = strawberry.field(
        description="Null for SAEs outside d_model space (attn.hook_z), whose direction needs W_O first."
    )

    @classmethod
    def from_json(cls, raw: str) -> FeaturePage:
        p = json.loads(raw)
        lg = p.get("logits")
        hist = p.get("act_hist") or {"edges": [], "counts": []}
        return cls(
            heldout_tokens=int(p["n_tokens"]),
            firing_tokens=int(p["firing"]),
            density=p["firing"] / p["n_tokens"] if p["n_tokens"] else 0.0,
            activation_histogram=Histogram(bin_edges=hist["edges"], counts=hist["counts"]),
            example_groups=[
                ExampleGroup(
                    name=g["name"],
                    min_activation=g["lo"],
                    max_activation=g["hi"],
                    examples=[
                        ActivationExample(tokens=e["t"], activations=e["a"], max_index=e["m"]) for e in g["examples"]
                    ],
                )
                for g in p.get("groups", [])
            ],
            logit_lens=LogitLens(
                positive=[TokenWeight(token=t, weight=w) for t, w in lg["pos"]],
                negative=[TokenWeight(token=t, weight=w) for t, w in lg["neg"]],
                histogram=Histogram(bin_edges=lg["edges"], counts=lg["counts"]),
            )
            if lg
            else None,
        )


@strawberry.type(
    description="Per SAE: how many of its features fire how often (log10 firing density over held-out tokens)."
)
class DensityHistogram:
    log10_bin_edges: list[float]
    counts: list[int] = strawberry.field(
        description="Features per log10-density bin (features that fired at least once)."
    )
    dead: int = strawberry.field(description="Features that never fired on the held-out tokens.")

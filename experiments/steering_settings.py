"""The settings of experiment 3 (experiments.steering_eval): what the sweep varies (:class:`SteeringEvalSettings`),
one point of it with its generations and scores (:class:`Setting`), and how winners are chosen among them.
Shared by the computation (experiments.steering_eval) and the report (experiments.steering_report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STRATEGY_LINES = ("single", "cumulative/constant", "cumulative/exponential", "cumulative/linear")


@dataclass
class SteeringEvalSettings:
    theme: str = "love and marriage"
    promote_prompt: str = "I think "  # the paper's topic-activation prompt (selection set)
    suppress_prompt: str | None = None  # default: a prompt that invites the theme (so there is something to suppress)
    # Winners are chosen on the selection prompts and reported on these held-out prompts: picking the best
    # of ~40 settings and reporting its score on the same generations overstates it (winner's curse).
    promote_report_prompts: tuple[str, ...] = ("I believe ", "Let me tell you something: ")
    suppress_report_prompts: tuple[str, ...] | None = None  # default: two more prompts that invite the theme
    strengths: tuple[float, ...] = (4.0, 8.0)  # additive s, in units of each feature's typical activation
    factors: tuple[float, ...] = (0.0, -2.0)  # rescaling r (the paper sweeps 0 … −64)
    schedules: tuple[str, ...] = ("constant", "exponential", "linear")
    max_layers: int = 6  # layers l swept, evenly spaced over the graphs' span
    generations: int = 4  # seeded samples per setting
    max_new_tokens: int = 36  # the paper: 36 (topics) / 96 (physics)
    temperature: float = 1.27
    top_p: float = 0.7
    seed: int = 0
    directions: tuple[str, ...] = ("promote", "suppress")

    def suppress_text(self) -> str:
        return self.suppress_prompt or f"I think that {self.theme} "

    def report_prompts(self, direction: str) -> tuple[str, ...]:
        if direction == "promote":
            return self.promote_report_prompts
        return self.suppress_report_prompts or (
            f"When it comes to {self.theme}, ",
            f"Here is what I know about {self.theme}: ",
        )


@dataclass
class Setting:
    direction: str  # promote | suppress | none
    strategy: str  # unsteered | seeds | single | cumulative
    layer: int | None
    schedule: str | None
    coefficient: float | None
    prompt: str  # the selection prompt (key of the unsteered baseline); report settings use ``prompts``
    n_features: int = 0
    stage: str = "select"  # select: the sweep; report: the chosen settings on held-out prompts
    prompts: tuple[str, ...] = ()  # one prompt per generation batch (default: ``prompt``)
    text_prompts: list[str] = field(default_factory=list)  # the prompt of each text
    applied_norm: float | None = None  # total norm of the edits the hooks applied (0: nothing was steered)
    equals_baseline: bool | None = None  # every text identical to the unsteered text of the same prompt and seed
    role: str | None = None  # report stage: why this setting was chosen ("best", "seeds only", "best single", ...)
    texts: list[str] = field(default_factory=list)
    topic: list[float] = field(default_factory=list)
    coherence: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    repetition: list[float] = field(default_factory=list)

    @property
    def line(self) -> str:
        return self.strategy if self.strategy != "cumulative" else f"cumulative/{self.schedule}"

    @property
    def all_prompts(self) -> tuple[str, ...]:
        return self.prompts or (self.prompt,)

    @property
    def flagged(self) -> str | None:
        """Why this setting cannot count as steering (None when it can)."""
        if self.strategy == "unsteered":
            return None
        if self.applied_norm is not None and self.applied_norm == 0.0:
            return "zero applied activation"
        if self.equals_baseline:
            return "output equals the unsteered baseline"
        return None

    def product(self) -> float:
        t = np.array(self.topic)
        c = np.array(self.coherence)
        if not len(t):
            return float("nan")
        return float(np.nanmean((t if self.direction != "suppress" else 1 - t) * c))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["product"] = self.product()
        d["topic_mean"] = float(np.mean(self.topic)) if self.topic else None
        d["coherence_mean"] = float(np.nanmean(self.coherence)) if self.coherence else None
        return d


def prompts_by_direction(s: SteeringEvalSettings) -> dict[str, str]:
    return {"promote": s.promote_prompt, "suppress": s.suppress_text()}


def choose_for_report(settings: list[Setting], direction: str) -> dict[str, Setting]:
    """The settings a report compares, chosen on the selection prompts among settings that steer (not
    flagged): the best overall, the best seeds-only, and the best of each strategy line."""
    ok = [st for st in settings if st.direction == direction and st.texts and st.flagged is None]
    out: dict[str, Setting] = {}
    if ok:
        out["best"] = max(ok, key=lambda x: x.product())
    seeds = [st for st in ok if st.strategy == "seeds"]
    if seeds:
        out["seeds only"] = max(seeds, key=lambda x: x.product())
    for line in STRATEGY_LINES:
        cand = [st for st in ok if st.line == line]
        if cand:
            best = max(cand, key=lambda x: x.product())
            if best is not out.get("best"):
                out[f"best {line}"] = best
    return out


def best_per_layer(settings: list[Setting], direction: str) -> dict[str, dict[int, Setting]]:
    """For each strategy line and layer, the setting (over strengths) with the largest product."""
    out: dict[str, dict[int, Setting]] = {line: {} for line in STRATEGY_LINES}
    for st in settings:
        if st.direction != direction or st.layer is None or not st.texts:
            continue
        cur = out[st.line].get(st.layer)
        if cur is None or st.product() > cur.product():
            out[st.line][st.layer] = st
    return out

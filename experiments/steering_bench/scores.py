"""Offline scores of steered text that degenerate text cannot game (no LLM judge is reachable here).

- **concept**: P(on-concept) from a logistic regression on sentence embeddings (all-MiniLM-L6-v2) plus three
  degeneracy statistics, trained on the concept's train texts against neutral texts *and* degenerate ones
  built from the concept's own words ("wedding wedding wedding", a word salad of its texts, a repeated
  phrase, "and and and"), so a string of concept words scores low. Its held-out accuracy is reported.
- **lexicon rate**: share of words in the concept's lexicon (the 20 words with the highest smoothed log-odds
  on the train split), reported beside the classifier, never used to select.
- **fluency**: ``min(1, 1 / perplexity ratio) · (1 − repeated word-3-gram share)``, 0 for a degenerate text;
  the ratio is the text's perplexity under the unsteered model over the median of unsteered texts of the
  same prompt.
- **degenerate**: fewer than 3 words, one word making up > 30% of ≥ 4 occurrences, > 30% repeated
  word-3-grams, or a perplexity ratio above 4.
- **instruction relevance**: embedding cosine of output and instruction, placed between the median cosine of
  unsteered outputs to *other* instructions (0, the null) and to their own (1); clipped to [0, 1].
- **combined**: the harmonic mean of concept, fluency and instruction per generation (AxBench), 0 when any is 0.

Invariants: pure functions of their inputs (the embedder is passed in); same inputs, same scores.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Embed = Callable[[list[str]], np.ndarray]
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
MAX_PPL_RATIO = 4.0
MAX_TOP_SHARE = 0.3
MAX_REPEATED_3GRAMS = 0.3


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class TextStats:
    n_words: int
    top_share: float  # share of the most frequent word
    top_count: int
    distinct: float  # distinct words / words
    repeated_3grams: float  # 1 − distinct word-3-grams / word-3-grams

    def vector(self) -> list[float]:
        return [self.top_share, 1.0 - self.distinct, self.repeated_3grams, float(self.n_words < 3)]


def text_stats(text: str) -> TextStats:
    w = words(text)
    if not w:
        return TextStats(0, 1.0, 0, 0.0, 0.0)
    _, count = Counter(w).most_common(1)[0]
    grams = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    rep = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    return TextStats(len(w), count / len(w), count, len(set(w)) / len(w), rep)


def is_degenerate(text: str, ppl_ratio: float | None = None) -> bool:
    s = text_stats(text)
    if s.n_words < 3 or s.repeated_3grams > MAX_REPEATED_3GRAMS:
        return True
    if s.top_count >= 4 and s.top_share > MAX_TOP_SHARE:
        return True
    return ppl_ratio is not None and math.isfinite(ppl_ratio) and ppl_ratio > MAX_PPL_RATIO


def fluency(text: str, ppl_ratio: float) -> float:
    if not math.isfinite(ppl_ratio) or is_degenerate(text, ppl_ratio):
        return 0.0
    return min(1.0, 1.0 / max(ppl_ratio, 1e-9)) * (1.0 - text_stats(text).repeated_3grams)


def lexicon(positives: Sequence[str], negatives: Sequence[str], k: int = 20) -> list[str]:
    """The ``k`` words most typical of ``positives`` against ``negatives`` (log-odds, add-one smoothing, ≥ 2 uses)."""
    pos = Counter(w for t in positives for w in words(t))
    neg = Counter(w for t in negatives for w in words(t))
    n_pos, n_neg = sum(pos.values()) + 1, sum(neg.values()) + 1
    scored = [
        (math.log((pos[w] + 1) / n_pos) - math.log((neg[w] + 1) / n_neg), w) for w in pos if pos[w] >= 2 and len(w) > 2
    ]
    return [w for _, w in sorted(scored, reverse=True)[:k]]


def lexicon_rate(text: str, lex: Sequence[str]) -> float:
    w = words(text)
    s = set(lex)
    return sum(x in s for x in w) / len(w) if w else 0.0


def degenerate_texts(positives: Sequence[str], lex: Sequence[str], seed: int = 0) -> list[str]:
    """Degenerate and repeated texts made of the concept's own words: what a broken steering vector emits."""
    rng = np.random.default_rng(seed)
    out = ["and " * 24, "the the the the the the the the the the", ". . . . . . . .", ""]
    for w in lex[:6]:
        out.append(" ".join([w] * int(rng.integers(8, 25))))
        out.append(" and ".join([w] * int(rng.integers(6, 12))))
    pool = [w for t in positives for w in words(t)]
    for t in positives:
        ws = words(t)
        if len(ws) >= 4:
            out.append(" ".join(ws[:4] * 5))  # a phrase repeated
        if pool:
            out.append(" ".join(rng.choice(pool, size=int(rng.integers(10, 30)))))  # a salad of concept words
    return out


def _features(texts: Sequence[str], embed: Embed) -> np.ndarray:
    e = embed(list(texts)) if texts else np.zeros((0, 1))
    stats = np.array([text_stats(t).vector() for t in texts], dtype=np.float64).reshape(len(texts), -1)
    return np.concatenate([np.asarray(e, dtype=np.float64), 3.0 * stats], axis=1)


@dataclass
class ConceptClassifier:
    """P(text is on the concept), trained with degenerate negatives (see the module docstring)."""

    model: Any
    embed: Embed
    lexicon: list[str]

    @classmethod
    def fit(
        cls, positives: Sequence[str], negatives: Sequence[str], embed: Embed, *, seed: int = 0
    ) -> ConceptClassifier:
        from sklearn.linear_model import LogisticRegression

        lex = lexicon(positives, negatives)
        bad = degenerate_texts(positives, lex, seed)
        x = _features([*positives, *negatives, *bad], embed)
        y = np.array([1] * len(positives) + [0] * (len(negatives) + len(bad)))
        # positives, neutral texts and degenerate texts weigh 2 : 1.5 : 0.5 in total, however many of each
        n_p, n_n, n_b = max(len(positives), 1), max(len(negatives), 1), max(len(bad), 1)
        w = np.array([2.0 / n_p] * len(positives) + [1.5 / n_n] * len(negatives) + [0.5 / n_b] * len(bad))
        # unit-norm embeddings: weak regularisation (C = 10) lets the linear model use them
        model = LogisticRegression(C=10.0, max_iter=5000).fit(x, y, sample_weight=w * len(y))
        return cls(model, embed, lex)

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return np.asarray(self.model.predict_proba(_features(texts, self.embed))[:, 1])

    def accuracy(self, positives: Sequence[str], negatives: Sequence[str], *, seed: int = 1) -> dict[str, float]:
        """Held-out accuracy (threshold 0.5) on positives, negatives and degenerate texts built from the positives."""
        bad = degenerate_texts(positives, self.lexicon, seed)
        p, n, d = self.proba(positives), self.proba(negatives), self.proba(bad)
        hits = np.concatenate([p >= 0.5, n < 0.5, d < 0.5])
        return {
            "accuracy": float(hits.mean()) if len(hits) else float("nan"),
            "positives": float((p >= 0.5).mean()) if len(p) else float("nan"),
            "negatives": float((n < 0.5).mean()) if len(n) else float("nan"),
            "degenerate": float((d < 0.5).mean()) if len(d) else float("nan"),
            "n": len(hits),
        }


@dataclass(frozen=True)
class Relevance:
    """Instruction relevance calibrated on unsteered outputs: cosine null (other instructions) → 0, own → 1."""

    null: float
    ref: float

    @classmethod
    def calibrate(cls, instr_emb: np.ndarray, out_emb: np.ndarray) -> Relevance:
        own = np.sum(instr_emb * out_emb, axis=1)
        shifted = np.sum(np.roll(instr_emb, 1, axis=0) * out_emb, axis=1)
        null, ref = float(np.median(shifted)), float(np.median(own))
        return cls(null, max(ref, null + 1e-3))

    def score(self, instr_emb: np.ndarray, out_emb: np.ndarray) -> np.ndarray:
        cos = np.sum(instr_emb * out_emb, axis=1)
        return np.clip((cos - self.null) / (self.ref - self.null), 0.0, 1.0)


def harmonic_mean(*scores: float) -> float:
    if any((not math.isfinite(s)) or s <= 0 for s in scores):
        return 0.0
    return len(scores) / sum(1.0 / s for s in scores)

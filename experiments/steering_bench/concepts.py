"""Concepts, prompts and their texts, split train / validation / test by document.

Positive texts of a concept come from held-out corpus chunks where the corpus has the concept (the default
corpus holds Shakespeare and the Python docs), otherwise from the model itself in chat mode ("Write two
sentences about weddings."), as AxBench generates its data; negatives are the model's answers to neutral
instructions. Generated data is cached with the settings that made it (same settings, same texts).

Invariants: every text is one document and its split is a hash of its id (so a text never sits in two
splits and adding concepts does not move old texts); evaluation prompts (validation / test) are disjoint
from the instructions whose answers are negatives.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steering.model import LoadedModel

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
CORPUS_CONCEPTS = {"Shakespeare's plays": "shakespeare", "Python documentation": "python"}

# Everyday concepts (AxBench-like). Each is asked for as "Write two sentences about {topic}."
GENERATED_CONCEPTS = (
    "weddings and marriage",
    "cooking and recipes",
    "football",
    "the ocean and the sea",
    "space and planets",
    "dogs",
    "music",
    "medicine and hospitals",
    "the weather",
    "money and banking",
    "cars and driving",
    "gardening and flowers",
    "war and battles",
    "religion and God",
    "school and teachers",
    "forests and trees",
    "travel and airports",
    "coffee",
    "mathematics",
    "kings and queens",
    "computers and software",
    "anger and frustration",
)

# Neutral instructions: the first 30 are evaluation prompts (10 validation, 20 test); the rest are asked
# only to make negative texts. None names a concept above.
EVAL_INSTRUCTIONS = (
    "Describe your ideal weekend.",
    "Give me three tips for staying focused.",
    "What makes a good friend?",
    "Explain how to tie a shoelace.",
    "Write a short note thanking a neighbour.",
    "What should I pack for a short trip?",
    "Describe the colour blue to someone.",
    "How do I make my room tidier?",
    "Tell me about your favourite season.",
    "Suggest a name for a small shop.",
    "What is a good way to start the morning?",
    "Explain why people enjoy stories.",
    "Write a sentence about a quiet street.",
    "How can I learn a new habit?",
    "Describe a comfortable chair.",
    "What do you do when you feel tired?",
    "Give advice to someone starting a new job.",
    "Describe a busy market.",
    "What is the best way to remember names?",
    "Write a short message to a friend.",
    "Explain how to plan a day.",
    "What makes a place feel like home?",
    "Describe the sound of rain on a window.",
    "How do I write a good email?",
    "Tell me something interesting about bridges.",
    "What are the benefits of walking?",
    "Describe an old photograph.",
    "How should I prepare for a meeting?",
    "Write a sentence about a bicycle.",
    "What is a simple way to relax?",
)
NEGATIVE_INSTRUCTIONS = (
    "Describe a pencil.",
    "Explain how to fold a shirt.",
    "Write about a long walk.",
    "What is a good hobby?",
    "Describe a window.",
    "How do I clean a table?",
    "Tell me about a small town.",
    "Write about a rainy afternoon.",
    "Describe a pair of shoes.",
    "What do people do in a park?",
    "Explain how to pack a bag.",
    "Write about an empty room.",
    "Describe a lamp.",
    "How do you make a list?",
    "Write about waiting for a bus.",
    "Describe a clock.",
    "What is a good way to save time?",
    "Write about a door.",
    "Describe a sunny street.",
    "How do I organise a desk?",
)
N_VALIDATION_PROMPTS = 10


def eval_prompts(split: str) -> list[str]:
    """The neutral instructions of a split: 10 validation, 20 test (fixed, never reshuffled)."""
    if split == "validation":
        return list(EVAL_INSTRUCTIONS[:N_VALIDATION_PROMPTS])
    if split == "test":
        return list(EVAL_INSTRUCTIONS[N_VALIDATION_PROMPTS:])
    raise ValueError(split)


def split_of(doc_id: str, fractions: tuple[float, float] = (0.5, 0.25)) -> str:
    """train / validation / test by a hash of the document id (train 50%, validation 25%, test 25%)."""
    h = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < fractions[0]:
        return "train"
    return "validation" if h < fractions[0] + fractions[1] else "test"


@dataclass
class Text:
    doc_id: str
    text: str
    split: str


@dataclass
class ConceptData:
    name: str
    source: str  # "generated" | "corpus:<kind>"
    positives: list[Text] = field(default_factory=list)

    def texts(self, split: str) -> list[str]:
        return [t.text for t in self.positives if t.split == split]


@dataclass(frozen=True)
class DataSettings:
    per_concept: int = 24  # positive texts per concept
    negatives_per_instruction: int = 3
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    corpus_chars: int = 400  # length of a corpus positive (characters, cut at a word boundary)

    def key(self, model: str, concepts: Sequence[str]) -> str:
        blob = json.dumps({"settings": asdict(self), "model": model, "concepts": list(concepts)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _generate(lm: LoadedModel, instructions: list[str], s: DataSettings, tag: str) -> list[str]:
    from steering.batch import sample

    texts = [lm.format_prompt(p, chat=True) for p in instructions]
    ids = sample(
        lm,
        texts,
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        seed=s.seed + int(hashlib.sha256(tag.encode()).hexdigest()[:6], 16),
    )
    return [lm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]


def _corpus_positives(kind: str, s: DataSettings, corpus: str | Path | None) -> list[tuple[str, str]]:
    """(document, text) from held-out chunks of the corpus whose document path names ``kind`` (shakespeare |
    python), at most two per document so the splits (by document) each get several."""
    from training.corpus import load_split, resolve_corpus

    try:
        split = load_split(resolve_corpus(corpus))
    except Exception as exc:  # noqa: BLE001 - no corpus: the concept is generated instead (logged)
        log.warning("no corpus for %s positives (%s)", kind, exc)
        return []
    out: list[tuple[str, str]] = []
    per_doc: dict[str, int] = {}
    for c in split.held_out:
        if kind not in c.doc_id.lower() or per_doc.get(c.doc_id, 0) >= 2:
            continue
        text = " ".join(c.text.split())[: s.corpus_chars].rsplit(" ", 1)[0]
        if len(text) > 100:
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
            out.append((c.doc_id, text))
        if len(out) >= s.per_concept:
            break
    return out


def build_data(
    lm: LoadedModel,
    concepts: Sequence[str],
    s: DataSettings,
    *,
    cache: Path | None = None,
    corpus: str | Path | None = None,
) -> tuple[list[ConceptData], list[Text], dict[str, Any]]:
    """Positives per concept, shared negatives, and the record of how they were made (cached as JSON)."""
    key = s.key(lm.name, concepts)
    path = cache / f"data-{key}.json" if cache else None
    if path is not None and path.is_file():
        raw = json.loads(path.read_text())
        data = [ConceptData(c["name"], c["source"], [Text(**t) for t in c["positives"]]) for c in raw["concepts"]]
        return data, [Text(**t) for t in raw["negatives"]], raw["record"]
    data = []
    for name in concepts:
        kind = CORPUS_CONCEPTS.get(name)
        found = _corpus_positives(kind, s, corpus) if kind else []
        if found:  # corpus chunks: split by the document they come from
            items = [Text(f"{doc}#{i}", t, split_of(doc)) for i, (doc, t) in enumerate(found)]
            source = f"corpus:{kind}"
        else:  # generated: every answer is its own document
            texts = _generate(lm, [f"Write two sentences about {name}."] * s.per_concept, s, name)
            items = [Text(f"{name}#{i}", t, split_of(f"{name}#{i}")) for i, t in enumerate(texts)]
            source = "generated"
        data.append(ConceptData(name, source, items))
    neg_prompts = [p for p in NEGATIVE_INSTRUCTIONS for _ in range(s.negatives_per_instruction)]
    neg_texts = _generate(lm, neg_prompts, s, "negatives")
    negatives = [Text(f"neutral#{i}", t, split_of(f"neutral#{i}")) for i, t in enumerate(neg_texts)]
    record = {"settings": asdict(s), "model": lm.name, "key": key, "chat": True}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "record": record,
                    "concepts": [asdict(c) for c in data],
                    "negatives": [asdict(t) for t in negatives],
                },
                indent=1,
            )
        )
    return data, negatives, record

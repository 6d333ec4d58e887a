"""The benchmark's offline scores on planted texts: fluent on-concept text scores high; "and and and",
a string of concept words and off-concept text score low (issue 25, item 4)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.steering_bench import scores as sc

WEDDING = [
    "The bride walked down the aisle while the guests smiled and the groom waited by the altar.",
    "They exchanged rings and vows in a small chapel, then danced at the reception until midnight.",
    "Her wedding dress was white lace, and the cake had four tiers decorated with roses.",
    "The couple sent invitations to their family months before the ceremony in June.",
    "At the reception the best man gave a toast and everyone cheered for the newlyweds.",
    "Planning a marriage ceremony means choosing a venue, flowers, music and a photographer.",
    "The groom was nervous before the vows, but the bride held his hand and he calmed down.",
    "After the wedding the married couple left for their honeymoon by the sea.",
    "The bridesmaids wore blue dresses and carried bouquets of white flowers to the altar.",
    "Their marriage began with a simple ceremony and a long dinner with friends and family.",
    "The priest asked the bride and groom to say their vows before the guests in the church.",
    "Wedding rings are often made of gold and are worn on the fourth finger of the left hand.",
]
NEUTRAL = [
    "A pencil is a thin wooden tool with graphite inside that people use to write and draw.",
    "To fold a shirt, lay it flat, fold the sleeves behind it and then fold it in half.",
    "The long walk took us past the river, a few shops and a small park with benches.",
    "A good hobby is something you enjoy doing in your free time, like reading or painting.",
    "The window looked out over the street, where cars passed slowly in the afternoon light.",
    "To clean a table, wipe it with a damp cloth and a little soap, then dry it well.",
    "The small town had one bakery, a post office and a station with two trains a day.",
    "On a rainy afternoon I like to sit inside with a book and listen to the water.",
    "These shoes are brown leather with thick soles, good for walking on rough paths.",
    "People in the park walk their dogs, play games and sit on the grass in the sun.",
    "To pack a bag, roll your clothes tightly and put heavy things at the bottom.",
    "The empty room had bare walls, a wooden floor and one chair near the door.",
]


@pytest.fixture(scope="module")
def embed() -> sc.Embed:
    from interop.embeddings import TextEmbedder

    return TextEmbedder().embed


@pytest.fixture(scope="module")
def clf(embed: sc.Embed) -> sc.ConceptClassifier:
    return sc.ConceptClassifier.fit(WEDDING[:9], NEUTRAL[:9], embed)


def test_degeneracy_flags_word_salad_not_fluent_text() -> None:
    assert sc.is_degenerate("and " * 20)
    assert sc.is_degenerate("wedding wedding wedding wedding wedding wedding")
    assert sc.is_degenerate("the bride and the groom the bride and the groom the bride and the groom")
    assert sc.is_degenerate("")
    assert sc.is_degenerate(WEDDING[0], ppl_ratio=10.0)
    assert not any(sc.is_degenerate(t) for t in WEDDING + NEUTRAL)


def test_fluency_high_for_fluent_low_for_degenerate() -> None:
    assert sc.fluency(WEDDING[0], 1.0) == pytest.approx(1.0)
    assert sc.fluency(WEDDING[0], 2.0) == pytest.approx(0.5)
    assert sc.fluency("and " * 20, 0.5) == 0.0  # low perplexity does not rescue a loop


def test_concept_classifier_planted_texts(clf: sc.ConceptClassifier) -> None:
    on = clf.proba(WEDDING[9:])
    off = clf.proba(NEUTRAL[9:])
    junk = clf.proba(["and " * 24, "wedding wedding wedding wedding wedding wedding wedding wedding", "bride " * 15])
    assert on.min() > 0.5, on
    assert off.max() < 0.5, off
    assert junk.max() < 0.5, junk
    acc = clf.accuracy(WEDDING[9:], NEUTRAL[9:])
    assert acc["accuracy"] >= 0.9 and acc["n"] > 6


def test_combined_score_planted(clf: sc.ConceptClassifier, embed: sc.Embed) -> None:
    instr = ["Describe your ideal weekend."] * 3
    outs = [
        "My ideal weekend is a friend's wedding: the ceremony in the morning and dancing at the reception.",
        "and and and and and and and and and and and and",
        "My ideal weekend is a slow breakfast, a walk in the park and an evening with a good book.",
    ]
    ie, oe = embed(instr), embed(outs)
    rel = sc.Relevance(null=0.0, ref=0.4).score(ie, oe)
    conc = clf.proba(outs)
    flu = [sc.fluency(t, 1.0) for t in outs]
    hm = [sc.harmonic_mean(c, f, r) for c, f, r in zip(conc, flu, rel)]
    assert hm[0] > 0.4, (conc, flu, rel)
    assert hm[1] == 0.0
    assert hm[2] < hm[0] and conc[2] < 0.5


def test_lexicon_and_harmonic_mean() -> None:
    lex = sc.lexicon(WEDDING, NEUTRAL)
    assert {"bride", "groom"} <= set(lex)
    assert sc.lexicon_rate("the bride and the groom", lex) == pytest.approx(0.4)
    assert sc.harmonic_mean(1.0, 1.0, 1.0) == pytest.approx(1.0)
    assert sc.harmonic_mean(0.5, 1.0, 0.0) == 0.0
    assert np.isclose(sc.harmonic_mean(0.5, 1.0, 1.0), 0.75)

"""Reproductions of the paper's findings (paper §4–5) on any atlas.

One module per job:
- ``stats``: groups, shares, Mann–Whitney matrices, confidence intervals (numpy/scipy only).
- ``matching``: cosine top-k predecessors from decoders, Pearson matches from activations.
- ``activations``: run the model on text and SAE-encode the hook points at sampled tokens.
- ``coactivation`` / ``deactivation`` / ``steering_eval``: the three experiments (``steering_eval`` computes;
  ``steering_settings`` holds its settings and winner choice, ``steering_report`` writes its report).
- ``topic`` / ``coherence``: offline scores for generated text (embedding model, perplexity, repetition).
- ``report``: Markdown + PNG + JSON writer shared by all experiments.
- ``context``: resolve an atlas name to its manifest, SAEs and model.
"""

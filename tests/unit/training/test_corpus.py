"""Local corpora (txt/jsonl/parquet, file or folder), chunking, the deterministic held-out split, packing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from queries.errors import InvalidInput
from training.corpus import Chunk, chunk_document, iter_documents, load_split, pack_sequences, resolve_corpus


def _paragraphs(n: int, tag: str) -> str:
    return "\n\n".join(f"{tag} paragraph {i} " + "word " * 30 for i in range(n))


def test_reads_txt_jsonl_parquet_from_a_folder(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("plain text document")
    (tmp_path / "sub" / "b.jsonl").write_text(
        json.dumps({"text": "first line"}) + "\n\n" + json.dumps({"text": "second"}) + "\n"
    )
    pq.write_table(pa.table({"text": ["from parquet", ""], "other": [1, 2]}), tmp_path / "c.parquet")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    docs = list(iter_documents(tmp_path))
    assert [d[1] for d in docs] == ["plain text document", "from parquet", "first line", "second"]
    assert docs[2][0] == "sub/b.jsonl:1"


def test_jsonl_without_text_field_names_the_fix(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(InvalidInput, match="--text-field"):
        list(iter_documents(f))
    assert [t for _, t in iter_documents(f, text_field="body")] == ["x"]


def test_missing_or_empty_corpus_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        resolve_corpus(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="no readable files"):
        list(iter_documents(tmp_path))


def test_chunks_respect_size_and_keep_all_text() -> None:
    text = _paragraphs(40, "doc")
    chunks = chunk_document("d", text, chunk_chars=500)
    assert len(chunks) > 5
    assert all(len(c.text) < 1200 for c in chunks)
    assert "\n\n".join(c.text for c in chunks) == text
    huge = chunk_document("h", "x" * 5000, chunk_chars=1000)
    assert sum(len(c.text) for c in huge) == 5000 and max(len(c.text) for c in huge) <= 2000


def test_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(_paragraphs(60, f"file{i}"))
    a = load_split(tmp_path, held_out_fraction=0.2, chunk_chars=400)
    b = load_split(tmp_path, held_out_fraction=0.2, chunk_chars=400)
    assert [c.key for c in a.held_out] == [c.key for c in b.held_out]
    assert not {c.key for c in a.train} & {c.key for c in a.held_out}
    share = len(a.held_out) / (len(a.train) + len(a.held_out))
    assert 0.08 < share < 0.35


def test_too_small_corpus_cannot_be_split(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("tiny")
    with pytest.raises(InvalidInput, match="too small"):
        load_split(tmp_path)


class _CharTokenizer:
    eos_token_id = 0

    def __call__(self, text: str, **_: object) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


def test_pack_sequences_full_length_with_origins() -> None:
    chunks = [Chunk("d", i, "abcdefghij"[: 3 + i]) for i in range(6)]
    seqs = list(pack_sequences(_CharTokenizer(), chunks, 8, shuffle_seed=None))
    total = sum(3 + i + 1 for i in range(6))  # chars + one EOS per chunk
    assert len(seqs) == total // 8
    for ids, origins in seqs:
        assert len(ids) == len(origins) == 8
    ids, origins = seqs[0]
    assert ids[:4] == [97, 98, 99, 0] and origins[0] == ("d#0", 0) and origins[3] == ("", -1)
    shuffled = list(pack_sequences(_CharTokenizer(), chunks, 8, shuffle_seed=3))
    assert shuffled == list(pack_sequences(_CharTokenizer(), chunks, 8, shuffle_seed=3))

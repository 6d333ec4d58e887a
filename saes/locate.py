"""Finding an atlas's ``atlas.toml``: the one look-up steering and the experiments share.

In order: an explicit path (it must describe that atlas); the folder the Atlas node recorded at ingest
(``manifest_path``); then each search path (a file, a folder holding ``atlas.toml``, or a folder of atlas
folders); then ``$ATLAS_CACHE_DIR/atlases`` (where ``atlas train`` / ``atlas demo`` put atlases). The first
manifest that names the atlas wins; unreadable candidates are skipped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from queries.errors import InvalidInput
from saes.cache import CacheSettings
from saes.manifest import AtlasManifest, load_manifest

log = logging.getLogger(__name__)


def manifest_candidates(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted([p / "atlas.toml"] if (p / "atlas.toml").is_file() else p.glob("*/atlas.toml")))
    return out


def find_manifest(
    atlas: str,
    *,
    explicit: str | Path | None = None,
    recorded: str | Path | None = None,
    search: Iterable[str | Path] = (),
    expected_sha256: str | None = None,
    cache: CacheSettings | None = None,
) -> AtlasManifest:
    """The manifest of ``atlas`` (see the module docstring for the order); raises InvalidInput naming the fixes."""
    if explicit is not None:
        m = load_manifest(Path(explicit).expanduser())
        if m.name != atlas:
            raise InvalidInput(
                f"manifest {str(explicit)!r} describes atlas {m.name!r}, not {atlas!r} (pass the atlas.toml of {atlas!r})"
            )
        return m
    cache = cache or CacheSettings()
    candidates = manifest_candidates([*([recorded] if recorded else []), *search, cache.atlases_dir])
    for c in candidates:
        try:
            m = load_manifest(c)
        except InvalidInput as exc:
            log.warning("skipping manifest %s: %s", c, exc)
            continue
        if m.name == atlas:
            if expected_sha256 and expected_sha256 != m.sha256():
                log.warning("manifest %s differs from the one atlas %s was ingested from", c, atlas)
            return m
    raise InvalidInput(
        f"no atlas.toml for atlas {atlas!r} was found (looked in {len(candidates)} places, including {cache.atlases_dir}): "
        "pass --manifest path/to/atlas.toml, list it in ATLAS_STEER_MANIFESTS (JSON list of files or folders), "
        "re-run `atlas ingest` on it so the Atlas node records where it is, or build the demo atlas with `atlas demo`"
    )

"""Settings of the ingest package (env prefix ``ATLAS_``), built once at the entry point and passed down."""

from __future__ import annotations

import os
import re

from pydantic_settings import BaseSettings, SettingsConfigDict

from queries.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLAS_", extra="ignore")

    # ATLAS_MATCH_PREFILTER: auto | bf16 | off, used where no explicit choice is given (docs/ingest.md).
    # A plain string, checked where it is used, so a bad value is one AtlasError rather than a pydantic trace.
    match_prefilter: str = "auto"
    # ATLAS_MATCH_MEMORY_BUDGET: a layer whose largest SAE pair's decoders (fp32) exceed this is matched by streaming
    # tiles from the files (ingest/streaming.py) instead of loading them whole: "25%" of physical memory, "8G", "512M".
    match_memory_budget: str = "25%"


def physical_memory() -> int:
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def parse_memory_budget(text: str | int) -> int:
    """``"25%"`` (of physical memory), ``"8G"``/``"8GiB"``, ``"512M"``, or bytes → bytes (> 0); else InvalidInput."""
    m = _SIZE.match(str(text))
    if m:
        value, unit = float(m[1]), (m[2] or "").lower()
        n = int(physical_memory() * value / 100) if unit == "%" else int(value * _UNITS[unit[:1]])
        if n > 0 and (unit != "%" or value <= 100):
            return n
    raise InvalidInput(
        f"memory budget {text!r} is not valid (use a share of physical memory such as 25%, or a size such as 8G or 512M)"
    )

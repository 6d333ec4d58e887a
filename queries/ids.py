"""Feature identity (the graph contract, docs/architecture.md).

A feature's ``uid`` is ``"{atlas}/{layer}-{module}/{index}"`` (e.g. ``smollm2-demo/12-res/77``).
Inputs may also use the paper's short form ``12/res/77`` when the atlas is known.
An SAE is keyed ``"{atlas}/{layer}-{module}"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queries.domain import Module
from queries.errors import InvalidInput

__all__ = ["ATLAS_NAME_RE", "FeatureRef", "Module", "check_atlas_name", "feature_uid", "parse_uid", "sae_key"]

ATLAS_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_FULL_UID_RE = re.compile(r"^(?P<atlas>[a-z0-9][a-z0-9-]*)/(?P<layer>\d+)-(?P<module>[a-z]+)/(?P<index>\d+)$")
_SHORT_UID_RE = re.compile(r"^(?P<layer>\d+)/(?P<module>[a-z]+)/(?P<index>\d+)$")


def check_atlas_name(name: str) -> str:
    if not isinstance(name, str) or not ATLAS_NAME_RE.match(name):
        raise InvalidInput(
            f"atlas name {name!r} is not valid (use lowercase letters, digits and '-', e.g. 'smollm2-demo')"
        )
    return name


@dataclass(frozen=True, order=True)
class FeatureRef:
    atlas: str
    layer: int
    module: Module
    index: int

    @property
    def uid(self) -> str:
        return feature_uid(self.atlas, self.layer, self.module, self.index)

    @property
    def sae_key(self) -> str:
        return sae_key(self.atlas, self.layer, self.module)

    @property
    def short(self) -> str:
        return f"{self.layer}/{self.module.value}/{self.index}"


def feature_uid(atlas: str, layer: int, module: Module | str, index: int) -> str:
    mod = module.value if isinstance(module, Module) else module
    return f"{atlas}/{layer}-{mod}/{index}"


def sae_key(atlas: str, layer: int, module: Module | str) -> str:
    mod = module.value if isinstance(module, Module) else module
    return f"{atlas}/{layer}-{mod}"


def parse_uid(text: str, atlas: str | None = None) -> FeatureRef:
    """Parse a full uid, or the paper's short form when ``atlas`` is given.

    Raises InvalidInput naming the value and both accepted forms.
    """
    text = (text or "").strip()
    m = _FULL_UID_RE.match(text)
    if m:
        if atlas is not None and m["atlas"] != atlas:
            raise InvalidInput(
                f"feature {text!r} belongs to atlas {m['atlas']!r}, not {atlas!r} (use a feature of {atlas!r})"
            )
        return FeatureRef(m["atlas"], int(m["layer"]), Module.parse(m["module"]), int(m["index"]))
    m = _SHORT_UID_RE.match(text)
    if m and atlas is not None:
        return FeatureRef(check_atlas_name(atlas), int(m["layer"]), Module.parse(m["module"]), int(m["index"]))
    expected = "'{atlas}/{layer}-{module}/{index}', e.g. 'smollm2-demo/12-res/77'"
    if m:
        raise InvalidInput(f"feature id {text!r} is in the short form; give the atlas too or use {expected}")
    raise InvalidInput(f"feature id {text!r} is not valid (expected {expected}, or '12/res/77' with an atlas)")

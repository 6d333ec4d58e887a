"""The domain's vocabulary, defined once and used by every layer (the API wraps these enums with
``strawberry.enum``; the CLI, steering and ingest import them): modules, categories, flow directions, the
paper's cuts, and the feature properties a filter or sort may name.
"""

from __future__ import annotations

from enum import Enum

from queries.errors import InvalidInput

# -- the paper's cuts (paper §3, App. B.2; docs/ingest.md justifies the category defaults) ------------
RESIDUAL_CUT = 0.5  # t_R: a residual chain stops below this similarity; a 'high' s_res for the categories
MODULE_CUT = 0.15  # t_mod of flow graphs: an att/mlp predecessor explains a residual feature at or above it
CATEGORY_MODULE_CUT = 0.25  # the categories' cut on max(s_att, s_mlp) (the paper's Table 5 MLP cut)


class Module(str, Enum):
    """Where in layer L an SAE reads: residual stream after the block, attention output, MLP output."""

    RES = "res"
    ATT = "att"
    MLP = "mlp"

    @classmethod
    def parse(cls, value: str) -> Module:
        try:
            return cls(value.lower())
        except ValueError:
            raise InvalidInput(f"unknown module {value!r} (valid: res, att, mlp)") from None


class Category(str, Enum):
    """The paper's semantic categories of a residual feature (paper §2.1)."""

    TRANSLATED = "translated"
    PROCESSED = "processed"
    NEWBORN = "newborn"
    UNEXPLAINED = "unexplained"


CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
# Where a res feature's layer has no res(L-1) SAE its category is absent (null in the graph, DESIGN.md);
# counts and reports name that case with this key instead of folding it into a category.
NO_CATEGORY = "none"


class Direction(str, Enum):
    """Which way a flow graph follows FLOWS_TO from its seeds."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


# -- feature properties a filter (``where``) or a sort may name: a whitelist, nothing else reaches Cypher --
FILTERABLE_FIELDS: tuple[str, ...] = (
    "uid",
    "atlas",
    "layer",
    "module",
    "index",
    "category",
    "s_res",
    "s_att",
    "s_mlp",
    "label",
    "frequency",
    "decoder_norm",
    "steer_kl",
    "steer_bench_gain",
)
SORTABLE_FIELDS: tuple[str, ...] = (
    "atlas",
    "layer",
    "module",
    "index",
    "category",
    "s_res",
    "s_att",
    "s_mlp",
    "frequency",
    "steer_kl",
    "steer_bench_gain",
    "uid",
)


# Edge matchers whose FLOWS_TO edges an atlas may hold (``method`` property; absent = cosine). ingest.matchers
# implements them; queries validate a ``matcher`` argument against this list (tests keep the two equal).
MATCHERS: tuple[str, ...] = ("cosine", "permutation", "ot")

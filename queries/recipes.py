"""Analyst recipes: documented, parameterised read-only Cypher for common circuit questions.

Each recipe names its parameters and their defaults; ``atlas cypher --recipe NAME -p key=value`` runs
one, and docs/cypher-recipes.md explains each. The thresholds default to the paper's cuts
(residual 0.5, module 0.15). All recipes rely on the graph contract of queries/schema.py: top-1 links
are ``target_rank = 0`` (backward) and residual chains run ``res(L-1) → res(L)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, LiteralString

from queries.domain import MODULE_CUT, RESIDUAL_CUT
from queries.errors import InvalidInput


@dataclass(frozen=True)
class Recipe:
    name: str
    question: str
    statement: LiteralString
    defaults: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ("atlas",)

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        missing = [p for p in self.required if p not in given]
        if missing:
            raise InvalidInput(
                f"recipe {self.name!r} needs parameter(s) {', '.join(missing)} (e.g. -p {missing[0]}=...)"
            )
        known = set(self.required) | set(self.defaults)
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidInput(
                f"recipe {self.name!r} has no parameter(s) {', '.join(unknown)} (valid: {', '.join(sorted(known))})"
            )
        return {**self.defaults, **given}


RECIPES: dict[str, Recipe] = {}


def _add(r: Recipe) -> None:
    RECIPES[r.name] = r


_add(
    Recipe(
        name="origin-census",
        question="How many residual features of each layer are translated, processed, newborn or unexplained?",
        statement=(
            "MATCH (f:Feature) WHERE f.atlas = $atlas AND f.module = 'res' "
            "RETURN f.layer AS layer, "
            "count(CASE WHEN f.category = 'translated' THEN 1 END) AS translated, "
            "count(CASE WHEN f.category = 'processed' THEN 1 END) AS processed, "
            "count(CASE WHEN f.category = 'newborn' THEN 1 END) AS newborn, "
            "count(CASE WHEN f.category = 'unexplained' THEN 1 END) AS unexplained, "
            "count(f) AS total "
            "ORDER BY layer"
        ),
    )
)

_add(
    Recipe(
        name="born-in-mlp",
        question="Which residual features of layer L are born in that layer's MLP (weak residual link, strong MLP match)?",
        statement=(
            "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: 'res'}) "
            # s_res absent (no res(L-1) SAE) is unknown, not weak: such features are not claimed (DESIGN.md)
            "WHERE f.s_res < $min_similarity AND f.s_mlp >= $module_min_similarity "
            "AND f.s_mlp >= coalesce(f.s_att, 0.0) "
            "MATCH (m:Feature)-[r:FLOWS_TO]->(f) WHERE m.module = 'mlp' AND r.target_rank = 0 "
            "RETURN f.uid AS feature, m.uid AS born_from, r.similarity AS similarity, f.s_res AS s_res, f.label AS label "
            "ORDER BY similarity DESC, feature LIMIT $limit"
        ),
        defaults={"min_similarity": RESIDUAL_CUT, "module_min_similarity": MODULE_CUT, "limit": 50},
        required=("atlas", "layer"),
    )
)

_add(
    Recipe(
        name="strongest-chains",
        question="Which residual features of layer L have the longest unbroken top-1 residual ancestry, and how strong is it?",
        statement=(
            "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: 'res'}) "
            "MATCH p = (f)<-[:FLOWS_TO*0..]-(x:Feature) "
            "WHERE all(r IN relationships(p) WHERE r.target_rank = 0 AND r.similarity >= $min_similarity) "
            "AND all(n IN nodes(p) WHERE n.module = 'res') "
            "WITH f, p ORDER BY length(p) DESC "
            "WITH f, head(collect(p)) AS p "
            "RETURN f.uid AS feature, length(p) AS links, last(nodes(p)).uid AS starts_at, "
            "reduce(w = 1.0, r IN relationships(p) | CASE WHEN r.similarity < w THEN r.similarity ELSE w END) AS weakest_link, "
            "reduce(s = 1.0, r IN relationships(p) | s * r.similarity) AS strength "
            "ORDER BY links DESC, strength DESC, feature LIMIT $limit"
        ),
        defaults={"min_similarity": RESIDUAL_CUT, "limit": 20},
        required=("atlas", "layer"),
    )
)

_add(
    Recipe(
        name="hubs",
        question="Which features of layer L have the most descendants (features whose top-1 ancestry runs through them) within N layers?",
        statement=(
            "MATCH (h:Feature {atlas: $atlas, layer: $layer, module: $module}) "
            "OPTIONAL MATCH p = (h)-[:FLOWS_TO*1..]->(d:Feature) "
            "WHERE d.layer <= h.layer + $layers "
            "AND all(r IN relationships(p) WHERE r.target_rank = 0 AND r.similarity >= $min_similarity) "
            "WITH h, collect(DISTINCT d) AS ds "
            "WHERE size(ds) > 0 "
            "RETURN h.uid AS feature, size([d IN ds WHERE d.layer <= h.layer + 1]) AS children, size(ds) AS descendants, h.label AS label "
            "ORDER BY descendants DESC, feature LIMIT $limit"
        ),
        defaults={"module": "res", "layers": 6, "min_similarity": RESIDUAL_CUT, "limit": 20},
        required=("atlas", "layer"),
    )
)

_add(
    Recipe(
        name="circuit-between-layers",
        question="Which top-1 chains connect residual features of layer A to residual features of layer B, strongest first?",
        statement=(
            "MATCH p = (a:Feature {atlas: $atlas, layer: $from_layer, module: 'res'})-[:FLOWS_TO*1..]->(b:Feature) "
            "WHERE b.layer = $to_layer AND b.module = 'res' "
            "AND all(n IN nodes(p) WHERE n.layer <= $to_layer) "
            "AND all(r IN relationships(p) WHERE r.target_rank = 0 AND r.similarity >= $min_similarity) "
            "RETURN a.uid AS source, b.uid AS target, [n IN nodes(p) | n.uid] AS path, "
            "reduce(s = 1.0, r IN relationships(p) | s * r.similarity) AS strength "
            "ORDER BY strength DESC, source, target LIMIT $limit"
        ),
        defaults={"min_similarity": RESIDUAL_CUT, "limit": 50},
        required=("atlas", "from_layer", "to_layer"),
    )
)


# -- attribution graphs (queries/attribution_graphs.py; imported with `atlas graphs import`) ----------
_add(
    Recipe(
        name="graphs-using-lineage",
        question="Which stored attribution graphs use a feature of the upstream lineage of feature X, and which features?",
        statement=(
            # The upstream flow graph (queries/flow_graph.py, top-1): X's residual chain while links are >= min_similarity,
            # plus the att/mlp predecessors >= module_min_similarity of every residual node on it.
            "MATCH (x:Feature {uid: $uid}) "
            "OPTIONAL MATCH p = (x)<-[:FLOWS_TO*1..]-(r:Feature) "
            "WHERE x.module = 'res' AND all(e IN relationships(p) WHERE e.target_rank = 0 AND e.similarity >= $min_similarity) "
            "AND all(n IN nodes(p) WHERE n.module = 'res' AND n.layer >= x.layer - $depth) "
            "WITH x, collect(DISTINCT r) AS up WITH [x] + up AS chain "
            "UNWIND chain AS c "
            "OPTIONAL MATCH (m:Feature)-[e:FLOWS_TO]->(c) "
            "WHERE c.module = 'res' AND m.module <> 'res' AND e.target_rank = 0 AND e.similarity >= $module_min_similarity "
            "WITH chain, collect(DISTINCT m) AS mods "
            "UNWIND chain + mods AS f "
            "WITH DISTINCT f "
            "MATCH (f)<-[:IS_FEATURE]-(n:GraphNode) "
            "MATCH (g:AttributionGraph {key: n.graph}) WHERE g.complete "
            "WITH g, collect(DISTINCT f.uid) AS features, collect(DISTINCT n.node_id) AS nodes "
            "RETURN g.id AS graph, g.prompt AS prompt, features, nodes ORDER BY size(features) DESC, graph"
        ),
        defaults={"min_similarity": 0.5, "module_min_similarity": 0.15, "depth": 1000},
        required=("uid",),
    )
)

_add(
    Recipe(
        name="graph-feature-origins",
        question="For a stored attribution graph (one prompt), where was each of its atlas features born?",
        statement=(
            # As the API's origin: follow top-1 residual links back while >= min_similarity; the feature is born at the
            # chain's start, in its strongest att/mlp predecessor >= module_min_similarity, else in the residual stream.
            "MATCH (g:AttributionGraph {id: $graph}) WHERE g.complete "
            "MATCH (:GraphNode {graph: g.key})-[:IS_FEATURE]->(f:Feature) "
            "WITH DISTINCT f "
            "OPTIONAL MATCH p = (f)<-[:FLOWS_TO*0..]-(:Feature) "
            "WHERE f.module = 'res' AND all(e IN relationships(p) WHERE e.target_rank = 0 AND e.similarity >= $min_similarity) "
            "AND all(x IN nodes(p) WHERE x.module = 'res') "
            "WITH f, p ORDER BY length(p) DESC "
            "WITH f, head(collect(p)) AS p "
            "WITH f, CASE WHEN p IS NULL THEN f ELSE last(nodes(p)) END AS born "
            "OPTIONAL MATCH (m:Feature)-[e:FLOWS_TO]->(born) "
            "WHERE born.module = 'res' AND m.module <> 'res' AND e.target_rank = 0 AND e.similarity >= $module_min_similarity "
            "WITH f, born, m, e ORDER BY e.similarity DESC "
            "WITH f, born, collect(m)[0] AS m, collect(e.similarity)[0] AS s "
            "RETURN f.uid AS feature, born.layer AS layer, coalesce(m.module, born.module) AS module, born.uid AS born_as, "
            "m.uid AS source, s AS source_similarity ORDER BY layer, module, feature"
        ),
        defaults={"min_similarity": 0.5, "module_min_similarity": 0.15},
        required=("graph",),
    )
)


# Several matchers per edge (issue #28): FLOWS_TO carries `method` (absent = cosine), one edge per matcher and pair.
_add(
    Recipe(
        name="cosine-not-other",
        question="Which top-1 links did cosine find that another matcher ($other) did not?",
        statement=(
            "MATCH (s:Feature)-[e:FLOWS_TO]->(t:Feature) "
            "WHERE t.atlas = $atlas AND t.module = 'res' AND e.method IS NULL AND e.target_rank = 0 "
            "AND NOT EXISTS { (s)-[o:FLOWS_TO]->(t) WHERE o.method = $other AND o.target_rank < $k } "
            "RETURN s.uid AS source, t.uid AS target, s.module AS source_module, t.layer AS layer, "
            "e.similarity AS cosine ORDER BY layer, cosine DESC LIMIT $limit"
        ),
        defaults={"other": "permutation", "k": 1, "limit": 100},
    )
)

_add(
    Recipe(
        name="origin-depends-on-matcher",
        question="Which residual features get a different top-1 residual predecessor from cosine and from $other?",
        statement=(
            "MATCH (t:Feature) WHERE t.atlas = $atlas AND t.module = 'res' "
            "MATCH (c:Feature)-[ec:FLOWS_TO]->(t) WHERE c.module = 'res' AND c.layer = t.layer - 1 "
            "AND ec.method IS NULL AND ec.target_rank = 0 "
            "MATCH (o:Feature)-[eo:FLOWS_TO]->(t) WHERE o.module = 'res' AND o.layer = t.layer - 1 "
            "AND eo.method = $other AND eo.target_rank = 0 AND o <> c "
            "RETURN t.uid AS feature, t.layer AS layer, c.uid AS by_cosine, ec.similarity AS cosine, "
            "o.uid AS by_other, eo.similarity AS other_cosine, eo.score AS other_score "
            "ORDER BY layer, feature LIMIT $limit"
        ),
        defaults={"other": "permutation", "limit": 100},
    )
)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise InvalidInput(f"unknown recipe {name!r} (valid: {', '.join(sorted(RECIPES))})") from None

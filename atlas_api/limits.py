"""Former home of the request limits, kept so ``from atlas_api.limits import RequestPolicy`` (atlas_api/schema.py)
keeps working: the policy is atlas_api.policy, costs atlas_api.cost, error codes atlas_api.errors. New code imports
from those."""

from atlas_api.cost import complexity_rule, operation_shape, selection_cost
from atlas_api.errors import AtlasErrors, error_code, http_error, mask_errors, refusal
from atlas_api.policy import KnownQuery, RequestPolicy, TextLRU, atlas_extension

__all__ = [
    "AtlasErrors",
    "KnownQuery",
    "RequestPolicy",
    "TextLRU",
    "atlas_extension",
    "complexity_rule",
    "error_code",
    "http_error",
    "mask_errors",
    "operation_shape",
    "refusal",
    "selection_cost",
]

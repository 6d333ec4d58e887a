"""What the API hands a steering request to: anything with ``steer(SteerRequest) -> SteerResult``.

Two implementations: the in-process :class:`steering.service.Steerer` (model, SAEs and a sync Neo4j client in
this process) and :class:`steering.remote.RemoteSteerer` (a steering worker over HTTP); tests bring fakes. The
API types its hand-off with :class:`SteerRunner` (atlas_api.app, atlas_api.context) instead of ``Any``.
Torch-free at import, like ``steering.service``'s request and result types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from steering.service import SteerRequest, SteerResult

if TYPE_CHECKING:
    from steering.remote import RemoteSteerer
    from steering.service import Steerer


class SteerRunner(Protocol):
    def steer(self, req: SteerRequest) -> SteerResult:
        """Generate baseline and steered text for ``req``; raises the project's AtlasError subclasses."""
        ...


if TYPE_CHECKING:  # mypy checks here that both implementations keep the protocol

    def _implementations(local: Steerer, remote: RemoteSteerer) -> tuple[SteerRunner, SteerRunner]:
        return local, remote

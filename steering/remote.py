"""The API's client of a steering worker: the :class:`steering.service.Steerer` interface over HTTP.

``steer(req)`` returns the same :class:`SteerResult` or raises the same AtlasError subclasses as the in-process
steerer (``steering.wire``), so the GraphQL mutation does not know where the model runs. Standard library
only (urllib): the API image needs no extra HTTP client for it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from queries.errors import ModelUnavailable
from steering import wire
from steering.service import SteerRequest, SteerResult


class RemoteSteerer:
    def __init__(self, url: str, timeout_s: float = 180.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def steer(self, req: SteerRequest) -> SteerResult:
        body = json.dumps(wire.request_to_json(req)).encode()
        http = urllib.request.Request(
            f"{self.url}/steer", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout_s) as resp:
                return wire.result_from_json(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {
                    "error": "ModelUnavailable",
                    "message": f"the steering worker at {self.url} answered HTTP {exc.code}",
                }
            raise wire.error_from_json(payload) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ModelUnavailable(
                f"the steering worker at {self.url} is unreachable ({reason}); start it (`atlas steer-worker`) or unset "
                "ATLAS_API_STEER_WORKER_URL to steer inside the API process"
            ) from None

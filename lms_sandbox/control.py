"""The control API under `/_sandbox`: what tests use to set up, steer and inspect the sandbox.

    POST  /_sandbox/orgs                        {"org", "api_key"}: create (201) or re-key (200)
    GET   /_sandbox/orgs                        {"orgs": [...]}
    GET   /_sandbox/knobs                       the live knobs
    PUT   /_sandbox/knobs                       any knobs, plus "outage_seconds": N
    GET   /_sandbox/stats                       counts by org, "METHOD /path", status
    POST  /_sandbox/reset                       stats and rate buckets; {"data", "knobs": true}
    GET   /_sandbox/orgs/<org>/learners         {"results": [every learner]}
    POST  /_sandbox/orgs/<org>/learners         insert directly (may set "status")
    PATCH /_sandbox/orgs/<org>/learners/<id>    edit directly, like a hand edit

No auth, no rate limit, no latency and no faults here: it is the test's
back door, not part of the LMS. It is lenient about Content-Type, but
bodies are still checked, and learner data still goes through the LMS's
field rules and unique keys so the store stays consistent.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, patch, post, put
from litestar.params import FromPath

from .config import Knobs, KnobsUpdate
from .errors import LmsError, ValidationFailed, not_found
from .routes import SandboxDependency
from .state import Sandbox
from .store import Learner, LearnerStatus, Organisation
from .validation import decode_object, validate_learner

__all__ = ["CONTROL_HANDLERS"]


T = TypeVar("T")


class OrgCreate(msgspec.Struct, forbid_unknown_fields=True):
    org: str
    api_key: str


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    data: bool = False
    knobs: bool = False


class LearnerDump(msgspec.Struct):
    results: list[Learner]


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise LmsError(422, {"error": "validation_failed", "detail": str(exc)}) from None


def _organisation(sandbox: Sandbox, org: str) -> Organisation:
    organisation = sandbox.store.get(org)
    if organisation is None:
        raise not_found()
    return organisation


def _split_status(data: dict[str, object]) -> LearnerStatus | None:
    """Take the control API's one extra learner field, `status`, out of a body."""
    if "status" not in data:
        return None
    status = data.pop("status")
    if status not in ("active", "deactivated"):
        raise ValidationFailed({"status": ["must be active or deactivated"]})
    return status


@post("/orgs", status_code=200)
async def create_org(
    request: Request[Any, Any, Any], sandbox: SandboxDependency
) -> Response[dict[str, Any]]:
    """Create an organisation, or set its key when it exists: 201 when created, else 200."""
    body = _decode(await request.body(), OrgCreate)
    errors: dict[str, list[str]] = {}
    if not body.org or "/" in body.org:
        errors["org"] = ["must be non-empty, without '/'"]
    if not body.api_key:
        errors["api_key"] = ["must be non-empty"]
    if errors:
        raise ValidationFailed(errors)
    _, created = sandbox.store.add(body.org, body.api_key)
    return Response({"org": body.org, "created": created}, status_code=201 if created else 200)


@get("/orgs")
async def list_orgs(sandbox: SandboxDependency) -> dict[str, list[str]]:
    return {"orgs": sandbox.store.names()}


@get("/knobs")
async def read_knobs(sandbox: SandboxDependency) -> Knobs:
    return sandbox.knobs


@put("/knobs")
async def update_knobs(request: Request[Any, Any, Any], sandbox: SandboxDependency) -> Knobs:
    """Change any knob; `outage_seconds: N` starts an N-second outage now (0 ends it)."""
    sandbox.update_knobs(_decode(await request.body(), KnobsUpdate))
    return sandbox.knobs


@get("/stats")
async def read_stats(sandbox: SandboxDependency) -> dict[str, Any]:
    return sandbox.stats.snapshot()


@post("/reset", status_code=200)
async def reset(request: Request[Any, Any, Any], sandbox: SandboxDependency) -> dict[str, bool]:
    """Clear stats and rate buckets; `{"data": true}` also learners, `{"knobs": true}` knobs."""
    body = _decode(await request.body(), ResetRequest)
    sandbox.reset(data=body.data, knobs=body.knobs)
    return {"reset": True}


@get("/orgs/{org:str}/learners")
async def dump_learners(org: FromPath[str], sandbox: SandboxDependency) -> LearnerDump:
    return LearnerDump(results=_organisation(sandbox, org).all())


@post("/orgs/{org:str}/learners", status_code=201)
async def insert_learner(
    request: Request[Any, Any, Any], org: FromPath[str], sandbox: SandboxDependency
) -> Learner:
    """Insert a learner as if made long ago by hand (adoption tests); may set `status`."""
    organisation = _organisation(sandbox, org)
    data = decode_object(await request.body())
    status: LearnerStatus | None = _split_status(data)
    fields = validate_learner(data, partial=False)
    return organisation.create(fields, status=status or "active")


@patch("/orgs/{org:str}/learners/{learner_id:int}")
async def edit_learner(
    request: Request[Any, Any, Any],
    org: FromPath[str],
    learner_id: FromPath[int],
    sandbox: SandboxDependency,
) -> Learner:
    """Edit a learner as an LMS admin would by hand; may set `status`."""
    organisation = _organisation(sandbox, org)
    data = decode_object(await request.body())
    status = _split_status(data)
    learner = organisation.update(learner_id, validate_learner(data, partial=True), status=status)
    if learner is None:
        raise not_found()
    return learner


CONTROL_HANDLERS = [
    create_org,
    list_orgs,
    read_knobs,
    update_knobs,
    read_stats,
    reset,
    dump_learners,
    insert_learner,
    edit_learner,
]

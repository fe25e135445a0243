"""The LMS API of docs/lms-contract.md, mounted under `/org/{org}/api/v1` behind the gate.

Handlers stay thin: read, validate (validation.py), call the store. The
order of checks inside one request is 404 (no such learner) -> 415 -> 422
-> 409, so an invalid and conflicting write is a 422 (docs/lms-contract.md, "Errors").
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
from litestar import Request, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from .errors import not_found
from .state import Sandbox
from .store import Learner, LearnerStatus, Organisation
from .validation import check_json_content_type, decode_object, parse_list_query, validate_learner

__all__ = ["LMS_DEPENDENCIES", "LMS_HANDLERS", "LearnerPage", "read_json_object"]

# Litestar 2.2x wants injected and path parameters marked explicitly.
OrgDependency: TypeAlias = NamedDependency[Organisation]
SandboxDependency: TypeAlias = NamedDependency[Sandbox]


class LearnerPage(msgspec.Struct):
    """The list endpoint's answer: `next` is the next page number, or null on the last page."""

    results: list[Learner]
    next: int | None


def provide_organisation(org: FromPath[str], sandbox: SandboxDependency) -> Organisation:
    """The request's organisation; the gate has already checked it exists (or auto-created it)."""
    organisation = sandbox.store.get(org)
    if organisation is None:
        raise not_found()
    return organisation


async def read_json_object(request: Request[Any, Any, Any]) -> dict[str, object]:
    """415 unless the body is declared JSON, then 422 unless it is one JSON object."""
    check_json_content_type(request.headers.get("content-type"))
    return decode_object(await request.body())


@get("/learners")
async def list_learners(
    request: Request[Any, Any, Any], organisation: OrgDependency
) -> LearnerPage:
    """By email (case-insensitive), by external_ref (exact), or one page by id."""
    query = parse_list_query(request.scope["query_string"].decode("latin-1"))
    if query.email is not None:
        return _at_most_one(organisation.find_by_email(query.email))
    if query.external_ref is not None:
        return _at_most_one(organisation.find_by_external_ref(query.external_ref))
    results, more = organisation.page(query.page, query.page_size)
    return LearnerPage(results=results, next=query.page + 1 if more else None)


def _at_most_one(found: Learner | None) -> LearnerPage:
    return LearnerPage(results=[] if found is None else [found], next=None)


@post("/learners", status_code=201)
async def create_learner(request: Request[Any, Any, Any], organisation: OrgDependency) -> Learner:
    fields = validate_learner(await read_json_object(request), partial=False)
    return organisation.create(fields)


@get("/learners/{learner_id:int}")
async def read_learner(learner_id: FromPath[int], organisation: OrgDependency) -> Learner:
    learner = organisation.get(learner_id)
    if learner is None:
        raise not_found()
    return learner


@patch("/learners/{learner_id:int}")
async def update_learner(
    request: Request[Any, Any, Any], learner_id: FromPath[int], organisation: OrgDependency
) -> Learner:
    """Changes only the given fields; allowed on deactivated learners too."""
    if organisation.get(learner_id) is None:
        raise not_found()
    fields = validate_learner(await read_json_object(request), partial=True)
    learner = organisation.update(learner_id, fields)
    if learner is None:
        raise not_found()
    return learner


def _set_status(organisation: Organisation, learner_id: int, status: LearnerStatus) -> Learner:
    # Idempotent: setting the status it already has is a no-op that keeps updated_at.
    learner = organisation.update(learner_id, {}, status=status)
    if learner is None:
        raise not_found()
    return learner


@post("/learners/{learner_id:int}/deactivate", status_code=200)
async def deactivate_learner(learner_id: FromPath[int], organisation: OrgDependency) -> Learner:
    return _set_status(organisation, learner_id, "deactivated")


@post("/learners/{learner_id:int}/reactivate", status_code=200)
async def reactivate_learner(learner_id: FromPath[int], organisation: OrgDependency) -> Learner:
    return _set_status(organisation, learner_id, "active")


LMS_HANDLERS = [
    list_learners,
    create_learner,
    read_learner,
    update_learner,
    deactivate_learner,
    reactivate_learner,
]
LMS_DEPENDENCIES = {"organisation": Provide(provide_organisation, sync_to_thread=False)}

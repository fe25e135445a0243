"""A typed async client for the legacy LMS REST API (docs/lms-contract.md).

It knows nothing about SCIM: it speaks learners, returns Structs and raises
the error tree of `errors.py`. Everything stateful (the httpx pool, the retry
policy, a shared rate limiter, a metrics callback) comes in through the
constructor, so one process can hold a client per tenant over one pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Protocol, Self, TypeVar

import httpx
import msgspec

from .deadline import time_left
from .errors import (
    TRANSIENT_STATUSES,
    LmsDeferred,
    LmsNoAnswer,
    LmsUnexpectedResponse,
    error_for_response,
)
from .models import Learner, LearnerPage, LearnerWrite, decode_learner, decode_page, encode_write
from .retry import RetryPolicy, Sleep, build_retrying, parse_retry_after

__all__ = ["DEFAULT_TIMEOUT", "Limiter", "LmsClient", "OnCall"]

logger = logging.getLogger("lms_client")

_T = TypeVar("_T")

#: Connect fast or fail; answers "can take seconds", so reads get longer.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0, read=30.0)

#: A call is not started with less time than this left before the deadline
#: (`lms_client.deadline`): it would be cut off mid-flight.
MIN_CALL_S = 0.5

_LEARNERS = "/api/v1/learners"
_EMPTY_OBJECT = b"{}"

OnCall = Callable[[str, str, float], None]
"""`on_call(endpoint, outcome, seconds)`, once per HTTP attempt.

`endpoint` is a template such as "POST /learners" or "GET /learners/{id}";
`outcome` is the status as text ("201", "429") or "transport".
"""


class Limiter(Protocol):
    """A shared pacer; `acquire` returns when one more request may be sent."""

    async def acquire(self) -> None: ...


class LmsClient:
    """One LMS organisation, reached at `base_url` with its `api_key`.

    Pass `http` to share one connection pool between clients (it is then
    not closed here); otherwise the client makes its own and closes it on
    `aclose()` or on leaving `async with`. `limiter.acquire()` is awaited
    before every HTTP attempt, retries included, so the organisation's rate
    limit is kept rather than learnt from 429s.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        on_call: OnCall | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Token {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._retry = retry if retry is not None else RetryPolicy()
        self._limiter = limiter
        self._timeout = timeout
        self._on_call = on_call
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"LmsClient({self._base_url!r})"  # never the key

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- lookups ---------------------------------------------------------

    async def find_by_email(self, email: str) -> Learner | None:
        """The learner with this email (compared case-insensitively by the LMS), or None."""
        response = await self._call(
            "GET /learners?email", "GET", _LEARNERS, params={"email": email}
        )
        return _first(_decode(decode_page, response))

    async def find_by_external_ref(self, ref: str) -> Learner | None:
        """The learner whose external_ref is exactly `ref`, or None."""
        response = await self._call(
            "GET /learners?external_ref", "GET", _LEARNERS, params={"external_ref": ref}
        )
        return _first(_decode(decode_page, response))

    async def list_learners(self, page: int = 1, page_size: int = 50) -> LearnerPage:
        """One page of every learner by id; `page` from 1, `page_size` 1 to 200."""
        params = {"page": str(page), "page_size": str(page_size)}
        response = await self._call("GET /learners?page", "GET", _LEARNERS, params=params)
        return _decode(decode_page, response)

    async def iter_learners(self, page_size: int = 200) -> AsyncIterator[Learner]:
        """Every learner, page after page, following `next` until it is null.

        Pages are by offset, so learners created during a scan can shift a
        page: a learner may be seen twice or missed (docs/lms-contract.md, "Pagination").
        """
        page: int | None = 1
        while page is not None:
            result = await self.list_learners(page, page_size)
            for learner in result.results:
                yield learner
            if result.next is not None and result.next <= page:
                raise LmsUnexpectedResponse(
                    f"GET {_LEARNERS}: page {page} points back to page {result.next}",
                    status=200,
                )
            page = result.next

    async def get(self, learner_id: int) -> Learner:
        """One learner; LmsNotFound when there is none."""
        path = f"{_LEARNERS}/{learner_id}"
        response = await self._call("GET /learners/{id}", "GET", path)
        return _decode(decode_learner, response)

    # -- writes ----------------------------------------------------------

    async def create(self, learner: LearnerWrite) -> Learner:
        """Create an active learner (POST); pass `external_ref` to link it.

        The LMS has no idempotency keys, and the connection can drop after it
        applied the POST; the retry then meets `409` for the learner this very
        call created. The client does not guess: it raises LmsConflict with
        `learner_id`, and the caller reads that learner and adopts it (or
        reports it) instead of creating a second one.
        """
        response = await self._call(
            "POST /learners", "POST", _LEARNERS, content=encode_write(learner)
        )
        return _decode(decode_learner, response)

    async def update(self, learner_id: int, changes: LearnerWrite) -> Learner:
        """Change only the fields set in `changes` (PATCH); None clears a field."""
        path = f"{_LEARNERS}/{learner_id}"
        response = await self._call(
            "PATCH /learners/{id}", "PATCH", path, content=encode_write(changes)
        )
        return _decode(decode_learner, response)

    async def deactivate(self, learner_id: int) -> Learner:
        """Set status to deactivated; idempotent, so safe to retry."""
        return await self._action(learner_id, "deactivate")

    async def reactivate(self, learner_id: int) -> Learner:
        """Set status to active; idempotent, so safe to retry."""
        return await self._action(learner_id, "reactivate")

    async def _action(self, learner_id: int, action: str) -> Learner:
        path = f"{_LEARNERS}/{learner_id}/{action}"
        # An empty JSON object rather than no body: the LMS answers 422 to a
        # body that is not a JSON object and 415 to a non-JSON content type.
        response = await self._call(
            f"POST /learners/{{id}}/{action}", "POST", path, content=_EMPTY_OBJECT
        )
        return _decode(decode_learner, response)

    # -- plumbing --------------------------------------------------------

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request under the retry policy; return the 2xx response."""
        async for attempt in build_retrying(self._retry, sleep=self._sleep, time_left=time_left):
            with attempt:
                return await self._attempt(endpoint, method, path, params, content)
        raise AssertionError("unreachable: tenacity re-raises or returns")  # pragma: no cover

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
    ) -> httpx.Response:
        if self._limiter is not None:
            await self._limiter.acquire()
        url = self._base_url + path
        log_path = httpx.URL(url).path  # no query string: it can hold an email
        left = time_left()
        if left is not None and left < MIN_CALL_S:
            raise LmsDeferred(1.0, f"{method} {log_path}: no time left for an LMS call")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(left):
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=self._headers,
                    timeout=self._timeout,
                )
        except (httpx.RequestError, TimeoutError) as exc:
            elapsed = time.perf_counter() - started
            self._record(endpoint, "transport", elapsed)
            logger.warning(
                "LMS %s %s failed after %.3fs: %s", method, log_path, elapsed, type(exc).__name__
            )
            raise LmsNoAnswer(
                f"{method} {log_path}: no answer from LMS ({type(exc).__name__}: {exc})"
            ) from exc
        elapsed = time.perf_counter() - started
        status = response.status_code
        self._record(endpoint, str(status), elapsed)
        if status < 400:
            level = logging.DEBUG
        elif status in TRANSIENT_STATUSES or status >= 500:
            level = logging.WARNING  # a fault: worth noticing when it repeats
        else:
            level = logging.INFO  # an answer: the caller decides what it means
        logger.log(level, "LMS %s %s -> %d in %.3fs", method, log_path, status, elapsed)
        if 200 <= status < 300:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise error_for_response(
            method, log_path, status, response.content, retry_after, sent=content
        )

    def _record(self, endpoint: str, outcome: str, seconds: float) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(endpoint, outcome, seconds)
        except Exception:  # metrics must never break a sync
            logger.exception("LMS on_call callback failed")


def _decode(decode: Callable[[bytes], _T], response: httpx.Response) -> _T:
    """Decode a 2xx body; one that breaks docs/lms-contract.md is an answer, not a fault."""
    try:
        return decode(response.content)
    except msgspec.DecodeError as exc:
        request = response.request
        raise LmsUnexpectedResponse(
            f"{request.method} {request.url.path}: LMS answer does not match its contract ({exc})",
            status=response.status_code,
        ) from exc


def _first(page: LearnerPage) -> Learner | None:
    return page.results[0] if page.results else None

"""Errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from speicher.errors import OperationFailed, SpeicherError

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    field: str = Field(description="The request field at fault (dotted path), or empty.")
    reason: str = Field(description="What is wrong with it.")


class ProblemDocument(BaseModel):
    """How every error is answered."""

    type: str = Field("about:blank", description="Always `about:blank`: see `title`.")
    title: str = Field(description="Short name of the kind of error.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="One readable sentence about what went wrong.")
    errors: list[FieldProblem] = Field([], description="Every problem with the request's fields.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDocument} for code in (401, 403, 404, 409, 422, 429, 500)
}


def document_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents response models as ``application/json``; errors are sent as
    ``application/problem+json``, so say that in the OpenAPI document."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
    return schema


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDocument(title=title, status=status, detail=detail, errors=errors or [])
    return JSONResponse(
        body.model_dump(),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def problem_document(exc: SpeicherError) -> dict[str, Any]:
    """The problem document of ``exc``, for answers that are not HTTP responses."""
    errors = [FieldProblem(field=p.field, reason=p.reason) for p in exc.problems]
    return ProblemDocument(
        title=exc.title, status=exc.status, detail=exc.message, errors=errors
    ).model_dump()


def error_response(exc: SpeicherError) -> JSONResponse:
    if isinstance(exc, OperationFailed):
        log.error("%s (%s)", exc.message, exc.detail)
    errors = [FieldProblem(field=p.field, reason=p.reason) for p in exc.problems]
    headers = dict(exc.headers)
    if exc.status == 401:
        # never Basic: a browser that saw a Basic challenge caches the password and sends it
        # with every later request, also with requests a foreign page triggers
        headers["WWW-Authenticate"] = 'Bearer realm="Speicher"'
    return problem(exc.status, exc.title, exc.message, errors, headers or None)


def _field(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return ""  # its location is a character offset, not a field
    loc = list(error["loc"])
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]  # where it was, not which field: a body may have a field named "path"
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(SpeicherError)
    async def speicher_error(_request: Request, exc: SpeicherError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldProblem(field=_field(e), reason=e["msg"]) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.reason}" if e.field else e.reason for e in errors)
        return problem(422, "Invalid input", detail, errors)

    @app.exception_handler(OverflowError)
    async def overflow_error(_request: Request, exc: OverflowError) -> JSONResponse:
        """A number too large for the database (64 bits) or for a float is the caller's error,
        wherever a bound was forgotten, never a 500."""
        log.info("number out of range in a request: %s", exc)
        return problem(422, "Invalid input", "a number in the request is out of range")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return problem(500, "Internal error", "internal error; see the daemon's log")

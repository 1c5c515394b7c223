"""The calls of a vendor speaking edx-proctoring's REST protocol, at the paths and with the
answers edx-proctoring gives them, so such a vendor works with proctorq unchanged: its token,
"ready" and "reviewed" (docs/http.md, "Vendors speaking edx-proctoring's REST protocol")."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from api.deps import UoW
from api.errors import problem, sentence
from api.present import errors, examples
from api.schemas import Email, Word
from api.vendor_tokens import TOKEN_ERRORS, TokenRequestError, issue_token, read_vendor_token
from config import get_settings
from proctoring import edx_callbacks
from proctoring.errors import NotFound

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

CALLBACKS = "/api/edx_proctoring/v1/proctored_exam/attempt/{external_id}"
OK = "OK"

# Shown in the document; the route class has checked the header before anything else.
vendor_jwt = APIKeyHeader(
    name="Authorization",
    scheme_name="VendorJWT",
    auto_error=False,
    description="`JWT <token>` (or `Bearer <token>`), the token from `POST /oauth2/access_token`.",
)


class EdxVendorRoute(APIRoute):
    """The vendor's token first, then its body: a body that is not valid is a 400, as
    edx-proctoring answers it."""

    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()

        async def authorized(request: Request) -> Response:
            settings = get_settings()
            request.state.provider = read_vendor_token(
                request.headers.get("authorization"), settings
            )
            try:
                return await handle(request)
            except RequestValidationError as exc:
                return problem(400, sentence(list(exc.errors())))

        return authorized


router = APIRouter(tags=["edx-proctoring vendors"])
callbacks = APIRouter(
    route_class=EdxVendorRoute,
    tags=["edx-proctoring vendors"],
    dependencies=[Security(vendor_jwt)],
)

TOKEN_FORM = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string", "description": "Or in an HTTP Basic header."},
        "client_secret": {"type": "string"},
        "token_type": {"type": "string", "enum": ["jwt"], "description": "Always a JWT."},
    },
}


def _oauth_error(code: str, example: str) -> dict[str, Any]:
    sentence = TOKEN_ERRORS[code]
    body = {"error": code, "error_description": sentence, "detail": sentence}
    return {"description": example, "content": {"application/json": {"example": body}}}


@router.post(
    "/oauth2/access_token",
    summary="A vendor's access token (OAuth2 client credentials)",
    description="RFC 6749 §4.4: the client id and secret proctorq issued the vendor "
    "(`callback_clients`), in the form or an HTTP Basic header. The token lasts an hour and "
    "names the provider; send it as `Authorization: JWT <token>` to the calls below. Errors "
    "are RFC 6749 §5.2's: `invalid_client` (401), `unsupported_grant_type` and "
    "`invalid_request` (400).",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": TOKEN_FORM,
                    "example": {
                        "grant_type": "client_credentials",
                        "client_id": "mockprock",
                        "client_secret": "…",
                        "token_type": "jwt",
                    },
                }
            },
        }
    },
    responses={
        200: {
            "description": "A token for an hour.",
            "content": {
                "application/json": {
                    "example": {
                        "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6Im1vY2twcm9jayJ9…",
                        "token_type": "JWT",
                        "expires_in": 3600,
                        "scope": "",
                    }
                }
            },
        },
        400: _oauth_error("unsupported_grant_type", "Another grant type, or a form not read."),
        401: _oauth_error("invalid_client", "No such client, or a wrong secret."),
    },
)
async def access_token(request: Request) -> JSONResponse:
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    try:
        answer = issue_token(
            get_settings(), await request.body(), request.headers.get("authorization")
        )
    except TokenRequestError as exc:
        headers = dict(no_store)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="proctorq"'
        # RFC 6749 §5.2's body, with the sentence every error of this API carries.
        body = {"error": exc.code, "error_description": exc.description, "detail": exc.description}
        return JSONResponse(body, status_code=exc.status, headers=headers)
    return JSONResponse(answer, headers=no_store)


SessionPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00]+$",
        description="The vendor's session id: the `id` its registration answer gave.",
        examples=["5b58e7d3-3c4e-4d8f-a3a5-2b6ac0e4d9b1"],
    ),
]


def _answers(*codes: int, **examples: str) -> dict[int | str, dict[str, Any]]:
    """200 "OK", and the error answers as ``errors`` documents them, with this route's
    examples (``e404="…"``). A body or path that is not valid is a 400 here, never a 422."""
    answers: dict[int | str, dict[str, Any]] = {
        200: {"description": "Taken.", "content": {"application/json": {"example": OK}}}
    }
    for code, documented in errors(*codes).items():
        answer = dict(documented)
        if code == 422:  # documented, or the framework would document its own 422
            answer["description"] = "Never: this route answers 400."
        example = examples.get(f"e{code}")
        if example:
            answer["content"] = {"application/json": {"example": {"detail": example}}}
        answers[code] = answer
    return answers


OTHER_VENDOR = "the session 'abc' is not one of provider 'mockprock'"


@callbacks.post(
    CALLBACKS + "/ready",
    summary="The learner's proctoring software is ready",
    description="Moves the attempt to `ready_to_start` if it is still `created` or "
    "`download_software_clicked`; later, it changes nothing. The body is not read. Saying it "
    "again changes nothing.",
    response_model=Literal["OK"],
    responses=_answers(
        401,
        403,
        404,
        e401="The token has expired.",
        e403=OTHER_VENDOR,
        e404="no attempt holds the session 'abc'",
    ),
)
def ready(uow: UoW, request: Request, external_id: SessionPath) -> str:
    with uow() as session:
        edx_callbacks.record_ready(session, request.state.provider, external_id)
    return OK


class ReviewComment(BaseModel):
    """One remark of the reviewer, with where in the recording it was seen."""

    model_config = ConfigDict(extra="allow")

    comment: str = Field(max_length=5000)
    status: str = Field(max_length=100, description="Free text, as the vendor words it.")
    start: float | None = Field(default=None, description="Seconds into the session.")
    stop: float | None = None
    duration: float | None = None


class EdxReviewIn(BaseModel):
    """edx-proctoring's review payload."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["passed", "violation", "suspicious", "not_reviewed"]
    comments: list[ReviewComment] = Field(default_factory=list, max_length=1000)
    reviewed_by: Email | None = None
    # Sent by some vendors; the session in the path names the attempt.
    attempt_code: Word | None = None


ReviewBody = Annotated[
    EdxReviewIn,
    examples(
        {
            "mockprock": (
                "mockprock's review",
                {"status": "passed", "comments": [{"comment": "Looks suspicious", "status": "ok"}]},
            ),
            "violation": (
                "A reviewer saw a violation",
                {
                    "status": "violation",
                    "reviewed_by": "reviewer@vendor.example",
                    "comments": [
                        {
                            "comment": "Second person in the room",
                            "status": "violation",
                            "start": 754,
                            "stop": 781,
                            "duration": 27,
                        }
                    ],
                },
            ),
        }
    ),
]


@callbacks.post(
    CALLBACKS + "/reviewed",
    summary="The vendor's review of a session",
    description="Stored, then applied, held until the attempt is submitted, or only stored, "
    "as docs/behaviour.md says: `passed` verifies the attempt, `not_reviewed` makes it "
    "`error`, `violation` and `suspicious` reject it when `reviewed_by` is a known user's "
    "e-mail and otherwise ask for a second review. A body equal to the attempt's latest "
    "review from this vendor changes nothing; any other is a new review.",
    response_model=Literal["OK"],
    responses={
        **_answers(
            401,
            403,
            e400="no attempt holds the session 'abc'",
            e401="The token has expired.",
            e403=OTHER_VENDOR,
        ),
        412: {
            "description": "The exam is no longer proctored.",
            "content": {"application/json": {"example": "Exam no longer proctored"}},
        },
    },
)
def reviewed(
    uow: UoW, request: Request, external_id: SessionPath, review: ReviewBody
) -> str | JSONResponse:
    comments = [c.model_dump(exclude_none=True) for c in review.comments]
    with uow() as session:
        try:
            edx_callbacks.record_review(
                session,
                request.state.provider,
                external_id,
                status=review.status,
                comments=comments,
                reviewed_by=review.reviewed_by,
            )
        except NotFound as exc:
            return problem(400, exc.detail)
        except edx_callbacks.NoLongerProctored as exc:
            return JSONResponse(exc.detail, status_code=412)
    return OK

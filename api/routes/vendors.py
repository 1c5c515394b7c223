"""What proctoring vendors send: signed review results and "software ready" notices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from api.deps import UoW
from api.present import errors, examples, vendor_answer
from api.routing import VendorRoute
from api.schemas import ReviewIn, ReviewOut, TransitionAccepted
from proctoring import reviews
from proctoring.errors import Invalid

F = TypeVar("F", bound=Callable[..., Any])

ProviderPath = Annotated[
    str, Path(min_length=1, max_length=100, description="The vendor's configured name.")
]
SIGNING = (
    "Signed as the Standard Webhooks specification says: headers `webhook-id`, "
    "`webhook-timestamp` (Unix seconds, within 5 minutes) and `webhook-signature` "
    "(`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with one of the provider's `whsec_` "
    "secrets). The signature is checked before anything is looked up. A `webhook-id` names "
    "one message of the provider, whichever route it came to: a second message with an id "
    "already used (a repeat, or another body) gets the first message's answer again and "
    "changes nothing, a review's answer or a ready notice's as the first message was."
)
WebhookId = Annotated[
    str, Header(alias="webhook-id", description="Unique per message; at most 255 characters.")
]
WebhookTimestamp = Annotated[str, Header(alias="webhook-timestamp", description="Unix seconds.")]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="`v1,<base64 signature>`; several may be given, separated by spaces.",
    ),
]


ReviewBody = Annotated[
    ReviewIn,
    examples(
        {
            "passed": (
                "A clean session",
                {"attempt_code": "Qm9vdGNhbXA...", "status": "passed"},
            ),
            "violation": (
                "A human saw a violation",
                {
                    "external_id": "session-8812",
                    "status": "violation",
                    "reviewed_by": "reviewer@vendor.example",
                    "comments": "Second person in the room at 12:31.",
                },
            ),
        }
    ),
]


async def _signature_headers(
    webhook_id: WebhookId, webhook_timestamp: WebhookTimestamp, webhook_signature: WebhookSignature
) -> None:
    """Shows the signature's headers in the document; the route class has checked them."""


router = APIRouter(
    route_class=VendorRoute, tags=["vendors"], dependencies=[Depends(_signature_headers)]
)


def _message(path: str, summary: str, description: str) -> Callable[[F], F]:
    """A vendor's signed message: 202 once recorded; 401 or 404 before anything is looked up."""
    return router.post(
        path,
        status_code=202,
        responses=errors(401, 404),
        summary=summary,
        description=description + SIGNING,
    )


@_message(
    "/v1/providers/{provider}/reviews",
    "Post a review result",
    "The vendor's verdict on a recorded session. The word in `status` is mapped "
    "with the provider's vocabulary: a passing word verifies the attempt, `not_reviewed` makes "
    "it `error`, a failing word rejects it when a human reviewed it (or no second review is "
    "required) and otherwise asks for a second review. A review that arrives before the "
    "attempt is submitted is held and applied right after the submit. ",
)
def post_review(
    uow: UoW,
    request: Request,
    provider: ProviderPath,
    review: ReviewBody,
) -> ReviewOut | TransitionAccepted:
    if review.attempt_code is None and review.external_id is None:
        raise Invalid("name the attempt with attempt_code or external_id")
    with uow() as session:
        receipt = reviews.record_review(
            session,
            provider=request.state.provider,
            webhook_id=request.state.webhook_id,
            status=review.status,
            attempt_code=review.attempt_code,
            external_id=review.external_id if review.attempt_code is None else None,
            reviewed_by=review.reviewed_by,
            comments=review.comments,
        )
        return vendor_answer(receipt)


@_message(
    "/v1/providers/{provider}/attempts/{external_id}/ready",
    "The learner's proctoring software is ready",
    "Moves the attempt to `ready_to_start` if it is still `created` or "
    "`download_software_clicked`; later, the request ends `noop`. The body may be empty. ",
)
def post_ready(
    uow: UoW,
    request: Request,
    response: Response,
    provider: ProviderPath,
    external_id: Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]+$")],
) -> TransitionAccepted | ReviewOut:
    with uow() as session:
        receipt = reviews.record_vendor_ready(
            session,
            provider=request.state.provider,
            external_id=external_id,
            webhook_id=request.state.webhook_id,
        )
        return vendor_answer(receipt)

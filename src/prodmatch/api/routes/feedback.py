"""POST /v1/feedback: a person's verdict on one product of an answered query (see application.feedback)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from prodmatch.api.deps import State, allow
from prodmatch.application.feedback import record_feedback

router = APIRouter(tags=["feedback"], dependencies=[Depends(allow("match"))])


class FeedbackIn(BaseModel):
    query_id: str = Field(min_length=1, max_length=64, description="from the match response")
    product_id: str = Field(min_length=1, max_length=1000)
    is_match: bool = Field(description="true: this is the product; false: it is not")


class FeedbackOut(FeedbackIn):
    learned_photo: bool = Field(description="the query photo is now one of the product's photos")
    verdicts: int = Field(description="verdicts the catalog holds")
    recalibrated: bool = Field(description="this verdict triggered a recalibration of the match decision")


@router.post("/v1/feedback", response_model=FeedbackOut)
async def feedback(state: State, body: FeedbackIn) -> FeedbackOut:
    """Confirm or reject a product for an answered query; 404 for an unknown query id, 422 for an unknown product."""
    outcome = await state.run(record_feedback, state.catalog, body.query_id, body.product_id, body.is_match)
    return FeedbackOut(**outcome.__dict__)

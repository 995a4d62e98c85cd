"""Request and response bodies (the match response is the CLI's --json object plus decision and keywords)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from prodmatch.matching.service import MAX_TOP_K


class MatchOut(BaseModel):
    id: str
    score: float
    product: dict[str, Any]


class DecisionOut(BaseModel):
    is_match: bool
    confidence: float = Field(description="calibrated probability that the top hit is the queried product")
    threshold: float = Field(description="top score needed for a match at this result's margin")
    real_verdicts: int = Field(0, description="people's verdicts on real queries (feedback) the calibration rests on")
    evidence: dict[str, float] | None = Field(
        None, description='what it was decided on: {"score", "margin"} and "inliers" for a verified photo'
    )


class KeywordOut(BaseModel):
    key: str
    value: str
    share: float = Field(description="share of the top results holding this value")


class MatchResponse(BaseModel):
    query_id: str = Field(description="names this answer: send it back to POST /v1/feedback")
    matches: list[MatchOut]
    model: str
    took_ms: float
    decision: DecisionOut | None = Field(description="null until the catalog has been calibrated")
    keywords: list[KeywordOut]
    box: list[float] | None = Field(
        None, description="[x0, y0, x1, y1] of the query photo's region that matched (0..1); null without region search"
    )
    timings: dict[str, float] | None = Field(
        None,
        description="milliseconds per stage (decode, preprocess, model, verify, search, decide, log); with ?timings=1",
    )


class TextQuery(BaseModel):
    text: str = Field(min_length=1, description="a product description")
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    filters: list[str] = Field(default_factory=list, description='e.g. ["colour=red", "price<=50"]')
    min_score: float | None = None


class ProductOut(BaseModel):
    id: str
    product: dict[str, Any]


class ProductPage(BaseModel):
    total: int
    offset: int
    items: list[ProductOut]

"""POST /v1/match/image, /v1/match/text and /v1/match (photo and text together)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from prodmatch.api.deps import Filters, State, TopK
from prodmatch.api.schemas import MatchResponse, TextQuery
from prodmatch.api.state import Query as MatchQuery
from prodmatch.errors import InvalidImageError
from prodmatch.matching.keywords import keywords
from prodmatch.stores.filters import parse_filters

router = APIRouter(prefix="/v1/match", tags=["match"])
MinScore = Annotated[float | None, Query(description="drop matches scoring below this")]


async def respond(
    state: State, query: MatchQuery, top_k: int, filters: Filters, min_score: float | None
) -> MatchResponse:
    """Run the query, decide, extract keywords, log it; the one path every match route takes."""
    result = await state.match(query, top_k, filters)
    if min_score is not None:
        result.matches = [m for m in result.matches if m.score >= min_score]
    kind = "image" if query.image is not None else "text"
    decision = await state.run(state.service.decision, kind, result)
    state.log(query, result, decision)
    shares = await state.run(state.value_shares)
    return MatchResponse(
        **result.as_dict(),
        decision=None if decision is None else decision.__dict__,
        keywords=[k.__dict__ for k in keywords([m.product for m in result.matches], shares)],
    )


async def read_upload(upload: UploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise InvalidImageError(f"{upload.filename or 'image'}: the upload is empty")
    return data


@router.post("/image", response_model=MatchResponse)
async def match_image(
    state: State,
    filters: Filters,
    image: Annotated[UploadFile, File(description="the query photo")],
    top_k: TopK = 10,
    min_score: MinScore = None,
) -> MatchResponse:
    """Products matching a photo."""
    return await respond(state, MatchQuery(image=await read_upload(image)), top_k, filters, min_score)


@router.post("/text", response_model=MatchResponse)
async def match_text(state: State, body: TextQuery) -> MatchResponse:
    """Products matching a description."""
    return await respond(state, MatchQuery(text=body.text), body.top_k, parse_filters(body.filters), body.min_score)


@router.post("", response_model=MatchResponse)
async def match_both(
    state: State,
    filters: Filters,
    image: Annotated[UploadFile, File(description="the query photo")],
    text: Annotated[str, Form(description='what to change or stress, e.g. "but in red"')],
    image_weight: Annotated[float, Form(ge=0.0, le=1.0, description="weight of the photo's scores")] = 0.5,
    top_k: TopK = 10,
    min_score: MinScore = None,
) -> MatchResponse:
    """A photo and a text together: score = w * photo score + (1 - w) * text score, per candidate product."""
    query = MatchQuery(image=await read_upload(image), text=text, image_weight=image_weight)
    return await respond(state, query, top_k, filters, min_score)

"""POST /v1/match/image, /v1/match/text and /v1/match (photo and text together): thin faces of the match use case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from prodmatch.api.deps import Filters, State, TopK, allow
from prodmatch.api.observability import request_id_of
from prodmatch.api.schemas import MatchResponse, TextQuery
from prodmatch.application.querying import MatchQuery
from prodmatch.errors import InvalidImageError
from prodmatch.stores.filters import parse_filters

router = APIRouter(prefix="/v1/match", tags=["match"], dependencies=[Depends(allow("match"))])
MinScore = Annotated[float | None, Query(description="drop matches scoring below this")]


async def respond(state: State, request: Request, query: MatchQuery) -> MatchResponse:
    query.request_id = request_id_of(request.scope)
    answer = await state.match(query)
    return MatchResponse.model_validate(answer.as_dict())


async def read_upload(upload: UploadFile) -> bytes:
    data = await upload.read()
    if not data:
        raise InvalidImageError(f"{upload.filename or 'image'}: the upload is empty")
    return data


@router.post("/image", response_model=MatchResponse)
async def match_image(
    state: State,
    request: Request,
    filters: Filters,
    image: Annotated[UploadFile, File(description="the query photo")],
    top_k: TopK = 10,
    min_score: MinScore = None,
) -> MatchResponse:
    """Products matching a photo."""
    query = MatchQuery(image=await read_upload(image), top_k=top_k, filters=filters, min_score=min_score)
    return await respond(state, request, query)


@router.post("/text", response_model=MatchResponse)
async def match_text(state: State, request: Request, body: TextQuery) -> MatchResponse:
    """Products matching a description."""
    filters = parse_filters(body.filters)
    return await respond(
        state, request, MatchQuery(text=body.text, top_k=body.top_k, filters=filters, min_score=body.min_score)
    )


@router.post("", response_model=MatchResponse)
async def match_both(
    state: State,
    request: Request,
    filters: Filters,
    image: Annotated[UploadFile, File(description="the query photo")],
    text: Annotated[str, Form(min_length=1, description='what to change or stress, e.g. "but in red"')],
    image_weight: Annotated[float, Form(ge=0.0, le=1.0, description="weight of the photo's scores")] = 0.5,
    top_k: TopK = 10,
    min_score: MinScore = None,
) -> MatchResponse:
    """A photo and a text together: score = w * photo score + (1 - w) * text score, per candidate product."""
    query = MatchQuery(await read_upload(image), text, image_weight, top_k, filters, min_score)
    return await respond(state, request, query)

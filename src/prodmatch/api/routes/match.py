"""POST /v1/match/image, /v1/match/text and /v1/match (photo and text together): thin faces of the match use case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from prodmatch.api.deps import Filters, State, TopK, allow
from prodmatch.api.observability import request_id_of
from prodmatch.api.schemas import MatchResponse, TextQuery
from prodmatch.application.querying import MatchQuery
from prodmatch.errors import InvalidImageError
from prodmatch.stores.filters import parse_filters

router = APIRouter(prefix="/v1/match", tags=["match"], dependencies=[Depends(allow("match"))])
MinScore = Annotated[float | None, Query(description="drop matches scoring below this")]
ShowTimings = Annotated[bool, Query(alias="timings", description="add milliseconds per stage to the answer")]


async def respond(state: State, request: Request, query: MatchQuery, timings: bool) -> Response:
    """The answer as MatchResponse's JSON, with `timings` only when asked (returned as a ready response, so
    FastAPI does not validate and serialise it a second time)."""
    query.request_id, query.profile = request_id_of(request.scope), timings
    answer = await state.match(query)
    response = MatchResponse.model_validate(answer.as_dict())
    return JSONResponse(response.model_dump(mode="json", exclude=None if timings else {"timings"}))


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
    timings: ShowTimings = False,
) -> Response:
    """Products matching a photo."""
    query = MatchQuery(image=await read_upload(image), top_k=top_k, filters=filters, min_score=min_score)
    return await respond(state, request, query, timings)


@router.post("/text", response_model=MatchResponse)
async def match_text(state: State, request: Request, body: TextQuery, timings: ShowTimings = False) -> Response:
    """Products matching a description."""
    filters = parse_filters(body.filters)
    query = MatchQuery(text=body.text, top_k=body.top_k, filters=filters, min_score=body.min_score)
    return await respond(state, request, query, timings)


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
    timings: ShowTimings = False,
) -> Response:
    """A photo and a text together: score = w * photo score + (1 - w) * text score, per candidate product."""
    query = MatchQuery(await read_upload(image), text, image_weight, top_k, filters, min_score)
    return await respond(state, request, query, timings)

"""Drop-in routes for clients written against the designs prodmatch replaces (../shared/seeds/: 000 MVP plan,
002 image search platform, 003 reverse image search, 004 FAISS + MongoDB + Triton pipeline), mounted only by
`prodmatch serve --compat` (serve.compat_routes).

Each route is a translation, not a second implementation: it builds a MatchQuery, runs the same match use case as
/v1 (AppState.match: matching, decision, query log, embedding cache), behind the same key check and rate limits
(allow("match")) and body limits, and reshapes the answer. 004's errors keep that design's FastAPI shape
({"detail": ...}); the others answer prodmatch's documented {"error": {...}}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as FormUpload
from starlette.exceptions import HTTPException

from prodmatch.api.deps import State, allow
from prodmatch.api.errors import error_body
from prodmatch.api.observability import request_id_of
from prodmatch.api.routes import products
from prodmatch.application.querying import MatchAnswer, MatchQuery
from prodmatch.errors import InvalidImageError, InvalidQueryError, ProdmatchError
from prodmatch.matching.service import MAX_TOP_K, Match
from prodmatch.stores.records import ImageRef

MVP_TOP_K = 5  # 000 answered its top few; 5 unless the client asks for top_k
REVERSE_TOP_K = 20  # 003: "fetch metadata for top 20 similar images"
PLATFORM_TOP_K = 10  # 002's default top_k
M = TypeVar("M", bound=BaseModel)
OptionalTopK = Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description="number of products")]


class DetailErrors(APIRoute):
    """A route whose errors read {"detail": ...} with the status prodmatch gives them, as the FastAPI service of
    design 004 answered (HTTPException); validation errors keep FastAPI's own list of problems. Wrapping the
    route's handler catches what its dependencies raise too (a missing key: 401, a client over its rate: 429)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_detail_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
            except ProdmatchError as exc:
                return await _as_detail(request, exc)

        return with_detail_errors


async def _as_detail(request: Request, exc: ProdmatchError) -> Response:
    """The app's own answer to EXC (its status, Retry-After, WWW-Authenticate), with the body as {"detail": ...}."""
    handlers = request.app.exception_handlers
    handle = next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)
    answer: Response = await handle(request, exc)
    message = json.loads(bytes(answer.body))["error"]["message"]
    kept = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
    return JSONResponse({"detail": message}, status_code=answer.status_code, headers=kept)


router = APIRouter(tags=["compat"], dependencies=[Depends(allow("match"))])
# Design 004's routes answer errors as {"detail": ...}, the body-size middleware included (api/errors.py).
DETAIL_PATHS = frozenset({"/match-product"})
detail_router = APIRouter(tags=["compat"], dependencies=[Depends(allow("match"))], route_class=DetailErrors)


async def _answer(state: State, request: Request, query: MatchQuery) -> MatchAnswer:
    query.request_id = request_id_of(request.scope)
    return await state.match(query)


async def _read(upload: FormUpload | None) -> bytes:
    if upload is None:
        raise InvalidImageError("send the photo as a multipart file field named 'image' (or 'file')")
    data = await upload.read()
    if not data:
        raise InvalidImageError(f"{upload.filename or 'image'}: the upload is empty")
    return data


# 004: the single nearest product, as {"status", "result": {"match", "distance"}}.
@detail_router.post("/match-product")
async def match_product(
    state: State, request: Request, image: Annotated[UploadFile, File(description="the query photo")]
) -> dict[str, Any]:
    """Design 004: the nearest product to a photo and its cosine distance (1 - similarity)."""
    answer = await _answer(state, request, MatchQuery(image=await _read(image), top_k=1))
    if not answer.result.matches:
        return {"status": "success", "result": {"match": None, "message": "No matches found"}}
    best = answer.result.matches[0]
    match = {"_id": best.id, **best.product}
    # A verified score can exceed 1 (its inlier bonus); the design's distance is a cosine distance, never below 0.
    return {"status": "success", "result": {"match": match, "distance": round(max(0.0, 1.0 - best.score), 6)}}


def _mvp_matches(answer: MatchAnswer) -> dict[str, Any]:
    return {"matches": [{**m.product, "product_id": m.id, "score": m.score} for m in answer.result.matches]}


# 000: {"matches": [{product fields, "product_id", "score"}]} for a photo or a text.
@router.post("/match-image")
async def match_image(
    state: State,
    request: Request,
    file: Annotated[UploadFile | None, File(description="the query photo (000's field name)")] = None,
    image: Annotated[UploadFile | None, File(description="the query photo, under the other common name")] = None,
    top_k: OptionalTopK = None,
    form_top_k: Annotated[int | None, Form(alias="top_k", ge=1, le=MAX_TOP_K)] = None,
) -> dict[str, Any]:
    """Design 000: the products nearest a photo (top 5 unless top_k, as a query parameter or form field)."""
    data = await _read(file or image)
    query = MatchQuery(image=data, top_k=top_k or form_top_k or MVP_TOP_K)
    return _mvp_matches(await _answer(state, request, query))


class MvpTextQuery(BaseModel):
    text: str = Field(min_length=1, description="a product description")
    top_k: int = Field(MVP_TOP_K, ge=1, le=MAX_TOP_K)


def _body_doc(content: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """OpenAPI for a body read by hand (its content type decides how): one schema per content type."""
    return {
        "requestBody": {"required": True, "content": {kind: {"schema": schema} for kind, schema in content.items()}}
    }


_PHOTO_FORM = {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}


@router.post(
    "/match-text",
    openapi_extra=_body_doc(
        {"application/json": MvpTextQuery.model_json_schema(), "multipart/form-data": MvpTextQuery.model_json_schema()}
    ),
)
async def match_text(state: State, request: Request) -> dict[str, Any]:
    """Design 000: the products nearest a description: JSON {"text": ..., "top_k": ...}, or a form field text."""
    fields = await _fields(request, state.settings.serve.max_json_bytes)
    body = _validated(MvpTextQuery, fields)
    return _mvp_matches(await _answer(state, request, MatchQuery(text=body.text, top_k=body.top_k)))


class PlatformQuery(BaseModel):
    query: str = Field(min_length=1, description="what to look for")
    top_k: int = Field(PLATFORM_TOP_K, ge=1, le=MAX_TOP_K)


# 003 (multipart photo) and 002 (JSON text) share the path; the content type says which design is calling.
@router.post(
    "/search",
    openapi_extra=_body_doc(
        {"multipart/form-data": _PHOTO_FORM, "application/json": PlatformQuery.model_json_schema()}
    ),
)
async def search(state: State, request: Request) -> Any:
    """Design 003 (multipart/form-data with a photo in 'image' or 'file'): similar images with keywords and
    sources, top 20. Design 002 (JSON {"query": ..., "top_k": 10}): results with scores and metadata."""
    if _is_form(request):
        form = await _form(request)
        try:
            data = await _read(_upload(form, "image") or _upload(form, "file"))
        finally:
            await form.close()
        answer = await _answer(state, request, MatchQuery(image=data, top_k=REVERSE_TOP_K))
        return await _reverse_search(state, request, answer)
    fields = await _fields(request, state.settings.serve.max_json_bytes)
    body = _validated(PlatformQuery, fields)
    answer = await _answer(state, request, MatchQuery(text=body.query, top_k=body.top_k))
    results = [{"id": m.id, "score": m.score, "metadata": m.product} for m in answer.result.matches]
    return {"results": results, "took_ms": answer.result.took_ms}


async def _reverse_search(state: State, request: Request, answer: MatchAnswer) -> dict[str, Any]:
    matches = answer.result.matches
    stored = await state.run(state.catalog.facts.products, [m.id for m in matches])
    images = {pid: product.images[0] for pid, product in stored.items() if product.images}
    return {
        "keywords": [keyword.value for keyword in answer.keywords],
        "similar_images": [_similar_image(request, m, images.get(m.id)) for m in matches],
    }


def _similar_image(request: Request, match: Match, image: ImageRef | None) -> dict[str, Any]:
    source_url, source_domain = source_of(image)
    thumbnail = request.url_for("compat_image", product_id=match.id).include_query_params(thumbnail=1)
    return {
        "id": match.id,
        "thumbnail_url": str(thumbnail),
        "source_url": source_url,
        "source_domain": source_domain,
        "similarity": min(1.0, match.score),  # a similarity in [0, 1] as the design has it (verified scores exceed 1)
    }


def source_of(image: object | None) -> tuple[str | None, str | None]:
    """Where a catalog image came from (its URL when the catalog gave one) and that URL's site ("www." dropped,
    as 003's example names "flickr.com"). getattr: ImageRef.source_url arrives with the URL feeds."""
    url = getattr(image, "source_url", None)
    if not url:
        return None, None
    host = urlsplit(url).hostname
    return url, (host.removeprefix("www.") if host else None)


# 003: the product's image, or its thumbnail.
@router.get("/image/{product_id}", name="compat_image", response_class=FileResponse)
async def image(
    state: State,
    product_id: str,
    thumbnail: Annotated[bool, Query(description="1: the small JPEG made at ingest")] = False,
) -> FileResponse:
    """Design 003: the image of a result (its id from POST /search); ?thumbnail=1 for the thumbnail."""
    if thumbnail:
        return await products.product_thumbnail(state, product_id, 0)
    return await products.product_image(state, product_id, 0)


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").lower()
    return content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))


async def _form(request: Request) -> FormData:
    """The request's form; a malformed one is the documented 400, not Starlette's own error body."""
    try:
        return await request.form()
    except HTTPException as exc:
        raise InvalidQueryError(f"the form could not be read: {exc.detail}") from exc


def _upload(form: FormData, name: str) -> FormUpload | None:
    value = form.get(name)
    return value if isinstance(value, FormUpload) else None


async def _fields(request: Request, json_limit: int) -> dict[str, Any]:
    """The request's fields: a form's text fields, or a JSON object (at most JSON_LIMIT bytes)."""
    if _is_form(request):
        form = await _form(request)
        await form.close()  # only its text fields are used
        return {key: value for key, value in form.items() if isinstance(value, str)}
    raw = await request.body()
    if len(raw) > json_limit:
        raise JsonTooLarge(json_limit)
    try:
        fields = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidQueryError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(fields, dict):
        raise InvalidQueryError("send a JSON object (Content-Type: application/json)")
    return fields


def _validated(model: type[M], fields: dict[str, Any]) -> M:
    """FIELDS as MODEL; the app's 422 (invalid_request) when they do not fit, as for /v1 bodies."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False), body=fields) from exc


class JsonTooLarge(InvalidQueryError):
    """A JSON body over serve.max_json_bytes on a path that also takes uploads."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over the limit of {limit} bytes")
        self.limit = limit


def too_large(_request: Request, exc: Exception) -> JSONResponse:
    """413, as the body-size middleware answers, for a JSON body read whole here (/search takes photos too, so
    the middleware lets the larger upload limit through on that path)."""
    return JSONResponse(error_body("too_large", str(exc)), status_code=413)

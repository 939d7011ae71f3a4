"""The FastAPI app of ``matcher serve``: one process, one index, images matched off the event loop.

The index loads in a background thread when the app starts (``/readyz`` answers 503 until it has), then a
``MicroBatcher`` gathers the images of concurrent requests into CNN batches and an ``Engine`` watches the index
for newly published versions. Every error is JSON: ``{"error": {"code": ..., "message": ...}}``.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..cascade import CascadeSettings
from ..index import IndexVersion
from ..inputs import Listing, load_or_error
from ..scan import result_row
from .batcher import MicroBatcher, QueueFull
from .engine import Engine, model_of
from .limits import BodyLimit
from .metrics import Metrics
from .requests import ApiError, listing_fields, read_uploads, top_k_of
from .schemas import (BatchResponse, ErrorResponse, HealthResponse, IndexResponse, MatchResponse, ReloadResponse)
from .settings import ServiceSettings

log = logging.getLogger(__name__)
ENDPOINTS = ("/v1/match", "/v1/match/batch", "/v1/index", "/v1/admin/reload", "/healthz", "/readyz", "/metrics")
ERRORS = {status: {"model": ErrorResponse} for status in (400, 413, 415, 422, 429, 503)}
_IMAGE = {"type": "string", "format": "binary"}
_FIELDS = {"listing_id": {"type": "string"}, "title": {"type": "string"},
           "price": {"type": "string", "description": "a number in the catalog's currency, e.g. 12.50"},
           "top_k": {"type": "integer", "minimum": 1}}


def _body(images: dict, *, raw: bool = False) -> dict:
    """The OpenAPI requestBody of a match endpoint (the handlers read the body themselves, within the limit);
    ``raw``: a bare image body is accepted too (its listing fields then go in the query string)."""
    form = {"type": "object", "required": ["image"], "properties": {"image": images, **_FIELDS}}
    content = {"multipart/form-data": {"schema": form}}
    if raw:
        content.update({media: {"schema": _IMAGE} for media in ("image/jpeg", "image/png", "image/webp")})
    return {"requestBody": {"required": True, "content": content}}


class Service:
    """What the endpoints share: the engine once loaded, its batcher and the metrics."""

    def __init__(self, index_dir: Path, settings: ServiceSettings, cascade: CascadeSettings, threads: int | None):
        self.index_dir, self.settings, self.cascade, self.threads = Path(index_dir), settings, cascade, threads
        self.metrics = Metrics()
        self.engine: Engine | None = None
        self.batcher: MicroBatcher | None = None
        self.load_error = ""

    def load(self) -> None:
        """Open the index and start batching and watching (in a background thread; the app answers meanwhile)."""
        try:
            engine = Engine.open(self.index_dir, settings=self.cascade, threads=self.threads,
                                 on_switch=self._switched)
        except Exception as exc:  # noqa: BLE001 - not ready, and /readyz says why
            self.load_error = str(exc)
            log.error("cannot load index %s: %s", self.index_dir, exc)
            return
        self.batcher = MicroBatcher(engine, max_batch_size=self.settings.max_batch_size,
                                    max_wait_s=self.settings.max_batch_wait_ms / 1000.0,
                                    max_queue=self.settings.max_queue, on_batch=self.metrics.batch_size.observe)
        self.metrics.serving(engine.version.folder.name, model_of(engine.version))
        engine.watch(self.settings.reload_interval_s)
        self.engine = engine

    def _switched(self, version: IndexVersion) -> None:
        self.metrics.reloads.inc()
        self.metrics.serving(version.folder.name, model_of(version))

    def ready(self) -> Engine:
        if self.engine is None:
            raise ApiError(503, "not_ready", self.load_error or "the index is still loading",
                           {"Retry-After": "1"})
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.batcher is not None:
            self.batcher.close()

    async def match(self, uploads: list[tuple[str, bytes]], fields: dict[str, str], top_k: int) -> list[dict]:
        """Decode (in a worker thread), match (batched) and answer one row per upload, in order."""
        self.ready()
        images = await run_in_threadpool(lambda: [load_or_error(data, name=name) for name, data in uploads])
        try:
            future = self.batcher.submit(images)
        except QueueFull as exc:
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        self.metrics.queue_depth.set(self.batcher.depth)
        answers = await asyncio.wrap_future(future)
        rows = []
        for position, ((name, _), (result, version)) in enumerate(zip(uploads, answers)):
            listing = Listing(name, Path(name), fields, position)
            row = result_row(listing, result, top_k, version.typical_prices if version else {})
            row.pop("path")
            row.update(checks=result.checks, index_version=version.folder.name if version else None,
                       model=model_of(version) if version else None)
            self.metrics.verdicts.labels(verdict=row["verdict"] or row["status"]).inc()
            rows.append(row)
        return rows


def create_app(index_dir: str | Path, settings: ServiceSettings = ServiceSettings(), *,
               admin_token: str | None = None, cascade: CascadeSettings = CascadeSettings(),
               threads: int | None = None) -> FastAPI:
    """The service for the published version of ``index_dir``.

    admin_token : the bearer token of the admin endpoints (``matcher serve`` reads ``MATCHER_ADMIN_TOKEN``);
        None disables them (404)
    """
    service = Service(Path(index_dir), settings, cascade, threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=service.load, name="matcher-load", daemon=True).start()
        yield
        service.close()

    app = FastAPI(title="matcher", version="0.1.0", lifespan=lifespan,
                  description="Finds listing images that copy or imitate brands' genuine reference photos.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    _add_handlers(app, service)

    @app.post("/v1/match", response_model=MatchResponse, responses=ERRORS, openapi_extra=_body(_IMAGE, raw=True),
              summary="Match one listing image (multipart field 'image', or a raw image/* body)")
    async def match(request: Request):
        uploads, fields = await read_uploads(request, 1)
        top_k = top_k_of(fields, settings.top_k, settings.max_top_k)
        row = (await service.match(uploads, listing_fields(fields), top_k))[0]
        if row["status"] != "ok":
            raise ApiError(422, row["status"], row["error"])
        return row

    @app.post("/v1/match/batch", response_model=BatchResponse, responses=ERRORS,
              openapi_extra=_body({"type": "array", "items": _IMAGE}),
              summary="Match several listing images (repeated multipart field 'image'); results in request order")
    async def match_batch(request: Request):
        uploads, fields = await read_uploads(request, settings.max_batch_images)
        top_k = top_k_of(fields, settings.top_k, settings.max_top_k)
        return {"results": await service.match(uploads, listing_fields(fields), top_k)}

    @app.get("/v1/index", response_model=IndexResponse, responses={503: {"model": ErrorResponse}})
    async def index_info():
        version = service.ready().version
        manifest, fingerprint = version.manifest, version.manifest.get("fingerprint", {})
        return {"version": version.folder.name, "created": manifest.get("created"), "model": model_of(version),
                "runtime": fingerprint.get("runtime"), "region_runtime": fingerprint.get("region_runtime"),
                "operating_threshold": version.scorer.threshold, "references": len(version.refs.references),
                "brands": version.refs.brands}

    @app.post("/v1/admin/reload", response_model=ReloadResponse,
              responses={status: {"model": ErrorResponse} for status in (403, 404, 503)})
    async def reload(request: Request):
        if admin_token is None:
            raise ApiError(404, "not_found", "admin endpoints are disabled (set MATCHER_ADMIN_TOKEN to enable them)")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
            raise ApiError(403, "forbidden", "admin endpoints need 'Authorization: Bearer <MATCHER_ADMIN_TOKEN>'")
        engine = service.ready()
        reloaded = await run_in_threadpool(engine.reload)
        return {"reloaded": reloaded, "version": engine.version.folder.name}

    @app.get("/healthz", response_model=HealthResponse)
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
    async def readyz():
        service.ready()
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics():
        if service.batcher is not None:
            service.metrics.queue_depth.set(service.batcher.depth)
        return Response(service.metrics.text(), media_type=service.metrics.content_type)

    return app


def _add_handlers(app: FastAPI, service: Service) -> None:
    """JSON errors for every failure, and the request metrics."""

    def error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(422, "invalid_request", "; ".join(str(e.get("msg", e)) for e in exc.errors())[:500])

    @app.middleware("http")
    async def count(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        endpoint = request.url.path if request.url.path in ENDPOINTS else "other"
        service.metrics.requests.labels(endpoint=endpoint, code=str(response.status_code)).inc()
        service.metrics.duration.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        return response

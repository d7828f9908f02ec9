"""The FastAPI application: `create_app(settings)`; models and the index load once, in `lifespan`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.routing import Route

from app.compose import build_retriever, load_settings, open_collection
from app.errors import install_error_handlers
from app.ingest import Ingest
from app.limits import BodyIdleLimit, BodyLimitMiddleware, DrainUnreadBody
from app.observability import RequestMetricsMiddleware, ServiceMetrics
from app.routes import audio, health, jobs, metrics, page, search, waveform
from app.routes.page import STATIC_DIR
from app.security import JsonCORSMiddleware, SecurityHeadersMiddleware, say_reads_are_open
from app.settings import Settings
from index.collection import Collection
from retrieval.pipeline import Retriever

DOCS_ASSETS = "/static/api-docs"  # the API documentation pages' scripts and styles (fastapi-offline's)

log = logging.getLogger(__name__)

DESCRIPTION = """Search a collection of sounds by describing them in words, or with a sound like them.

Reads (`/search`, `/search/audio`, `/exports`, `GET /audio...`, `GET /jobs...`) are open unless the server
sets `RETRIEVAL_PROTECT_READS`; writes (`POST /audio`, `PATCH /audio/{id}`, `DELETE /audio/{id}`, `DELETE
/jobs/{id}`) need the API key (`RETRIEVAL_API_KEY`), sent as `X-API-Key` or `Authorization: Bearer`. The web
page is at `/`.
"""
TAGS = [{"name": "search", "description": "text queries and query by example"},
        {"name": "audio", "description": "the clips of the collection"},
        {"name": "jobs", "description": "uploads acknowledged and being indexed"},
        {"name": "health", "description": "probes and Prometheus metrics"},
        {"name": "page", "description": "the web page"}]


ROUTERS = [module.router for module in (search, audio, waveform, jobs, health, metrics, page)]


def route_methods(routers: list[APIRouter]) -> list[str]:
    """Every HTTP method some route of these routers answers, sorted."""
    return sorted({method for router in routers for route in router.routes if isinstance(route, APIRoute)
                   for method in route.methods or ()})


def create_app(settings: Settings | None = None, *, retriever: Retriever | None = None,
               collection: Collection | None = None) -> FastAPI:
    """The service over `settings` (read from the environment when omitted). A ready `retriever` may be
    passed to skip loading the models (tests share one), and a `collection` opened with it (`retrieval
    serve` opens both before it listens); the service closes the collection when it stops."""
    given = collection
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = retriever if retriever is not None else await run_in_threadpool(build_retriever, settings)
        collection = given if given is not None else await run_in_threadpool(open_collection, settings, model)
        ingest = await run_in_threadpool(Ingest, settings, collection)
        app.state.retriever, app.state.collection, app.state.ingest = model, collection, ingest
        app.state.metrics.watch_index(collection.count)
        app.state.metrics.watch_ingest(ingest.queue)
        app.state.metrics.watch_query_cache(model.text)
        # in the event loop's thread, which lives as long as the service: the worker process asks to be
        # killed when the thread that started it ends (PR_SET_PDEATHSIG), and a thread-pool thread ends
        # after a few idle seconds
        ingest.start()
        log.info("serving %d clips from %s with model %s", collection.count(), settings.data_dir,
                 model.spec.id)
        try:
            yield
        finally:
            app.state.collection = app.state.ingest = None
            await run_in_threadpool(ingest.stop)
            await run_in_threadpool(collection.close)

    # /docs and /redoc with their scripts served here, not from a CDN: they work on a machine without internet
    app = FastAPIOffline(title="Audio retrieval", version="0.1.0", description=DESCRIPTION, openapi_tags=TAGS,
                         lifespan=lifespan, static_url=DOCS_ASSETS)
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.retriever = app.state.collection = app.state.ingest = None
    install_error_handlers(app)
    # added innermost first: CORS wraps the rest, so even a 413 carries its headers, and the security
    # headers wrap CORS, so its preflight answers carry them too
    app.add_middleware(BodyIdleLimit)  # a body that stops arriving: 408
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(DrainUnreadBody)  # around the limits: their early 413 drains too (a 408 closes)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    if not settings.protect_reads:  # the schema says so: a key is optional on the read routes
        say_reads_are_open(app, ROUTERS)
    app.state.route_methods = [(route.path_regex, frozenset(route.methods or ())) for route in
                               [*app.routes, *(r for router in ROUTERS for r in router.routes)]
                               if isinstance(route, Route)]  # for a 405's Allow (app/errors.py)
    if settings.cors_origins:  # the middleware answers the preflight (OPTIONS) itself
        app.add_middleware(JsonCORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=route_methods(ROUTERS),
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "Range"],
                           expose_headers=["Content-Range", "Accept-Ranges", "Content-Disposition"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

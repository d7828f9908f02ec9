"""GET /metrics in the Prometheus text format, from this app's own registry."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text exposition format"}},
            description="Request latency histograms by route, query-encode and search time, upload "
                        "encode time and the index size. Never needs a key.")
def metrics(service_metrics: MetricsDep) -> Response:
    # a plain def: the index-size gauge reads the store, which must not block the event loop
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)

"""Prometheus metrics of one app, in its own registry (several apps in one process do not clash)."""

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.ingest.queue import JobQueue
from retrieval.contracts import SentenceEncoder
from retrieval.query_cache import QueryCache

# request latencies span a 1 ms health check to a minute-long upload of a long clip
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RATE_WINDOW_S = 60.0
UNMATCHED = "unmatched"  # the route label of requests no route took, so 404 probes do not grow the series


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "retrieval_http_request_duration_seconds", "HTTP request latency by route template",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.query_encode = Histogram(
            "retrieval_query_encode_seconds", "time to encode a text query into the shared space",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.search = Histogram(
            "retrieval_search_seconds", "time to search the index for one query vector",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.audio_encode = Histogram(
            "retrieval_audio_encode_seconds", "time to decode and tag one clip a search by example sends "
            "(operation=search; uploads are tagged by the ingest worker: see its windows per second)",
            ["operation"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.index_size = Gauge("retrieval_index_clips", "clips in the index", registry=self.registry)

    def watch_index(self, count: Callable[[], int]) -> None:
        """Read the index size at every scrape."""
        self.index_size.set_function(count)

    def watch_ingest(self, queue: JobQueue) -> None:
        """Queue depth, jobs by outcome and windows per second, read from the queue at every scrape (the
        worker may be another process)."""
        self.registry.register(IngestCollector(queue))

    def watch_query_cache(self, text: SentenceEncoder) -> None:
        """The query cache's hits, misses and size, read at every scrape, when the text encoder has one."""
        if isinstance(text, QueryCache):
            self.registry.register(QueryCacheCollector(text))


class QueryCacheCollector:
    """Hit rate: rate(retrieval_query_cache_lookups_total{result="hit"}) over the sum of both results."""

    def __init__(self, cache: QueryCache) -> None:
        self.cache = cache

    def describe(self) -> list:
        return []

    def collect(self):
        hits, misses, entries = self.cache.stats()
        lookups = CounterMetricFamily("retrieval_query_cache_lookups",
                                      "text queries looked up in the query-embedding cache, by result",
                                      labels=["result"])
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        yield lookups
        yield GaugeMetricFamily("retrieval_query_cache_entries", "query vectors the cache holds",
                                value=entries)


class IngestCollector:
    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def describe(self) -> list:
        return []

    def collect(self):
        counts = self.queue.counts()
        yield GaugeMetricFamily("retrieval_ingest_queue_depth", "uploads queued or being tagged",
                                value=counts.get("queued", 0) + counts.get("running", 0))
        jobs = CounterMetricFamily("retrieval_ingest_jobs", "indexing jobs that ended, by outcome",
                                   labels=["status"])
        for status in ("done", "failed"):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        recent = self.queue.windows_finished_since(time.time() - RATE_WINDOW_S)
        yield GaugeMetricFamily("retrieval_ingest_windows_per_second",
                                f"PaSST windows of the jobs done in the last {RATE_WINDOW_S:.0f} s, a second",
                                value=recent / RATE_WINDOW_S)


# the methods of RFC 9110 and PATCH; any other a client invents counts as one, so that it cannot add series
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"


class RequestMetricsMiddleware:
    """Observe each HTTP request's latency by method (one of HTTP_METHODS, or `other`), route template
    (`/audio/{clip_id}`, or UNMATCHED) and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"] if scope["method"] in HTTP_METHODS else OTHER_METHOD
            self.metrics.requests.labels(method, route, str(status)).observe(
                time.perf_counter() - start)

"""Health, metrics, OpenAPI, the page, CORS, and uploads running off the event loop."""

import re
import threading

from fastapi.testclient import TestClient

from app.deps import NOT_READY
from app.main import create_app
from retrieval.model_spec import ModelSpec
from tests.app.conftest import CLIPS, upload
from tests.app.conftest import metric_samples as samples


def test_live(client):
    assert client.get("/health/live").json() == {"status": "ok"}


def test_ready_says_which_model_serves(filled, retriever):
    client, records = filled
    body = client.get("/health/ready").json()
    assert body["status"] == "ready" and body["clips"] == len(records)
    assert body["model"]["kind"] == "zero-shot"
    assert body["model"]["id"] == retriever.spec.id and re.fullmatch(r"[0-9a-f]{16}", body["model"]["id"])
    assert body["model"]["spec"] == retriever.spec.to_dict()
    assert body["model"]["spec"]["head"] == "zero-shot" and body["model"]["spec"]["lam"] == 0.0
    assert body["model"]["spec"]["text_model"] == "all-MiniLM-L6-v2"
    assert body["model"]["spec"]["passt_weights"] == "random"
    assert ModelSpec.from_dict(body["model"]["spec"]).id == body["model"]["id"]  # the id names this spec
    assert body["access"] == {"writes_enabled": True, "protect_reads": False}
    assert body["ingest_worker"] == "running"


def test_ready_says_when_the_worker_tagging_uploads_has_ended(filled):
    """A worker that ended (a crash at its start, a store it can no longer write) left uploads acknowledged
    and never tagged while the service said nothing of it."""
    client, _ = filled
    ingest = client.app.state.ingest
    ingest._stop.set()  # as if it had ended
    worker = ingest._process if ingest._process is not None else ingest._thread
    worker.join(10)
    assert client.get("/health/ready").json()["ingest_worker"] == "stopped"


def test_metrics_count_requests_and_timings(filled):
    client, records = filled
    for _ in range(2):
        client.post("/search", json={"query": "rain", "k": 3})
    client.get("/audio/999")
    m = samples(client)
    search = (("method", "POST"), ("route", "/search"), ("status", "200"))
    assert m[("retrieval_http_request_duration_seconds_count", search)] == 2
    missing = (("method", "GET"), ("route", "/audio/{clip_id}"), ("status", "404"))
    assert m[("retrieval_http_request_duration_seconds_count", missing)] == 1
    added = (("method", "POST"), ("route", "/audio"), ("status", "201"))
    assert m[("retrieval_http_request_duration_seconds_count", added)] == len(records)
    assert m[("retrieval_query_encode_seconds_count", ())] == 2
    assert m[("retrieval_search_seconds_count", ())] == 2
    # uploads are tagged by the ingest worker: the queue counts them
    assert m[("retrieval_ingest_jobs_total", (("status", "done"),))] == len(records)
    assert m[("retrieval_index_clips", ())] == len(records)


def test_metrics_export_the_query_cache_hit_rate(client):
    lookups = "retrieval_query_cache_lookups_total"
    before = samples(client)  # the retriever, and its cache, are shared by the tests of this session
    # three lookups of one new text ("Rain!" cleans to "Rain", as in the second query), one of another
    for body in ({"query": "Rain! cache probe"}, {"query": "Rain cache probe"}, {"query": "Rain cache probe"},
                 {"query": "another cache probe"}):
        assert client.post("/search", json=body).status_code == 200
    m = samples(client)
    hits = m[(lookups, (("result", "hit"),))] - before.get((lookups, (("result", "hit"),)), 0)
    misses = m[(lookups, (("result", "miss"),))] - before.get((lookups, (("result", "miss"),)), 0)
    assert (hits, misses) == (2, 2) and hits / (hits + misses) == 0.5
    assert m[("retrieval_query_cache_entries", ())] >= 2


def test_two_apps_keep_their_own_metrics(make_client):
    first, second = make_client(), make_client()
    first.get("/health/live")
    live = ("retrieval_http_request_duration_seconds_count",
            (("method", "GET"), ("route", "/health/live"), ("status", "200")))
    assert samples(first)[live] == 1 and live not in samples(second)


def test_unmatched_paths_share_one_series(client):
    client.get("/no/such/path")
    client.get("/another/one")
    m = samples(client)
    unmatched = [k for k in m if k[0] == "retrieval_http_request_duration_seconds_count"
                 and ("route", "unmatched") in k[1]]
    assert len(unmatched) == 1 and m[unmatched[0]] == 2


def test_methods_a_client_invents_share_one_series(make_client):
    """Each made-up method (FOO, a 5,000-character one) added series of its own to /metrics."""
    client = make_client()
    for method in ("FOO", "BAR", "Q" * 5000):
        assert client.request(method, "/audio/1").status_code == 405
    client.request("PATCH", "/health/live")
    name = "retrieval_http_request_duration_seconds_count"
    counts = {k: v for k, v in samples(client).items() if k[0] == name}
    methods = {dict(k[1])["method"] for k in counts}
    assert methods == {"other", "PATCH"}
    assert counts[(name, (("method", "other"), ("route", "/audio/{clip_id}"), ("status", "405")))] == 3


def test_openapi_describes_every_route_and_model(client):
    spec = client.get("/openapi.json").json()
    routes = {(path, method): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    expected = {("/search", "post"), ("/search/audio", "post"), ("/audio", "post"), ("/audio", "get"),
                ("/audio/{clip_id}", "get"), ("/audio/{clip_id}/file", "get"), ("/audio/{clip_id}", "delete"),
                ("/audio/{clip_id}", "patch"), ("/exports/{format}", "post"),
                ("/health/live", "get"), ("/health/ready", "get"), ("/health/access", "get"),
                ("/metrics", "get"), ("/", "get")}
    assert expected <= set(routes)
    for key, op in routes.items():
        assert op.get("summary") and op.get("description"), key
    schemas = spec["components"]["schemas"]
    ours = set(schemas) - {"HTTPValidationError", "ValidationError"}  # FastAPI's own 422 body
    assert {"SearchRequest", "SearchResponse", "SearchHit", "ClipOut", "ClipPage", "Readiness"} <= ours
    for name in ours:
        assert schemas[name].get("description"), name
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("description"), (name, field)
    assert schemas["SearchRequest"]["examples"][0]["query"]
    bodies = [op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
              for op in routes.values() if "application/json" in op.get("requestBody", {}).get("content", {})]
    assert set(bodies) == {"SearchRequest", "ExportRequest", "MetadataPatch"}
    assert all(schemas[name].get("examples") for name in bodies), bodies
    new_fields = {"SearchRequest": ("mode", "tags_any", "tags_all", "fields"),
                  "MetadataPatch": ("description", "user_tags", "fields"),
                  "ClipOut": ("description", "user_tags", "fields"),
                  "SearchHit": ("description", "user_tags", "fields"), "SearchResponse": ("mode",)}
    for name, fields in new_fields.items():
        for field in fields:
            assert schemas[name]["properties"][field].get("examples"), (name, field)
    assert {"mode", "tags_any", "fields"} <= {k for e in schemas["SearchRequest"]["examples"] for k in e}
    assert schemas["MetadataPatch"]["examples"][0]["user_tags"]
    form = routes[("/audio", "post")]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    for field in ("description", "user_tags", "fields"):
        assert form[field]["examples"] and form[field]["description"], field
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
    for key, op in routes.items():  # every body is held to the byte limit; every error answer has a body
        if "requestBody" in op:
            assert "413" in op["responses"], key
        for code, answer in op["responses"].items():
            if code.startswith("4"):
                assert "application/json" in answer.get("content", {}), (key, code)
    params = routes[("/audio/{clip_id}/file", "get")]["parameters"]
    excerpt = {p["name"]: p["schema"]["examples"][0] for p in params if p["name"] in ("start", "end")}
    assert excerpt["start"] < excerpt["end"]  # the example is a span
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # the documentation pages load their scripts and styles from the service: they work without internet
    for path in ("/docs", "/redoc"):
        page = client.get(path).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
        assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], (path, assets)
        for asset in assets:
            assert client.get(asset).status_code == 200, asset


def keyless_answer(client: TestClient, path: str, method: str) -> int:
    """The status of the operation asked for without a key: path parameters 1 (a clip or a job), a format
    csv, a JSON body `{}`, no form (a route that takes one answers 422 once the key has passed)."""
    url = path.replace("{clip_id}", "1").replace("{job_id}", "1").replace("{format}", "csv")
    body = {"json": {}} if method in ("post", "patch") and "multipart" not in url else {}
    return client.request(method.upper(), url, **body).status_code


def test_openapi_says_which_routes_need_the_key(make_client):
    """Every read route's `security` named the key alone, though reads answered without one (the schema
    said the server refuses what it serves): with reads open, a key is optional there (`{}`, as for
    /health/access); with RETRIEVAL_PROTECT_READS, and for writes always, it is not. The oracle is the
    server's own answer to each operation without a key: 401 exactly where the key is required."""
    for protect_reads in (False, True):
        client = make_client(protect_reads=protect_reads)
        spec = client.get("/openapi.json").json()
        required = set()
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                security = op.get("security")
                if security is not None and {} not in security:
                    required.add((path, method))
                    assert len(security) == 2, (path, method, security)  # either header
                refused = keyless_answer(client, path, method) == 401
                assert refused == ((path, method) in required), (protect_reads, path, method, security)
        writes = {("/audio", "post"), ("/audio/{clip_id}", "patch"), ("/audio/{clip_id}", "delete"),
                  ("/jobs/{job_id}", "delete")}
        reads = {("/search", "post"), ("/search/audio", "post"), ("/exports/{format}", "post"),
                 ("/audio", "get"), ("/audio/{clip_id}", "get"), ("/audio/{clip_id}/file", "get"),
                 ("/audio/{clip_id}/peaks", "get"), ("/jobs", "get"), ("/jobs/{job_id}", "get")}
        assert required == (writes | reads if protect_reads else writes), protect_reads


def test_page_and_its_files_are_served_without_external_urls(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="query"' in page.text and 'id="upload-form"' in page.text
    for path in ("/static/app.js", "/static/refine.js", "/static/style.css", "/static/metadata.js",
                 "/static/metadata.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert not re.search(r"https?://", r.text), path
    assert not re.search(r"(src|href)=\"https?://", page.text)


def test_cors_only_for_configured_origins(make_client):
    preflight = {"Origin": "http://sounds.example", "Access-Control-Request-Method": "POST"}
    closed = make_client().options("/search", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = make_client(cors_origins=["http://sounds.example"])
    r = opened.options("/search", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "http://sounds.example"
    for method in ("PATCH", "DELETE"):  # an edit and a removal from another origin pass their preflight
        r = opened.options("/audio/1", headers={**preflight, "Access-Control-Request-Method": method,
                                                "Access-Control-Request-Headers": "x-api-key"})
        assert r.status_code == 200, (method, r.text)
        assert r.headers["access-control-allow-origin"] == "http://sounds.example"
        assert method in r.headers["access-control-allow-methods"].split(", ")
    refused = opened.options("/search", headers={**preflight, "Origin": "http://elsewhere.example"})
    for answer in (r, refused):  # the preflight's answers carry the security headers, as every answer does
        assert refused.status_code == 400
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY" and "referrer-policy" in answer.headers


def test_a_refused_preflight_says_why_in_json(make_client):
    """Starlette's CORS middleware refused a preflight with a text/plain "Disallowed CORS origin": the one
    error not in `{"detail": ...}`. Same status (400), in JSON, with what was refused."""
    client = make_client(cors_origins=["http://sounds.example"])
    asked = {"Origin": "http://sounds.example", "Access-Control-Request-Method": "POST"}
    foreign, put = {"Origin": "http://elsewhere.example"}, {"Access-Control-Request-Method": "PUT"}
    for headers, why in (({**asked, **foreign}, ["Origin"]), ({**asked, **put}, ["method"]),
                         ({**asked, **foreign, **put, "Access-Control-Request-Headers": "x-secret"},
                          ["Origin", "method", "header"])):
        r = client.options("/audio/1", headers=headers)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
        detail = r.json()["detail"]
        assert detail.startswith("the CORS preflight is refused") and all(w in detail for w in why), detail
        assert r.headers["access-control-allow-methods"]  # the middleware's headers kept
        assert r.headers["x-frame-options"] == "DENY"
    allowed = client.options("/audio/1", headers={**asked, "Access-Control-Request-Method": "PATCH"})
    assert allowed.status_code == 200 and allowed.text == "OK"  # an allowed one as before


def test_a_service_still_loading_answers_503(app_settings):
    client = TestClient(create_app(app_settings))  # not entered: the lifespan has not loaded anything
    r = client.get("/audio")
    assert r.status_code == 503 and r.json() == {"detail": NOT_READY}


def test_a_request_that_comes_as_the_service_closes_its_collection_answers_503(client):
    """Shutting down closes the collection while a request may still come: it was answered 400, as if the
    request were wrong."""
    client.app.state.collection.store.close()
    for r in (client.get("/audio"), client.post("/search", json={"query": "rain"})):
        assert r.status_code == 503, r.text
        assert "closed" in r.json()["detail"]


def test_searches_answer_while_an_upload_is_being_tagged(client, monkeypatch):
    """The upload's PaSST pass is parked inside the ingest worker; searches and probes still answer."""
    collection = client.app.state.collection
    entered, release = threading.Event(), threading.Event()
    real = collection.add_extracted

    def blocked(*args, **kwargs):
        entered.set()
        assert release.wait(60), "never released"
        return real(*args, **kwargs)

    monkeypatch.setattr(collection, "add_extracted", blocked)
    answers = {}
    uploader = threading.Thread(target=lambda: answers.setdefault("upload", upload(client, "s.wav",
                                                                                    CLIPS["sine.wav"])))
    uploader.start()
    try:
        assert entered.wait(60)
        assert client.post("/search", json={"query": "rain"}).status_code == 200
        assert client.get("/health/ready").status_code == 200
        assert client.get("/jobs/1").json()["status"] == "running"
        assert "upload" not in answers
    finally:
        release.set()
        uploader.join(60)
    assert answers["upload"].status_code == 201


def test_every_answer_says_not_to_sniff_or_frame_it(client):
    """The page takes the API key in its forms: no other site may frame it; no answer is sniffed as another
    type, and a signed link's token does not leave in a Referer."""
    for r in (client.get("/"), client.get("/health/live"), client.get("/no/such/path"),
              client.post("/search", json={"query": ""})):
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers.get_list("x-frame-options") == ["DENY"]  # once


def test_a_405_allows_every_method_of_its_path(client):
    """RFC 9110: Allow lists every method the URL answers (the router named the first route's alone)."""
    for method, path, allowed in (("POST", "/audio/1", "DELETE, GET, PATCH"),
                                  ("DELETE", "/audio", "GET, POST"), ("PUT", "/audio/1/file", "GET, HEAD"),
                                  ("POST", "/health/live", "GET, HEAD")):
        r = client.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path, r.headers)
        assert r.json() == {"detail": "Method Not Allowed"}
    assert client.get("/no/such/path").json() == {"detail": "Not Found"}  # the router's other error

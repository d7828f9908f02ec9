"""Load on a running server: concurrent clients for a bounded time, then requests per second, p50/p95/p99
latency and error counts, per kind of request.

    python benchmarks/load.py --url http://127.0.0.1:8000 --clients 20 --duration 30
    python benchmarks/load.py --clients 20 --uploaders 5 --api-key "$RETRIEVAL_API_KEY" --duration 60

Searchers send text queries (POST /search); uploaders, when asked for, send short generated WAV tones
(POST /audio, every one different, so none is a duplicate). Only a server on this machine is accepted: the
script is a measuring tool, not a way to load someone else's service. Standard library and httpx only.
"""

import argparse
import hashlib
import io
import math
import struct
import sys
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_S = 90.0  # an upload waits up to 60 s for its clip to be indexed
QUERIES = ("rain on a tin roof", "a dog barking far away", "someone whistles a tune", "footsteps on gravel",
           "a car passes by on a wet road", "birds singing at dawn", "a door slams", "wind in the trees",
           "people talking in a busy cafe", "a bell rings twice", "water dripping in a cave", "a train horn")


@dataclass(frozen=True)
class Outcome:
    kind: str  # "search" or "upload"
    status: int | None  # None: no answer (timeout, refused connection, ...)
    seconds: float
    error: str | None = None  # the exception's name when there was no answer
    clip_id: int | None = None  # an upload's record id (200 or 201)
    sha256: str | None = None  # of an upload's bytes


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed_s: float = 0.0

    def of(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to load {host!r}: this benchmark runs against this machine only")


def tone_wav(freq: float, *, amplitude: int = 12_000, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV of one sine tone."""
    n = int(seconds * rate)
    samples = (round(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{n}h", *samples))
    return buf.getvalue()


def distinct_tones(client_index: int) -> Iterator[bytes]:
    """Tones no other uploader (of up to 100) sends: the amplitude is the client's, the frequency steps by
    0.5 Hz from 200 Hz up to 7.7 kHz (15,000 tones)."""
    for i in range(15_000):
        yield tone_wav(200.0 + 0.5 * i, amplitude=2_000 + 250 * client_index)


def timed(kind: str, call: Callable[[], httpx.Response], sha256: str | None = None) -> Outcome:
    start = time.perf_counter()
    try:
        r = call()
    except httpx.HTTPError as e:
        return Outcome(kind, None, time.perf_counter() - start, error=type(e).__name__, sha256=sha256)
    seconds = time.perf_counter() - start
    clip_id = r.json().get("id") if kind == "upload" and r.status_code in (200, 201) else None
    return Outcome(kind, r.status_code, seconds, clip_id=clip_id, sha256=sha256)


def search_loop(url: str, *, index: int, stop: threading.Event, deadline: float,
                k: int = 10) -> list[Outcome]:
    """POST /search until `stop` is set or the deadline passes."""
    out = []
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        i = index
        while not stop.is_set() and time.monotonic() < deadline:
            query = {"query": QUERIES[i % len(QUERIES)], "k": k}
            out.append(timed("search", lambda q=query: client.post("/search", json=q)))
            i += 1
    return out


def upload_loop(url: str, *, payloads: Iterator[bytes], api_key: str, deadline: float,
                stop: threading.Event | None = None) -> list[Outcome]:
    """POST /audio?wait=60 with each payload until they run out, `stop` is set or the deadline passes: each
    upload is timed until its clip is indexed (201), not only acknowledged (202)."""
    out = []
    with httpx.Client(base_url=url, timeout=TIMEOUT_S, headers={"X-API-Key": api_key}) as client:
        for n, data in enumerate(payloads):
            if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
                break
            files = {"file": (f"tone-{n}.wav", data, "audio/wav")}
            out.append(timed("upload", lambda f=files: client.post("/audio", files=f, params={"wait": 60}),
                             sha256=hashlib.sha256(data).hexdigest()))
    return out


def run_load(url: str, *, searchers: int, duration_s: float, uploaders: int = 0, api_key: str | None = None,
             uploads: Callable[[int], Iterator[bytes]] = distinct_tones) -> Report:
    """Searchers and uploaders (threads) at once until duration_s; with a finite `uploads(i)`, searchers stop
    early once every uploader has run out."""
    check_loopback(url)
    if uploaders and not api_key:
        raise SystemExit("uploaders need the server's API key (--api-key)")
    deadline = time.monotonic() + duration_s
    stop = threading.Event()
    report, lock = Report(), threading.Lock()

    def keep(outcomes: list[Outcome]) -> None:
        with lock:
            report.outcomes.extend(outcomes)

    def uploader(i: int) -> None:
        keep(upload_loop(url, payloads=uploads(i), api_key=api_key, deadline=deadline))

    def searcher(i: int) -> None:
        keep(search_loop(url, index=i, stop=stop, deadline=deadline))

    threads_up = [threading.Thread(target=uploader, args=(i,)) for i in range(uploaders)]
    threads_search = [threading.Thread(target=searcher, args=(i,)) for i in range(searchers)]
    start = time.perf_counter()
    for t in threads_up + threads_search:
        t.start()
    for t in threads_up:
        t.join()
    if uploaders:
        stop.set()  # the uploads are done (or the time is up): the searchers stop too
    for t in threads_search:
        t.join()
    report.elapsed_s = time.perf_counter() - start
    return report


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def errors_of(outcomes: list[Outcome]) -> Counter:
    """'HTTP 503', 'ReadTimeout', ... -> count; a 200/201 is not an error."""
    return Counter(o.error if o.status is None else f"HTTP {o.status}" for o in outcomes
                   if o.status is None or o.status >= 400)


def summary(report: Report) -> dict[str, dict]:
    """kind -> requests, requests per second, p50/p95/p99 in ms, errors."""
    out = {}
    for kind in sorted({o.kind for o in report.outcomes}):
        outcomes = report.of(kind)
        ms = [1000 * o.seconds for o in outcomes]
        out[kind] = {"requests": len(outcomes), "rps": len(outcomes) / report.elapsed_s,
                     "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99),
                     "errors": dict(errors_of(outcomes))}
    return out


def format_summary(report: Report) -> str:
    lines = [f"{report.elapsed_s:.1f} s, {len(report.outcomes)} requests",
             f"{'kind':<8}{'requests':>10}{'req/s':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}  errors"]
    for kind, s in summary(report).items():
        errors = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "none"
        lines.append(f"{kind:<8}{s['requests']:>10}{s['rps']:>9.1f}{s['p50_ms']:>10.1f}{s['p95_ms']:>10.1f}"
                     f"{s['p99_ms']:>10.1f}  {errors}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (loopback only)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent searchers")
    parser.add_argument("--uploaders", type=int, default=0, help="concurrent uploaders (need --api-key)")
    parser.add_argument("--api-key", default=None, help="the server's key, for uploaders")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 3600 or not 0 < args.clients <= 1000 or not 0 <= args.uploaders <= 100:
        parser.error("--duration must be in (0, 3600], --clients in 1..1000, --uploaders in 0..100")
    report = run_load(args.url, searchers=args.clients, duration_s=args.duration, uploaders=args.uploaders,
                      api_key=args.api_key)
    print(format_summary(report))
    return 1 if any(errors_of(report.outcomes).values()) else 0


if __name__ == "__main__":
    sys.exit(main())

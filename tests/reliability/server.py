"""A real uvicorn server of the app in a subprocess on 127.0.0.1, for tests that go over HTTP.

The server is configured only through RETRIEVAL_* environment variables (as in production), logs everything
(DEBUG and up, every logger) to a file the tests can read, and can be stopped, SIGKILLed and restarted on the
same data directory.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 180  # a random PaSST and MiniLM load in seconds; a busy machine may take longer
STOP_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 30  # no request of these tests may take longer

# every logger at DEBUG to stderr (the server's log file), except the multipart parser's per-byte chatter
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "root": {"level": "DEBUG", "handlers": ["stderr"]},
    "loggers": {"uvicorn": {"level": "DEBUG", "handlers": [], "propagate": True},
                "uvicorn.access": {"level": "DEBUG", "handlers": [], "propagate": True},
                "uvicorn.error": {"level": "DEBUG", "handlers": [], "propagate": True},
                "python_multipart": {"level": "INFO"},
                "multipart": {"level": "INFO"}},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(*, data_dir: Path, text_model: Path, api_key: str | None,
               **settings: object) -> dict[str, str]:
    """The process environment without any inherited RETRIEVAL_* variable, the tests' defaults, plus these
    settings (`max_upload_bytes=1024` -> RETRIEVAL_MAX_UPLOAD_BYTES=1024; lists and dicts as JSON)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRIEVAL_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               RETRIEVAL_PASST_WEIGHTS="random", RETRIEVAL_TEXT_MODEL=str(text_model),
               RETRIEVAL_DEVICE="cpu", RETRIEVAL_DATA_DIR=str(data_dir),
               RETRIEVAL_MODELS_DIR=str(data_dir.parent / "models"),
               # as tests/conftest.py: the torch encoder (no ONNX export per server) and the exact index,
               # since random-weight PaSST puts clips within float16's rounding of each other
               RETRIEVAL_TEXT_BACKEND="torch", RETRIEVAL_INDEX_KIND="flat")
    if api_key is not None:
        env["RETRIEVAL_API_KEY"] = api_key
    for name, value in settings.items():
        env[f"RETRIEVAL_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


class ServerDied(RuntimeError):
    """The server process exited while it was expected to serve."""


class LiveServer:
    def __init__(self, *, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = Path(workdir)
        self.data_dir = Path(env["RETRIEVAL_DATA_DIR"])
        self.api_key = env.get("RETRIEVAL_API_KEY")
        self.log_path = self.workdir / "server.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self, *, attempts: int = 3) -> "LiveServer":
        """Start on a fresh free port and wait until /health/ready answers 200 (another port if the one
        picked was taken meanwhile)."""
        assert self.proc is None, "already running"
        for attempt in range(attempts):
            self._spawn()
            try:
                self.wait_ready()
                return self
            except TimeoutError:
                self.stop()
                raise
            except ServerDied:
                self.proc = None
                if attempt == attempts - 1 or "address already in use" not in self.log_tail().lower():
                    raise
        return self

    def _spawn(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_config = self.workdir / "log_config.json"
        log_config.write_text(json.dumps(LOG_CONFIG))
        self.port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(self.port), "--log-config", str(log_config)]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                r = httpx.get(f"{self.url}/health/ready", timeout=5)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout_s} s; log:\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerDied(f"server exited with {self.proc.returncode}; log:\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM (graceful shutdown: the index is closed), SIGKILL if it does not exit in time."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def restart(self) -> "LiveServer":
        self.stop()
        return self.start()

    # -- looking at it ------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def stored_files(self) -> list[str]:
        """The names in the data directory's audio folder (uploads' stored copies and temporary files)."""
        folder = self.data_dir / "audio"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

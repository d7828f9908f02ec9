"""README's quick start, run as a reader runs it: its `retrieval` commands as processes over a folder of
generated clips (`models fetch` aside: the test's models are a random-weight PaSST and the small MiniLM, set
through the environment as the fetched ones would be), then its `curl` lines against the server it started,
which must find the folder's clips."""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import soundfile as sf

from tests.audio_fixtures import clicks, noise, sine
from tests.docs.markdown import FENCE, ROOT, SHELL, Block, curl_parts, retrieval_commands, shell_lines
from tests.reliability.server import LiveServer, free_port, server_env

SECTION = "## Five minutes from a folder of sounds to a search"
RETRIEVAL = str(Path(sys.executable).parent / "retrieval")
KEY = "quick-start-key-4c1d"
CLIPS = {"tone.wav": sine(440.0, seconds=1.5), "hiss.wav": noise(seconds=1.0),
         "ticks.wav": clicks(seconds=1.0)}


def quick_start() -> list[str]:
    """The shell lines of README's quick start section, in order."""
    readme = (ROOT / "README.md").read_text()
    assert SECTION in readme, f"README.md has no section {SECTION!r}"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [line for m in FENCE.finditer(section) if m.group("info").strip().split(" ")[0] in SHELL
            for line in shell_lines(Block(ROOT / "README.md", 0, "bash", None, m.group("body")))]


def with_folder(args: list[str], folder: Path) -> list[str]:
    """`index add PATH...` over the test's folder instead of the reader's (its options kept)."""
    positional = [i for i, a in enumerate(args) if i >= 2 and not a.startswith("-")
                  and args[i - 1] not in ("--metadata", "--description", "--tags", "--fields")]
    return [*args[:2], str(folder), *[a for i, a in enumerate(args[2:], 2) if i not in positional]]


def send(line: str, port: int) -> tuple[int, dict | str]:
    """A curl line of the README sent with urllib to the server on `port`."""
    parts = curl_parts(line.replace("$RETRIEVAL_API_KEY", KEY))
    assert parts is not None, f"not a curl line to the service: {line}"
    method, route, headers, body = parts
    request = urllib.request.Request(f"http://127.0.0.1:{port}{route}", method=method, headers=headers,
                                     data=body.encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=60) as answer:
        text = answer.read().decode()
        return answer.status, json.loads(text) if "json" in answer.headers["Content-Type"] else text


def test_the_readme_quick_start_finds_the_clips_of_a_folder(tmp_path, minilm_path):
    folder = tmp_path / "sounds"
    folder.mkdir()
    for name, wave in CLIPS.items():
        sf.write(folder / name, wave, 32_000)
    env = server_env(data_dir=tmp_path / "data", text_model=minilm_path, api_key=KEY)
    lines = quick_start()
    commands = [args for line in lines for args in retrieval_commands(line)]
    assert [a[:2] for a in commands if a[:2] == ["index", "add"]], "the quick start indexes a folder"
    assert any(a[:1] == ["serve"] for a in commands), "the quick start serves"
    curls = [line for line in lines if line.startswith("curl ")]
    assert curls, "the quick start shows a curl"
    server = None
    try:
        for args in commands:
            if args[:2] == ["models", "fetch"]:  # the network: the test's models come through the environment
                continue
            if args[:1] == ["serve"]:
                port = free_port()
                options = [a for a in args[1:] if not re.match(r"--(port|host)\b", a)]
                server = LiveServer(env=env, workdir=tmp_path / "server")
                server.port = port
                server.proc = subprocess.Popen([RETRIEVAL, "serve", *options, "--port", str(port)], env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                server.wait_ready()
                continue
            run = subprocess.run([RETRIEVAL, *(with_folder(args, folder) if args[:2] == ["index", "add"]
                                               else args)], env=env, capture_output=True, text=True,
                                 timeout=300)
            assert run.returncode == 0, (args, run.stdout[-2000:], run.stderr[-2000:])
        assert server is not None
        status, page = send(f"curl http://127.0.0.1:{server.port}/", server.port)
        assert status == 200 and "<html" in str(page).lower()
        for line in curls:
            status, answer = send(line, server.port)
            assert status == 200, (line, answer)
            if isinstance(answer, dict) and "results" in answer:
                names = [hit["name"] for hit in answer["results"]]
                assert names and set(names) <= set(CLIPS), names
    finally:
        if server is not None and server.proc is not None:
            server.stop()

"""benchmarks/load.py against the live server: a short run with searchers and an uploader, and its refusal
of any server that is not on this machine."""

import pytest

from benchmarks.load import check_loopback, main, percentile, run_load, summary, tone_wav


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0


def test_tones_differ_and_are_wav():
    a, b = tone_wav(440.0), tone_wav(440.5)
    assert a[:4] == b"RIFF" and a[8:12] == b"WAVE" and a != b


@pytest.mark.parametrize("url", ["http://example.com:8000", "http://10.0.0.5:8000", "http://0.0.0.0:8000"])
def test_refuses_servers_off_this_machine(url):
    with pytest.raises(SystemExit, match="this machine only"):
        check_loopback(url)


def test_short_run_against_the_live_server(server, capsys):
    report = run_load(server.url, searchers=4, duration_s=3.0, uploaders=1, api_key=server.api_key)
    s = summary(report)
    assert s["search"]["requests"] >= 4 and not s["search"]["errors"]
    assert s["upload"]["requests"] >= 1 and not s["upload"]["errors"]
    assert s["search"]["p50_ms"] <= s["search"]["p95_ms"] <= s["search"]["p99_ms"]
    assert main(["--url", server.url, "--clients", "2", "--duration", "1"]) == 0
    table = capsys.readouterr().out
    assert "req/s" in table and "p95 ms" in table and "search" in table

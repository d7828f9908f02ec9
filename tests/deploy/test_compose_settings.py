"""Each service the compose files start gets settings the service accepts: the environment of
docker-compose.yml, alone and under the GPU override, with the shell's defaults (`${VAR:-default}`) as compose
resolves them."""

import os
import re
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}")
SETUPS = {"cpu": ["docker-compose.yml"], "gpu": ["docker-compose.yml", "docker-compose.gpu.yml"]}


def environment(files: list[str], service: str) -> dict[str, str]:
    """The service's environment, later files over earlier ones, each variable at its default (a required
    one, `${VAR:?...}`, set to a stand-in)."""
    merged: dict[str, str] = {}
    for name in files:
        services = yaml.safe_load((ROOT / name).read_text())["services"]
        merged.update(services.get(service, {}).get("environment", {}) or {})
    return {k: VARIABLE.sub(lambda m: m.group(2) if m.group(2) is not None else "stand-in", str(v))
            for k, v in merged.items()}


CASES = [(setup, service) for setup, files in SETUPS.items()
         for service in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
         if any(k.startswith("RETRIEVAL_") for k in environment(files, service))]


def test_the_environments_are_read():
    assert environment(SETUPS["gpu"], "api")["RETRIEVAL_DEVICE"] == "cuda"
    assert environment(SETUPS["cpu"], "api")["RETRIEVAL_DEVICE"] == "cpu"
    assert ("gpu", "api") in CASES and ("cpu", "api-qdrant") in CASES


@pytest.mark.parametrize("setup,service", CASES)
def test_each_service_starts_with_settings_it_accepts(setup, service, monkeypatch):
    for name in [k for k in os.environ if k.startswith("RETRIEVAL_")]:
        monkeypatch.delenv(name)
    env = environment(SETUPS[setup], service)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.device == env.get("RETRIEVAL_DEVICE", settings.device)

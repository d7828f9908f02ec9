"""The Dockerfile and the compose files against README and the real command line.

README quotes the Dockerfile's RUN / CMD / HEALTHCHECK lines in a ```dockerfile block: each quoted line must
be one of the Dockerfile's instructions and each of those instructions must be quoted. Every `retrieval`
command the images run must parse with the real CLI, and be the one README names.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from docs.dockerfile import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = ("RUN", "CMD", "HEALTHCHECK")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.gpu.yml")


def readme_dockerfile_lines(text: str) -> list[str]:
    blocks = re.findall(r"```dockerfile\n(.*?)```", text, flags=re.S)
    return [" ".join(line.split()) for block in blocks for line in block.splitlines() if line.strip()]


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the variable unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def compose_commands() -> list[list[str]]:
    commands = []
    for name in COMPOSE_FILES:
        services = yaml.safe_load((ROOT / name).read_text())["services"]
        commands += [[interpolate(a) for a in s["command"]] for s in services.values() if "command" in s]
    return commands


def exec_form(instruction: str) -> list[str]:
    """The JSON argument list of a CMD (or HEALTHCHECK ... CMD) instruction."""
    return yaml.safe_load(instruction[instruction.index("["):])


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_instruction_parser_joins_continuations():
    text = "# c\nFROM x AS y\nENV A=1 \\\n    B=2\n\nRUN a  &&  b\n"
    assert dockerfile_instructions(text) == ["FROM x AS y", "ENV A=1 B=2", "RUN a && b"]


def test_readme_quotes_every_run_cmd_and_healthcheck_of_the_dockerfile(dockerfile, readme):
    quoted = readme_dockerfile_lines(readme)
    assert quoted, "README has no ```dockerfile block"
    documented = [i for i in dockerfile if i.split()[0] in DOCUMENTED]
    assert quoted == documented  # all of them, in the Dockerfile's order (one out of it misread the stages)


def test_dockerfile_installs_dependencies_before_copying_the_code(dockerfile):
    build = dockerfile[:dockerfile.index("FROM ${PYTHON_IMAGE} AS runtime")]
    copy_code = build.index("COPY . .")
    deps = build.index("RUN pip install -r requirements.txt")
    assert build.index("COPY pyproject.toml ./") < deps < copy_code
    assert build[copy_code + 1] == "RUN pip install --no-deps ."


def test_runtime_stage_is_slim_and_not_root(dockerfile):
    runtime = dockerfile[[i for i, ins in enumerate(dockerfile) if ins.startswith("FROM")][-1]:]
    assert runtime[0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert "USER app" in runtime
    assert any("/health/ready" in i for i in runtime if i.startswith("HEALTHCHECK"))


def commands_run_by_the_images(dockerfile) -> list[list[str]]:
    cmds = [exec_form(i) for i in dockerfile if i.startswith("CMD")] + compose_commands()
    return [c for c in cmds if c[0] == "retrieval"]


def test_every_retrieval_command_parses_with_the_real_cli(dockerfile):
    cmds = commands_run_by_the_images(dockerfile)
    assert ["retrieval", "serve", "--host", "0.0.0.0", "--port", "8000"] in cmds
    assert ["retrieval", "models", "fetch", "--source", "hub"] in cmds
    for cmd in cmds:
        # --help is eager: the command path and every option name are parsed, nothing runs
        result = CliRunner().invoke(app, [*cmd[1:], "--help"])
        assert result.exit_code == 0, (cmd, result.output)


def test_readme_names_every_command_the_images_run(dockerfile, readme):
    for cmd in commands_run_by_the_images(dockerfile):
        assert shlex.join(cmd) in readme, shlex.join(cmd)


def test_healthchecks_probe_a_route_the_service_has(dockerfile):
    from app.routes.health import router

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    probe = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/health/ready" in probe
    assert [i for i in dockerfile if i.startswith("HEALTHCHECK")][0].count("/health/ready") == 1
    assert "/health/ready" in {route.path for route in router.routes}


def test_compose_requires_an_api_key_and_reserves_a_gpu_in_the_override():
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    gpu = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())["services"]
    assert base["api"]["environment"]["RETRIEVAL_API_KEY"].startswith("${RETRIEVAL_API_KEY:?")
    assert "models:/models:ro" in base["api"]["volumes"] and "data:/data" in base["api"]["volumes"]
    assert base["api"]["depends_on"]["models"]["condition"] == "service_completed_successfully"
    (device,) = gpu["api"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["api"]["environment"]["RETRIEVAL_DEVICE"] == "cuda"

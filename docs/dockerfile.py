"""A Dockerfile's instructions, read the one way the docs build (docs/gen_reference.py) and the tests
(tests/deploy/test_docker_docs.py) both need: continuation lines joined, comments dropped."""


def dockerfile_instructions(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped, whitespace-normalised."""
    out, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += " " + line.strip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        out.append(" ".join(current.split()))
        current = ""
    return out

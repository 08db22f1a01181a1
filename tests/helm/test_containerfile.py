"""The services' container build file agrees with the workspace and the Helm chart.

No container engine runs here, so the build itself is not exercised: these checks hold the
file to what the images must be (pinned bases, every workspace manifest copied, one entry
per service, unprivileged, port 8000) and to what the chart expects of them.
"""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "infra" / "containers" / "Containerfile"
TEXT = CONTAINERFILE.read_text()
# Joined continuation lines, comments dropped.
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _services_in_case() -> set[str]:
    match = re.search(r'case "\$\{SERVICE\}" in[\s\\]+([a-z|]+)\)', TEXT)
    assert match, "the SERVICE check is missing"
    return set(match[1].split("|"))


def test_base_images_are_pinned() -> None:
    args = dict(re.findall(r"^ARG (PYTHON_IMAGE|UV_IMAGE)=(\S+)$", TEXT, re.M))
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-[a-z]+", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    assert not re.search(r":latest\b", TEXT)


def _workspace_members() -> list[str]:
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    return sorted(
        Path(path).relative_to(ROOT).as_posix()
        for pattern in workspace["members"]
        for path in glob.glob(str(ROOT / pattern))
        if (Path(path) / "pyproject.toml").is_file()
    )


def test_every_workspace_manifest_is_copied() -> None:
    """uv needs every member's pyproject.toml to read the lock file."""
    members = _workspace_members()
    assert members
    copied = set(re.findall(r"^COPY (\S+/pyproject\.toml) \1$", TEXT, re.M))
    assert copied == {f"{member}/pyproject.toml" for member in members}
    assert "COPY pyproject.toml uv.lock ./" in INSTRUCTIONS


def test_each_service_of_the_chart_can_be_built() -> None:
    chart = yaml.safe_load((ROOT / "helm/socle/Chart.yaml").read_text())
    chart_services = {d["name"] for d in chart["dependencies"]} - {"socle-lib"}
    assert _services_in_case() == chart_services
    for service in chart_services:
        package = ROOT / "services" / service / "src" / f"socle_{service}"
        assert "def create_app(" in (package / "app.py").read_text(), service
        assert (package / "db" / "migrate.py").is_file(), service
        project = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
        assert project["project"]["name"] == f"socle-{service}"


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    syncs = [line for line in INSTRUCTIONS if "uv sync" in line]
    assert len(syncs) == 2
    for line in syncs:
        assert "--frozen" in line
        assert "--no-dev" in line
        assert '--package "socle-${SERVICE}"' in line
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]


def test_runtime_stage_is_unprivileged_and_serves_port_8000() -> None:
    runtime = TEXT[TEXT.index("AS runtime") :]
    assert "USER 10001:10001" in runtime
    assert "--uid 10001" in runtime
    assert "EXPOSE 8000" in runtime
    assert "UVICORN_APP=socle_${SERVICE}.app:create_app" in runtime
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", runtime, re.M)
    assert entrypoint
    assert yaml.safe_load(entrypoint[1]) == [
        "uvicorn",
        "--factory",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    # Only the virtual environment is carried over, not uv or the sources.
    assert re.findall(r"^COPY .*$", runtime, re.M) == ["COPY --from=build /app/.venv /app/.venv"]
    # The chart's settings prefix is reserved for the services' settings.
    assert not re.search(r"^ENV[^\n]*SOCLE_", runtime, re.M)


def test_ignore_file_keeps_the_context_small() -> None:
    ignore = (CONTAINERFILE.parent / "Containerfile.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"]
    for needed in ("!pyproject.toml", "!uv.lock", "!services/"):
        assert needed in ignore
    for member in _workspace_members():
        if not member.startswith("services/"):
            assert f"!{member}/pyproject.toml" in ignore, member
    assert "**/.venv" in ignore

"""The services' container build file agrees with the workspace and the Helm chart.

No container engine runs here: these checks hold the file to what the images must be (pinned
bases, every workspace manifest copied, one entry per service, unprivileged, port 8000) and to
what the chart expects of them, and run its build stage's steps for every service.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from socle_core.server import UVICORN_ARGS

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
        *UVICORN_ARGS,  # the protocol with header size limit and read timeouts
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


# --- The build stage, run here -------------------------------------------------------------
# No container engine runs on this machine, but the build stage is only file copies and uv
# commands: the steps below are read from the Containerfile and run in a scratch folder (the
# context filtered by the ignore file, the venv at a scratch path, this interpreter standing in
# for the base image's), so a service whose runtime dependencies are not all declared fails here
# instead of in the cluster.


def _context_files() -> list[Path]:
    """The repository files the ignore file lets into the build context."""
    patterns = [
        line.strip()
        for line in (CONTAINERFILE.parent / "Containerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    kept = []
    for name in listed:
        included = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/")
            if _matches(name, body):
                included = negated
        if included and (ROOT / name).is_file():
            kept.append(Path(name))
    return kept


def _matches(name: str, pattern: str) -> bool:
    """Docker's ignore matching, enough for this file: ``**/x``, ``*``, a path or a folder prefix."""
    if pattern.startswith("**/"):
        rest = pattern[3:]
        parts = name.split("/")
        return any(fnmatch.fnmatch("/".join(parts[i : i + 1]), rest) for i in range(len(parts)))
    return fnmatch.fnmatch(name, pattern) or name.startswith(pattern + "/")


def _build_stage(service: str, scratch: Path) -> tuple[Path, list[str]]:
    """Run the build stage's instructions for ``service``; return the venv and what ran."""
    context = scratch / "context"
    for name in _context_files():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, context / name)
    stage = TEXT[TEXT.index("AS build") : TEXT.index("AS runtime")]
    stage_lines = [
        line.strip()
        for line in re.sub(r"\\\n", " ", stage).splitlines()[1:]
        if line.strip() and not line.lstrip().startswith("#")
    ][:-1]  # the last line is the runtime stage's FROM
    venv = scratch / "app" / ".venv"
    args = {"SERVICE": service}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    workdir = scratch
    ran = []
    for line in stage_lines:
        instruction, _, rest = line.partition(" ")
        expand = lambda text: re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], text)  # noqa: E731
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            args.setdefault(name, default)
        elif instruction == "ENV":
            for key, value in shlex_pairs(rest):
                env[key] = value
            env["UV_PYTHON"] = sys.executable  # the base image's python3.11
            env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        elif instruction == "WORKDIR":
            workdir = scratch / rest.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY" and rest.startswith("--from=uv "):
            continue  # the uv binary: this machine's uv stands in for the pinned image's
        elif instruction == "COPY":
            *sources, target = expand(rest).split()
            for source in sources:
                destination = workdir / target
                if (context / source).is_dir():
                    shutil.copytree(context / source, destination, dirs_exist_ok=True)
                else:
                    destination = destination / Path(source).name if target.endswith("/") else destination
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(context / source, destination)
        elif instruction == "RUN":
            command = re.sub(r"--mount=\S+\s+", "", rest).replace("/app/.venv", str(venv))
            env_for_run = {**env, **args, "PATH": f"{Path(shutil.which('uv') or 'uv').parent}:{env['PATH']}"}
            result = subprocess.run(
                ["bash", "-c", command], cwd=workdir, env=env_for_run, capture_output=True, text=True
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            ran.append(command)
        else:
            raise AssertionError(f"the build stage uses an instruction this test does not run: {line}")
    return venv, ran


def shlex_pairs(text: str) -> list[tuple[str, str]]:
    return [tuple(pair.split("=", 1)) for pair in shlex.split(text)]  # type: ignore[misc]


@pytest.mark.parametrize("service", ["tenancy", "identity", "ingestion", "timeseries", "billing", "console"])
def test_the_build_stage_gives_a_venv_that_imports_every_module_without_dev_tools(service, tmp_path) -> None:
    venv, ran = _build_stage(service, tmp_path)
    assert sum("uv sync" in command for command in ran) == 2
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib, json, pkgutil, sys\n"
            f"import socle_{service} as package\n"
            "names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.')\n"
            "         if not m.name.endswith('__main__')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(json.dumps({'modules': len(names), 'files': package.__file__}))\n",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["modules"] >= 3
    # Installed as a regular package into the venv, not an editable link to the sources.
    assert report["files"].startswith(str(venv))
    installed = {p.name.split("-")[0].lower() for p in (venv / "lib").glob("python3.*/site-packages/*.dist-info")}
    assert {"litestar", "sqlalchemy", "asyncpg", "socle_core", f"socle_{service}"} <= installed
    assert not installed & {"pytest", "ruff", "mypy", "selenium", "socle_devstack"}


def test_the_build_refuses_an_unknown_service(tmp_path) -> None:
    with pytest.raises(AssertionError, match="SERVICE must be one of tenancy identity"):
        _build_stage("parking", tmp_path)

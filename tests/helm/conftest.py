"""Fixtures of the Helm chart tests: a pinned helm binary and rendered manifests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "socle"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
INSTALL_HELM = ROOT / "infra" / "scripts" / "install-helm.sh"
RELEASE = "socle"
NAMESPACE = "socle-test"

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the pinned helm, installed by the project's own script (once; cached after)."""
    result = subprocess.run(
        ["bash", str(INSTALL_HELM)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"install-helm.sh failed:\n{result.stderr}"
    path = result.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), f"install-helm.sh printed {path!r}, not an executable"
    return path


def run_helm(helm: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def template(helm: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `helm template` of the umbrella chart with values files and --set pairs."""

    def _template(*values_files: Path, sets: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
        for values in values_files:
            args += ["--values", values]
        for pair in sets:
            args += ["--set", pair]
        return run_helm(helm, *args)

    return _template


@pytest.fixture(scope="session")
def rendered(template: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, list[Manifest]]:
    """The manifests of each ci/*-values.yaml, rendered once per session."""
    out: dict[str, list[Manifest]] = {}
    for values in CI_VALUES:
        result = template(values)
        assert result.returncode == 0, f"helm template with {values.name} failed:\n{result.stderr}"
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
        out[values.name] = docs
    return out

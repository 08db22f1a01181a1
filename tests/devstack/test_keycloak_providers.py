"""Socle's Keycloak providers: built by the real Maven into a cache, rebuilt only after a change.

The Keycloak side (the provider loaded and used by the broker) is tested end to end in
``tests/identity/test_federation.py``.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from socle_devstack.keycloak import (
    PROVIDERS_ROOT,
    ensure_provider_jar,
    install_providers,
    provider_projects,
    provider_sources_hash,
)

PROCONNECT = PROVIDERS_ROOT / "proconnect"
FACTORY = "fr/socle/keycloak/proconnect/ProConnectIdentityProviderFactory.class"
SERVICE_FILE = "META-INF/services/org.keycloak.broker.provider.IdentityProviderFactory"
PROVIDER_SOURCE = "src/main/java/fr/socle/keycloak/proconnect/ProConnectIdentityProvider.java"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Socle cache, so the first call really builds (Maven's own ~/.m2 stays shared)."""
    monkeypatch.setenv("SOCLE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "keycloak-providers"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch copy of the ProConnect provider, free to change."""
    return Path(shutil.copytree(PROCONNECT, tmp_path / "proconnect", ignore=shutil.ignore_patterns("target")))


def test_every_maven_project_under_providers_is_built() -> None:
    assert PROCONNECT in provider_projects()
    assert all((p / "pom.xml").is_file() for p in provider_projects())


def test_the_sources_hash_follows_the_sources_and_ignores_build_output(project: Path) -> None:
    before = provider_sources_hash(project)
    assert provider_sources_hash(PROCONNECT) == before  # a copy hashes the same

    (project / "target").mkdir()
    (project / "target" / "leftover.jar").write_bytes(b"not a source")
    assert provider_sources_hash(project) == before

    source = project / PROVIDER_SOURCE
    source.write_text(source.read_text() + "\n")
    assert provider_sources_hash(project) != before


def test_the_jar_is_built_once_then_taken_from_the_cache(
    cache: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jar = ensure_provider_jar(project)
    assert "building the Keycloak provider proconnect" in capsys.readouterr().out
    assert jar.parent == cache
    assert jar.name == f"proconnect-{provider_sources_hash(project)}.jar"
    with zipfile.ZipFile(jar) as archive:
        assert FACTORY in archive.namelist()
        assert archive.read(SERVICE_FILE).decode().split() == [
            "fr.socle.keycloak.proconnect.ProConnectIdentityProviderFactory"
        ]
    assert not (project / "target").exists()  # built on a copy: the repository stays clean
    built_at = jar.stat().st_mtime_ns

    assert ensure_provider_jar(project) == jar
    assert capsys.readouterr().out == ""
    assert jar.stat().st_mtime_ns == built_at
    assert [p.name for p in cache.iterdir()] == [jar.name]  # no build folder or partial jar left


def test_a_broken_provider_fails_with_mavens_message_and_caches_nothing(cache: Path, project: Path) -> None:
    source = project / PROVIDER_SOURCE
    source.write_text(source.read_text().replace("extends OIDCIdentityProvider", "extends NoSuchProvider"))

    with pytest.raises(RuntimeError, match="mvn -B -q package") as failure:
        ensure_provider_jar(project)
    assert "NoSuchProvider" in str(failure.value)
    assert [p for p in cache.iterdir() if p.suffix == ".jar"] == []


def test_install_puts_exactly_the_current_jars_in_providers(cache: Path, project: Path, tmp_path: Path) -> None:
    home = tmp_path / "keycloak"
    providers = home / "providers"
    providers.mkdir(parents=True)
    (providers / "socle-retired.jar").write_bytes(b"a provider Socle no longer ships")
    (providers / "vendor-extension.jar").write_bytes(b"an operator's own jar")

    install_providers(home, [project])
    installed = providers / "socle-proconnect.jar"
    assert installed.read_bytes() == ensure_provider_jar(project).read_bytes()
    assert sorted(p.name for p in providers.iterdir()) == ["socle-proconnect.jar", "vendor-extension.jar"]

    # Unchanged jar: left as it is, so Keycloak sees nothing new and skips its own rebuild.
    installed_at = installed.stat().st_mtime_ns
    install_providers(home, [project])
    assert installed.stat().st_mtime_ns == installed_at

    install_providers(home, [])
    assert sorted(p.name for p in providers.iterdir()) == ["vendor-extension.jar"]

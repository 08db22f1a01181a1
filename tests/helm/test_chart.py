"""The Helm umbrella chart: lints, renders, and refuses values it cannot run with."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from socle_core.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "socle"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
INSTALL_HELM = ROOT / "infra" / "scripts" / "install-helm.sh"
RELEASE = "socle"
NAMESPACE = "socle-test"

Manifest = dict[str, Any]
SERVICES = ["tenancy", "identity", "ingestion", "timeseries", "billing", "console"]
DEFAULT = CHART / "ci" / "default-values.yaml"
Template = Callable[..., subprocess.CompletedProcess[str]]


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("socle_helm_generate", ROOT / "helm/tools/generate.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


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
def template(helm: str) -> Template:
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
def rendered(template: Template) -> dict[str, list[Manifest]]:
    """The manifests of each ci/*-values.yaml, rendered once per session."""
    out: dict[str, list[Manifest]] = {}
    for values in CI_VALUES:
        result = template(values)
        assert result.returncode == 0, f"helm template with {values.name} failed:\n{result.stderr}"
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
        out[values.name] = docs
    return out


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(owning manifest, pod spec) of every workload in the output."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc, doc["spec"]


def service_of(doc: Manifest) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/name"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container.get("env", [])}


def fails_with(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, f"helm accepted the values:\n{result.stdout[:2000]}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in helm's error:\n{result.stderr}"


# ---------------------------------------------------------------------------------------
# Sources: generated files, documented values.


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, ROOT / "helm/tools/generate.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


VALUES_FILES = [CHART / "values.yaml", *(CHART / "charts" / s / "values.yaml" for s in SERVICES)]


def _undocumented(value: Any, documented: Callable[[str], bool], path: str = "") -> Iterator[str]:
    """Keys with no documentation: a key is documented by its own comment or description,
    by its parent's (a block documented as a whole), or, for a mapping, by all its keys."""
    if not isinstance(value, dict):
        return
    for key, child in value.items():
        sub = f"{path}.{key}" if path else key
        if documented(sub):
            continue
        if isinstance(child, dict) and child:
            yield from _undocumented(child, documented, sub)
        else:
            yield sub


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: str(p.relative_to(CHART)))
def test_every_value_has_a_doc_comment(values_file: Path) -> None:
    text = values_file.read_text()
    docs = generate.doc_comments(text)
    assert all(docs.values()), "empty `# --` comment"
    missing = list(_undocumented(yaml.safe_load(text), lambda path: path in docs))
    assert not missing, f"keys without a `# --` comment (on them or their block): {missing}"


def _schema_node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for key in path.split("."):
        node = (node or {}).get("properties", {}).get(key)
        if node is None:
            return None
    return node


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: str(p.relative_to(CHART)))
def test_schema_describes_every_value(values_file: Path) -> None:
    schema = json.loads(values_file.with_name("values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    values = yaml.safe_load(values_file.read_text())

    def closed(path: str) -> bool:
        parent = _schema_node(schema, path.rpartition(".")[0]) if "." in path else schema
        return bool(parent) and parent.get("additionalProperties") is False

    absent = [p for p in _key_paths(values) if closed(p) and _schema_node(schema, p) is None]
    assert not absent, f"values missing from values.schema.json: {absent}"
    missing = list(_undocumented(values, lambda path: "description" in (_schema_node(schema, path) or {})))
    assert not missing, f"schema entries without a description: {missing}"


def _key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from _key_paths(child, path)


# ---------------------------------------------------------------------------------------
# Lint and render.


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(helm: str, values: Path) -> None:
    result = run_helm(helm, "lint", "--strict", CHART, "--values", values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_ci_values_exist() -> None:
    names = {path.name for path in CI_VALUES}
    assert {"default-values.yaml", "minimal-values.yaml", "production-values.yaml"} <= names


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_render_is_well_formed(rendered: dict[str, list[Manifest]], values: Path) -> None:
    docs = rendered[values.name]
    assert docs, "nothing rendered"
    names = set()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in names, f"{key} rendered twice"
        names.add(key)
        assert doc["metadata"]["namespace"] == NAMESPACE, key
        assert len(doc["metadata"]["name"]) <= 63, key


IMAGE = re.compile(
    r"^(?:(?P<registry>[^/]+\.[^/]+)/)?(?P<repository>[a-z0-9._/-]+):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_image_is_pinned(rendered: dict[str, list[Manifest]], values: Path) -> None:
    images = [
        container["image"]
        for _, spec in pod_specs(rendered[values.name])
        for container in spec.get("initContainers", []) + spec["containers"]
    ]
    assert images
    for image in images:
        match = IMAGE.match(image)
        assert match, f"{image} has no tag"
        assert match["tag"].lower() != "latest", image


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_deployments_probe_and_run_unprivileged(rendered: dict[str, list[Manifest]], values: Path) -> None:
    deployments = of_kind(rendered[values.name], "Deployment")
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        # Kubernetes would inject SOCLE_<SERVICE>_SERVICE_HOST..., refused by the settings.
        assert spec["enableServiceLinks"] is False, name
        [container] = spec["containers"]
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "http", (name, probe)
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert container["resources"]["requests"], name
        assert container["resources"]["limits"], name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_no_secret_is_rendered(rendered: dict[str, list[Manifest]], values: Path) -> None:
    docs = rendered[values.name]
    assert not of_kind(docs, "Secret"), "credentials must come from existing Secrets"
    for doc in docs:
        assert "data" not in doc, doc["metadata"]["name"]
        assert "stringData" not in doc, doc["metadata"]["name"]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_credentials_come_from_existing_secrets(rendered: dict[str, list[Manifest]], values: Path) -> None:
    chosen = yaml.safe_load(values.read_text())
    for owner, spec in pod_specs(rendered[values.name]):
        for container in spec["containers"]:
            for name, item in env_of(container).items():
                if name.endswith("_URL") and "DATABASE" in name:
                    ref = item["valueFrom"]["secretKeyRef"]
                    service = name.split("_")[1].lower()
                    own = chosen.get(service, {}).get("database", {}).get("existingSecret")
                    assert ref["name"] == (own or chosen["global"]["existingSecret"]), name
                    assert "value" not in item, f"{owner['metadata']['name']}: {name} is a literal"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_migration_jobs_are_pre_install_and_pre_upgrade_hooks(
    rendered: dict[str, list[Manifest]], values: Path
) -> None:
    docs = rendered[values.name]
    chosen = yaml.safe_load(values.read_text())
    expected = {
        s
        for s in SERVICES
        if chosen.get(s, {}).get("enabled", True) and chosen.get(s, {}).get("migrations", {}).get("enabled", True)
    }
    jobs = of_kind(docs, "Job")
    assert {service_of(job) for job in jobs} == expected
    hook_accounts = {
        sa["metadata"]["name"]: sa for sa in of_kind(docs, "ServiceAccount") if "annotations" in sa["metadata"]
    }
    for job in jobs:
        service = service_of(job)
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        assert spec["enableServiceLinks"] is False
        [container] = spec["containers"]
        assert container["command"] == ["python", "-m", f"socle_{service}.db.migrate"]
        env = env_of(container)
        prefix = f"SOCLE_{service.upper()}_"
        assert "secretKeyRef" in env[prefix + "MIGRATION_DATABASE_URL"]["valueFrom"]
        assert "secretKeyRef" in env[prefix + "DATABASE_URL"]["valueFrom"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        # Its ServiceAccount exists before it: a hook of lower weight, not the release's own
        # ServiceAccount, which pre-install hooks run before.
        account = hook_accounts[spec["serviceAccountName"]]
        assert account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    # The other services' policies call functions of tenancy's schema: its Job runs first.
    weights = {service_of(job): int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) for job in jobs}
    if "tenancy" in weights:
        assert all(weights["tenancy"] < weight for service, weight in weights.items() if service != "tenancy")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_only_migrations_get_the_schema_owner(rendered: dict[str, list[Manifest]], values: Path) -> None:
    for deployment in of_kind(rendered[values.name], "Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert not [name for name in env if name.endswith("MIGRATION_DATABASE_URL")]
        assert f"SOCLE_{service_of(deployment).upper()}_DATABASE_URL" in env


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_services_select_only_their_service_pods(rendered: dict[str, list[Manifest]], values: Path) -> None:
    docs = rendered[values.name]
    deployments = {service_of(d): d for d in of_kind(docs, "Deployment")}
    jobs = of_kind(docs, "Job")
    for service in of_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        deployment = deployments[service_of(service)]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == selector
        for job in jobs:
            job_labels = job["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= job_labels.items(), "a Service would route to a migration pod"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_settings_use_each_service_prefix(rendered: dict[str, list[Manifest]], values: Path) -> None:
    chosen = yaml.safe_load(values.read_text())
    for owner, spec in pod_specs(rendered[values.name]):
        if owner["kind"] == "Pod":
            continue
        service = service_of(owner)
        env = env_of(spec["containers"][0])
        assert all(name.startswith(f"SOCLE_{service.upper()}_") for name in env), sorted(env)
        prefix = f"SOCLE_{service.upper()}_"
        assert env[prefix + "OIDC_ISSUER"]["value"] == chosen["global"]["oidc"]["issuer"]
        assert env[prefix + "ENVIRONMENT"]["value"] == chosen["global"].get("environment", "production")


def _settings_class(service: str) -> type[ServiceSettings]:
    """The service's settings class; a config module that does not import fails the test."""
    config = importlib.import_module(f"socle_{service}.config")
    classes = [
        value
        for value in vars(config).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
    ]
    assert len(classes) == 1, f"socle_{service}.config: expected one settings class, found {classes}"
    return classes[0]


def test_rendered_settings_exist_in_the_services(rendered: dict[str, list[Manifest]]) -> None:
    """Every SOCLE_<SERVICE>_* variable the chart sets is a field of that service's settings
    (the services refuse unknown ones at start-up)."""
    checked = 0
    for docs in rendered.values():
        for owner, spec in pod_specs(docs):
            if owner["kind"] == "Pod":
                continue
            service = service_of(owner)
            fields = set(_settings_class(service).model_fields)
            prefix = f"SOCLE_{service.upper()}_"
            names = {name.removeprefix(prefix).lower() for name in env_of(spec["containers"][0])}
            assert names <= fields, f"{service}: not settings of the service: {sorted(names - fields)}"
            checked += 1
    assert checked


FAKE_DATABASE_URL = "postgresql+asyncpg://role:from-the-secret@db.example:5432/socle"


def _stand_in(name: str) -> str:
    """A value of the kind the Secret would hold for the setting ``name`` (SOCLE_<SERVICE>_...)."""
    if name.endswith("_DATABASE_URLS"):
        return json.dumps({"identity": FAKE_DATABASE_URL})
    if name.endswith("_URL"):
        return FAKE_DATABASE_URL
    if name.endswith("_REPORT_SIGNING_KEY"):
        key = Ed25519PrivateKey.generate()
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    return "from-the-secret-" + "x" * 32


def _settings_errors(docs: list[Manifest], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each service's settings class says of the exact environment the chart gives its pods
    (Deployments and migration Jobs), Secret references replaced by stand-in values."""
    errors: list[str] = []
    loaded = 0
    for owner, spec in pod_specs(docs):
        if owner["kind"] == "Pod":
            continue
        settings_class = _settings_class(service_of(owner))
        env = {item["name"]: item.get("value") or _stand_in(item["name"]) for item in spec["containers"][0]["env"]}
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.upper().startswith("SOCLE_")]:
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            try:
                settings_class()
            except ValidationError as error:
                errors.append(f"{owner['kind']} {owner['metadata']['name']}: {error}")
        loaded += 1
    assert loaded, "no workload rendered"
    return errors


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_services_accept_the_rendered_settings(
    rendered: dict[str, list[Manifest]], values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _settings_errors(rendered[values.name], monkeypatch) == []


def test_secret_env_names_are_the_services_secret_settings() -> None:
    """The names the values schema lets ``secretEnv`` map: each service's secret settings but the
    database URLs the chart maps itself, no more (refused at start-up), no fewer."""
    for service in SERVICES:
        fields = _settings_class(service).model_fields
        secret = {
            name.upper()
            for name, field in fields.items()
            if "SecretStr" in str(field.annotation) and name not in {"database_url", "migration_database_url"}
        }
        assert set(generate.SECRET_SETTINGS[service]) == secret, service


def test_every_secret_setting_mapped_from_a_secret_starts_the_services(
    template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service given every secret setting it has through ``secretEnv``: the rendered pods'
    environment is one their settings accept."""
    values = {
        service: {"secretEnv": [{"name": name, "key": name.lower().replace("_", "-")} for name in names]}
        for service, names in generate.SECRET_SETTINGS.items()
        if names
    }
    result = template(DEFAULT, _values_file(tmp_path, values))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    [tenancy] = [d for d in of_kind(docs, "Deployment") if service_of(d) == "tenancy"]
    env = env_of(tenancy["spec"]["template"]["spec"]["containers"][0])
    assert env["SOCLE_TENANCY_REPORT_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "report-signing-key"
    assert _settings_errors(docs, monkeypatch) == []


def test_console_is_given_the_other_services_urls(rendered: dict[str, list[Manifest]]) -> None:
    [console] = [d for d in of_kind(rendered["default-values.yaml"], "Deployment") if service_of(d) == "console"]
    env = env_of(console["spec"]["template"]["spec"]["containers"][0])
    urls = json.loads(env["SOCLE_CONSOLE_SERVICE_URLS"]["value"])
    services = {service_of(s): s["metadata"]["name"] for s in of_kind(rendered["default-values.yaml"], "Service")}
    assert urls == {s: f"http://{services[s]}:8000" for s in SERVICES if s != "console"}


def test_tenancy_is_given_the_billing_url(rendered: dict[str, list[Manifest]], template: Template) -> None:
    """Onboarding opens each tenant's metering account in billing: in-cluster by default, or as set."""
    [tenancy] = [d for d in of_kind(rendered["default-values.yaml"], "Deployment") if service_of(d) == "tenancy"]
    env = env_of(tenancy["spec"]["template"]["spec"]["containers"][0])
    [billing] = [s for s in of_kind(rendered["default-values.yaml"], "Service") if service_of(s) == "billing"]
    assert env["SOCLE_TENANCY_BILLING_URL"]["value"] == f"http://{billing['metadata']['name']}:8000"
    others = [d for d in of_kind(rendered["default-values.yaml"], "Deployment") if service_of(d) != "tenancy"]
    assert not any(
        n.endswith("_BILLING_URL") for d in others for n in env_of(d["spec"]["template"]["spec"]["containers"][0])
    )
    result = template(DEFAULT, sets=("tenancy.config.billingUrl=https://billing.internal.example",))
    assert result.returncode == 0, result.stderr
    assert "https://billing.internal.example" in result.stdout
    fails_with(template(DEFAULT, sets=("tenancy.config.billingUrl=billing:8000",)), "billingUrl")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_test_pod_checks_every_installed_service(rendered: dict[str, list[Manifest]], values: Path) -> None:
    docs = rendered[values.name]
    [pod] = of_kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    [container] = pod["spec"]["containers"]
    urls = env_of(container)["HEALTH_URLS"]["value"].split()
    services = of_kind(docs, "Service")
    assert sorted(urls) == sorted(
        f"http://{s['metadata']['name']}.{NAMESPACE}.svc:{s['spec']['ports'][0]['port']}/health/ready" for s in services
    )
    assert "wget" in container["command"][-1]


def test_notes_list_the_installed_services(helm: str, tmp_path: Path) -> None:
    """NOTES.txt only renders on a real install: render it here through a ConfigMap."""
    chart = tmp_path / "socle"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )
    result = run_helm(
        helm,
        *("template", RELEASE, chart, "--namespace", NAMESPACE),
        *("--values", CHART / "ci" / "minimal-values.yaml"),
        *("--show-only", "templates/notes-check.yaml"),
    )
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    assert f"http://socle-tenancy.{NAMESPACE}.svc:8000" in notes
    assert f"http://socle-identity.{NAMESPACE}.svc:8000" in notes
    assert "socle-billing" not in notes
    assert f"helm test {RELEASE} --namespace {NAMESPACE}" in notes


def test_minimal_values_install_only_what_they_enable(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["minimal-values.yaml"]
    assert {service_of(d) for d in of_kind(docs, "Deployment")} == {"tenancy", "identity"}
    assert {service_of(j) for j in of_kind(docs, "Job")} == {"tenancy"}
    assert not of_kind(docs, "PodDisruptionBudget")
    for deployment in of_kind(docs, "Deployment"):
        assert deployment["spec"]["replicas"] == 1


def test_production_values(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["production-values.yaml"]
    deployments = {service_of(d): d for d in of_kind(docs, "Deployment")}
    ingestion = deployments["ingestion"]
    assert "replicas" not in ingestion["spec"], "the HPA owns the replica count"
    [hpa] = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == ingestion["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    image = ingestion["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.agglo-exemple.fr/socle/ingestion:0.1.0@sha256:")
    for deployment in deployments.values():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": "registry-agglo-exemple"}]
    assert {service_of(i) for i in of_kind(docs, "Ingress")} == {"ingestion", "console"}
    assert len(of_kind(docs, "ServiceMonitor")) == 4


# ---------------------------------------------------------------------------------------
# Values the chart refuses.


def _values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_misspelt_top_level_key_fails(template: Template, tmp_path: Path) -> None:
    fails_with(template(DEFAULT, _values_file(tmp_path, {"tenacy": {"enabled": False}})), "tenacy")


def test_misspelt_service_key_fails(template: Template, tmp_path: Path) -> None:
    values = _values_file(tmp_path, {"tenancy": {"replicaCont": 3}})
    fails_with(template(DEFAULT, values), "replicaCont", "not allowed")


def test_misspelt_global_key_fails(template: Template, tmp_path: Path) -> None:
    values = _values_file(tmp_path, {"global": {"existingSecrets": "socle-credentials"}})
    fails_with(template(DEFAULT, values), "existingSecrets", "not allowed")


def test_wrong_type_fails(template: Template) -> None:
    fails_with(template(DEFAULT, sets=("billing.replicaCount=two",)), "/billing/replicaCount")


def test_missing_existing_secret_fails(template: Template) -> None:
    fails_with(
        template(DEFAULT, sets=("global.existingSecret=",)),
        "no Secret for the database credentials",
        "global.existingSecret",
    )


#: The secretEnv entries the charts declare by default: settings the services need in production.
KEYCLOAK_SECRETS = {
    "tenancy": "KEYCLOAK_CLIENT_SECRET",
    "identity": "KEYCLOAK_CLIENT_SECRET",
    "console": "OIDC_CLIENT_SECRET",
}


def test_one_service_without_secret_fails(template: Template, tmp_path: Path) -> None:
    values = {"global": {"existingSecret": ""}}
    values.update({s: {"database": {"existingSecret": f"{s}-db"}} for s in SERVICES if s != "billing"})
    for service, name in KEYCLOAK_SECRETS.items():  # their Keycloak client secrets, from a Secret of their own
        values[service]["secretEnv"] = [{"name": name, "key": "client-secret", "existingSecret": "kc"}]
    fails_with(
        template(DEFAULT, _values_file(tmp_path, values)),
        "billing: no Secret",
        "billing-database-url",
    )


def test_secret_env_without_secret_fails(template: Template, tmp_path: Path) -> None:
    values: dict[str, Any] = {"global": {"existingSecret": ""}}
    values.update({s: {"database": {"existingSecret": f"{s}-db"}} for s in SERVICES})
    for service in ("tenancy", "console"):
        values[service]["secretEnv"] = [{"name": KEYCLOAK_SECRETS[service], "key": "s", "existingSecret": "kc"}]
    # identity keeps its default entry, which names no Secret of its own
    fails_with(
        template(DEFAULT, _values_file(tmp_path, values)),
        "identity: secretEnv KEYCLOAK_CLIENT_SECRET has no Secret",
        '"keycloak-platform-client-secret"',
    )


def test_missing_issuer_fails(template: Template) -> None:
    fails_with(template(DEFAULT, sets=("global.oidc.issuer=",)), "global.oidc.issuer is required")


@pytest.mark.parametrize("key", ["global.image.tag", "tenancy.image.tag", "console.image.tag"])
def test_latest_tag_fails(template: Template, key: str) -> None:
    fails_with(template(DEFAULT, sets=(f"{key}=latest",)), 'image tag "latest" is refused')


def test_latest_test_image_fails(template: Template) -> None:
    fails_with(template(DEFAULT, sets=("test.image.tag=latest",)), "test.image.tag")


def test_empty_tag_fails(template: Template) -> None:
    fails_with(template(DEFAULT, sets=("global.image.tag=",)), "no image tag")


def test_weakened_security_context_fails(template: Template) -> None:
    fails_with(
        template(DEFAULT, sets=("ingestion.securityContext.readOnlyRootFilesystem=false",)),
        "/ingestion/securityContext/readOnlyRootFilesystem",
    )


def test_secret_env_cannot_override_chart_settings(template: Template, tmp_path: Path) -> None:
    values = _values_file(tmp_path, {"tenancy": {"secretEnv": [{"name": "DATABASE_URL", "key": "somewhere-else"}]}})
    fails_with(template(DEFAULT, values), "/tenancy/secretEnv/0/name")


def test_defaults_alone_fail_with_what_to_set(template: Template) -> None:
    result = template()
    fails_with(result)
    assert "global.oidc.issuer" in result.stderr or "global.existingSecret" in result.stderr


def test_secret_env_is_read_from_the_secret(template: Template, tmp_path: Path) -> None:
    values = _values_file(
        tmp_path,
        {"tenancy": {"secretEnv": [{"name": "AUDIT_HEADS_SIGNING_KEY", "key": "tenancy-audit-heads-key"}]}},
    )
    result = template(DEFAULT, values)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    [tenancy] = [d for d in of_kind(docs, "Deployment") if service_of(d) == "tenancy"]
    env = env_of(tenancy["spec"]["template"]["spec"]["containers"][0])
    assert env["SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "socle-credentials",
        "key": "tenancy-audit-heads-key",
    }


@pytest.mark.parametrize(
    ("service", "name"),
    [("identity", "ADMIN_CLIENT_SECRET"), ("console", "KEYCLOAK_CLIENT_SECRET"), ("ingestion", "API_TOKEN")],
)
def test_secret_env_naming_no_setting_of_the_service_fails(
    template: Template, tmp_path: Path, service: str, name: str
) -> None:
    """A name the service does not know would crash-loop its pods: helm refuses it first."""
    values = _values_file(tmp_path, {service: {"secretEnv": [{"name": name, "key": "some-key"}]}})
    fails_with(template(DEFAULT, values), f"/{service}/secretEnv")


def test_console_needs_its_public_url(template: Template) -> None:
    fails_with(template(DEFAULT, sets=("console.config.publicUrl=",)), "console: config.publicUrl is required")


def test_ingresses_cap_the_body_size_like_the_services(rendered: dict[str, list[Manifest]]) -> None:
    """The production example's Ingresses keep the default body limit beside their own annotations."""
    ingresses = of_kind(rendered["production-values.yaml"], "Ingress")
    assert ingresses
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "10m", ingress["metadata"]["name"]
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"

"""Generate the Socle service charts and every values.schema.json of helm/socle.

The six service charts have one shape: the same values, the same templates (one-line
calls into the socle-lib library chart), differing only in the service's name and
whether it has a database. This script writes them from the two templates beside it
and derives each values.schema.json from the values file it validates:

* types and the set of allowed keys come from the defaults in values.yaml (objects are
  closed with additionalProperties: false, so a misspelt key fails);
* descriptions come from the ``# --`` comment above each key;
* constraints that defaults cannot show (enums, patterns, ranges, free-form maps) come
  from the CONSTRAINTS table below.

Run it after editing a template, the umbrella's values.yaml or this file:

    uv run --no-project --with pyyaml python helm/tools/generate.py

``--check`` writes nothing and exits 1 when a generated file is out of date (the
tests run it).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
UMBRELLA = HERE.parent / "socle"
VERSION = "0.1.0"

#: service -> (has a database, one-line description). Order is the umbrella's order.
SERVICES: dict[str, tuple[bool, str]] = {
    "tenancy": (
        True,
        "tenant registry (the EPCI and its communes), onboarding, suspension and offboarding, "
        "quotas, data-sharing grants, the audit log and the isolation evidence report",
    ),
    "identity": (
        True,
        "OIDC with Keycloak: one organization per tenant, roles, service accounts of devices, "
        "integrations and partners, console login, token verification",
    ),
    "ingestion": (
        True,
        "device registry and readings intake (HTTP batch, LoRaWAN webhooks, MQTT), validation, "
        "quotas and rate limits, threshold alerts, usage metering",
    ),
    "timeseries": (
        True,
        "storage and queries of readings on PostgreSQL (TimescaleDB when present), "
        "roll-ups, exports and open-data publication",
    ),
    "billing": (
        True,
        "usage metering, prices, the EPCI's allocation key and the statements of each commune",
    ),
    "console": (True, "the web console of every role, with the dashboards"),
}

#: Settings only one service has, inserted at the end of its ``config:`` block.
EXTRA_CONFIG: dict[str, str] = {
    "tenancy": (
        "  # -- Base URL of the billing service (`SOCLE_@PREFIX@_BILLING_URL`), where onboarding opens each"
        " tenant's metering account, e.g. `http://socle-billing:8000`; empty computes"
        " `http://<release>-billing:8000`.\n"
        '  billingUrl: ""\n'
    ),
    "console": (
        "  # -- Base URLs of the other services (`SOCLE_@PREFIX@_SERVICE_URLS`), e.g."
        ' `{tenancy: "http://socle-tenancy:8000"}`; empty computes `http://<release>-<service>:8000`'
        " for tenancy, identity, ingestion, timeseries and billing.\n"
        "  serviceUrls: {}\n"
        "  # -- Public https URL agents open the console at (`SOCLE_@PREFIX@_PUBLIC_URL`), e.g."
        " `https://socle.agglo-exemple.fr`; required: login redirects and the session cookie depend on it.\n"
        '  publicUrl: ""\n'
    ),
}

#: Secrets a service cannot start without in production (``secretEnv`` defaults).
SECRET_ENV: dict[str, str] = {
    service: (
        "secretEnv:\n"
        "  # Secret of the socle-platform Keycloak client (organizations, members, service accounts).\n"
        "  - name: KEYCLOAK_CLIENT_SECRET\n"
        "    key: keycloak-platform-client-secret\n"
    )
    for service in ("tenancy", "identity")
}
SECRET_ENV["console"] = (
    "secretEnv:\n"
    "  # Secret of the socle-console Keycloak client (agents' login).\n"
    "  - name: OIDC_CLIENT_SECRET\n"
    "    key: keycloak-console-client-secret\n"
)

#: Settings of each service a ``secretEnv`` entry may name: its secret settings (SecretStr
#: fields) but the database URLs the chart maps itself. Any other name is refused by the
#: values schema: the service would refuse the variable at start-up (tests/helm checks this
#: table against each service's settings class).
SECRET_SETTINGS: dict[str, tuple[str, ...]] = {
    "tenancy": ("KEYCLOAK_CLIENT_SECRET", "REPORT_SIGNING_KEY", "AUDIT_HEADS_SIGNING_KEY", "ISOLATION_DATABASE_URLS"),
    "identity": ("KEYCLOAK_CLIENT_SECRET",),
    "ingestion": (),
    "timeseries": (),
    "billing": (),
    "console": ("OIDC_CLIENT_SECRET",),
}

#: Template files of a service chart: file name -> socle-lib template it calls.
TEMPLATES = {
    "serviceaccount.yaml": "socle-lib.serviceAccount",
    "service.yaml": "socle-lib.service",
    "deployment.yaml": "socle-lib.deployment",
    "hpa.yaml": "socle-lib.hpa",
    "pdb.yaml": "socle-lib.pdb",
    "ingress.yaml": "socle-lib.ingress",
    "servicemonitor.yaml": "socle-lib.serviceMonitor",
}
DB_TEMPLATES = {"migrations-job.yaml": "socle-lib.migrations"}

GENERATED = "Generated by helm/tools/generate.py from {source}: edit that, then run the script."

# --------------------------------------------------------------------------------------
# Reusable schema fragments.

K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
OPTIONAL_K8S_NAME = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
DURATION = r"^[0-9]+(ms|s|m|h)$"

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_LIST = {"type": "array", "items": {"type": "object"}}
FREE_OBJECT = {"type": "object", "additionalProperties": True}


def _quantity() -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "pattern": QUANTITY},
            {"type": "number", "minimum": 0},
        ]
    }


def _resources(description: str | None = None) -> dict[str, Any]:
    amounts = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cpu": _quantity(),
            "memory": _quantity(),
            "ephemeral-storage": _quantity(),
        },
    }
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"requests": amounts, "limits": copy.deepcopy(amounts)},
    }
    if description:
        schema["description"] = description
    return schema


def _probe(success_threshold_fixed: bool) -> dict[str, Any]:
    positive = {"type": "integer", "minimum": 1}
    props: dict[str, Any] = {
        "initialDelaySeconds": {"type": "integer", "minimum": 0},
        "periodSeconds": positive,
        "timeoutSeconds": positive,
        "failureThreshold": positive,
        "successThreshold": {"const": 1} if success_threshold_fixed else positive,
    }
    return {"type": "object", "additionalProperties": False, "properties": props}


#: Constraints by dotted path (``*`` matches one key). Each entry is merged into the
#: inferred schema; ``"replace": True`` drops what was inferred.
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "nameOverride": {"pattern": OPTIONAL_K8S_NAME, "maxLength": 63},
    "fullnameOverride": {"pattern": OPTIONAL_K8S_NAME, "maxLength": 63},
    "replicaCount": {"minimum": 0},
    "revisionHistoryLimit": {"minimum": 0},
    "image.registry": {"pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*)?$"},
    "image.repository": {"minLength": 1, "pattern": r"^[a-z0-9]+([._/-][a-z0-9]+)*$"},
    # `latest` is refused by the templates, whose message says what to set instead.
    "image.tag": {"pattern": r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"},
    "image.digest": {"pattern": r"^(sha256:[a-f0-9]{64})?$"},
    "image.pullPolicy": {"enum": ["", "Always", "IfNotPresent", "Never"]},
    "imagePullSecrets": {"items": {"type": "string", "pattern": K8S_NAME}},
    "config.logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
    "config.corsOrigins": {"items": {"type": "string", "pattern": r"^https?://[^/\s]+$"}},
    "config.serviceUrls": {
        "type": "object",
        "additionalProperties": {"type": "string", "pattern": r"^https?://[^\s]+$"},
        "propertyNames": {"enum": ["tenancy", "identity", "ingestion", "timeseries", "billing"]},
    },
    "config.billingUrl": {"pattern": r"^(https?://[^\s]+)?$"},
    "database.existingSecret": {"pattern": OPTIONAL_K8S_NAME},
    "database.urlKey": {"pattern": SECRET_KEY},
    "database.migrationUrlKey": {"pattern": SECRET_KEY},
    "database.poolSize": {"minimum": 1, "maximum": 100},
    "database.maxOverflow": {"minimum": 0, "maximum": 100},
    "database.statementTimeoutMs": {"minimum": 100},
    "migrations.backoffLimit": {"minimum": 0, "maximum": 10},
    "migrations.activeDeadlineSeconds": {"minimum": 30},
    "migrations.resources": {"replace": True, **_resources()},
    "secretEnv": {
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "key"],
            "properties": {
                "name": {
                    "type": "string",
                    "description": "Setting name without the SOCLE_<SERVICE>_ prefix: one of the service's "
                    "secret settings.",
                },
                "key": {"type": "string", "pattern": SECRET_KEY},
                "existingSecret": {"type": "string", "pattern": OPTIONAL_K8S_NAME},
            },
        }
    },
    "extraEnv": {
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
        }
    },
    "serviceAccount.name": {"pattern": OPTIONAL_K8S_NAME},
    "serviceAccount.annotations": STRING_MAP,
    "service.type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "service.port": {"minimum": 1, "maximum": 65535},
    "service.annotations": STRING_MAP,
    "ingress.annotations": STRING_MAP,
    "ingress.hosts": {
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["host", "paths"],
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "paths": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["path", "pathType"],
                        "properties": {
                            "path": {"type": "string", "pattern": "^/"},
                            "pathType": {"enum": ["Prefix", "Exact", "ImplementationSpecific"]},
                        },
                    },
                },
            },
        }
    },
    "ingress.tls": {
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretName", "hosts"],
            "properties": {
                "secretName": {"type": "string", "pattern": K8S_NAME},
                "hosts": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
    "podAnnotations": STRING_MAP,
    "podLabels": STRING_MAP,
    "podSecurityContext": {
        "replace": True,
        "type": "object",
        "additionalProperties": False,
        "required": ["runAsNonRoot", "seccompProfile"],
        "properties": {
            "runAsNonRoot": {"const": True},
            "runAsUser": {"type": "integer", "minimum": 1},
            "runAsGroup": {"type": "integer", "minimum": 1},
            "fsGroup": {"type": "integer", "minimum": 1},
            "fsGroupChangePolicy": {"enum": ["Always", "OnRootMismatch"]},
            "supplementalGroups": {"type": "array", "items": {"type": "integer"}},
            "seccompProfile": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["RuntimeDefault", "Localhost"]},
                    "localhostProfile": {"type": "string"},
                },
            },
        },
    },
    "securityContext": {
        "replace": True,
        "type": "object",
        "additionalProperties": False,
        "required": [
            "runAsNonRoot",
            "allowPrivilegeEscalation",
            "readOnlyRootFilesystem",
            "capabilities",
        ],
        "properties": {
            "runAsNonRoot": {"const": True},
            "runAsUser": {"type": "integer", "minimum": 1},
            "runAsGroup": {"type": "integer", "minimum": 1},
            "allowPrivilegeEscalation": {"const": False},
            "readOnlyRootFilesystem": {"const": True},
            "privileged": {"const": False},
            "capabilities": {
                "type": "object",
                "additionalProperties": False,
                "required": ["drop"],
                "properties": {
                    "drop": {"type": "array", "contains": {"const": "ALL"}},
                    "add": {"type": "array", "maxItems": 0},
                },
            },
        },
    },
    "tmpSizeLimit": {"pattern": QUANTITY},
    "resources": {"replace": True, **_resources()},
    "probes.startup": {"replace": True, **_probe(success_threshold_fixed=True)},
    "probes.liveness": {"replace": True, **_probe(success_threshold_fixed=True)},
    "probes.readiness": {"replace": True, **_probe(success_threshold_fixed=False)},
    "terminationGracePeriodSeconds": {"minimum": 0, "maximum": 600},
    "autoscaling.minReplicas": {"minimum": 1},
    "autoscaling.maxReplicas": {"minimum": 1},
    "autoscaling.targetCPUUtilizationPercentage": {"minimum": 1, "maximum": 100},
    "podDisruptionBudget.maxUnavailable": {
        "replace": True,
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^[0-9]{1,3}%$"},
        ],
    },
    "metrics.serviceMonitor.labels": STRING_MAP,
    "metrics.serviceMonitor.interval": {"pattern": DURATION},
    "metrics.serviceMonitor.scrapeTimeout": {"pattern": DURATION},
    "priorityClassName": {"pattern": OPTIONAL_K8S_NAME},
    "nodeSelector": STRING_MAP,
    "tolerations": OBJECT_LIST,
    "affinity": FREE_OBJECT,
    "topologySpreadConstraints": OBJECT_LIST,
    # Umbrella-only values.
    "global.environment": {"enum": ["development", "test", "production"]},
    "global.oidc.issuer": {"pattern": r"^(https?://[^\s/]+(/[^\s]*)?)?$"},
    "global.oidc.audience": {"minLength": 1},
    "global.image.registry": {"pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*)?$"},
    "global.image.tag": {"pattern": r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"},
    "global.image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "global.imagePullSecrets": {"items": {"type": "string", "pattern": K8S_NAME}},
    "global.existingSecret": {"pattern": OPTIONAL_K8S_NAME},
    "test.image.registry": {"pattern": r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*)?$"},
    "test.image.repository": {"minLength": 1},
    "test.image.tag": {"pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"},
    "test.image.digest": {"pattern": r"^(sha256:[a-f0-9]{64})?$"},
    "test.image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "test.timeoutSeconds": {"minimum": 1, "maximum": 60},
    "test.resources": {"replace": True, **_resources()},
}

# --------------------------------------------------------------------------------------
# Comments and inference.

KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(\s|$)")


def doc_comments(text: str) -> dict[str, str]:
    """Map each dotted key path of a values file to the text of its ``# --`` comment."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None and stripped.startswith("# "):
                pending.append(stripped[2:].strip())
            continue
        match = KEY_LINE.match(line)
        if not match or stripped.startswith("-"):
            if stripped:
                pending = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            found[".".join(key for _, key in stack)] = " ".join(pending)
            pending = None
    return found


def _constraint(path: str) -> dict[str, Any] | None:
    if path in CONSTRAINTS:
        return CONSTRAINTS[path]
    parts = path.split(".")
    for pattern, value in CONSTRAINTS.items():
        pattern_parts = pattern.split(".")
        if len(pattern_parts) == len(parts) and all(p in {"*", q} for p, q in zip(pattern_parts, parts, strict=True)):
            return value
    return None


def infer(value: Any, path: str, docs: dict[str, str]) -> dict[str, Any]:
    """Schema of one value: its type from the default, closed objects, constraints."""
    constraint = _constraint(path)
    schema: dict[str, Any]
    if constraint is not None and constraint.get("replace"):
        schema = {k: copy.deepcopy(v) for k, v in constraint.items() if k != "replace"}
    else:
        if isinstance(value, bool):
            schema = {"type": "boolean"}
        elif isinstance(value, int):
            schema = {"type": "integer"}
        elif isinstance(value, float):
            schema = {"type": "number"}
        elif isinstance(value, str):
            schema = {"type": "string"}
        elif isinstance(value, list):
            schema = {"type": "array"}
        elif isinstance(value, dict):
            schema = {"type": "object"}
            free = constraint is not None and "additionalProperties" in constraint
            if value and not free:
                schema["additionalProperties"] = False
                schema["properties"] = {
                    key: infer(child, f"{path}.{key}" if path else key, docs) for key, child in value.items()
                }
            elif not free:
                schema["additionalProperties"] = False
                schema["properties"] = {}
        else:
            raise SystemExit(f"{path}: no default to infer a type from ({value!r})")
        if constraint is not None:
            schema.update(copy.deepcopy(constraint))
    if path in docs:
        schema = {"description": docs[path], **schema}
    if value is not None and "default" not in schema and not isinstance(value, dict | list):
        schema["default"] = value
    return schema


def values_schema(values_text: str, title: str) -> dict[str, Any]:
    values = yaml.safe_load(values_text)
    docs = doc_comments(values_text)
    body = infer(values, "", docs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        **body,
    }


# --------------------------------------------------------------------------------------
# Files.


def service_values(service: str) -> str:
    has_db, _ = SERVICES[service]
    text = (HERE / "service-values.yaml.in").read_text()
    database = (HERE / "database-values.yaml.in").read_text() if has_db else ""
    text = text.replace("@DATABASE@\n", database)
    text = text.replace("@EXTRA_CONFIG@\n", EXTRA_CONFIG.get(service, ""))
    text = text.replace("@SECRET_ENV@\n", SECRET_ENV.get(service, "secretEnv: []\n"))
    return (
        text.replace("@SERVICE@", service)
        .replace("@PREFIX@", service.upper().replace("-", "_"))
        .replace("@MODULE@", service.replace("-", "_"))
    )


def service_schema(service: str, values_text: str) -> dict[str, Any]:
    schema = values_schema(values_text, f"Values of the Socle {service} service chart")
    secret_env = schema["properties"]["secretEnv"]
    if SECRET_SETTINGS[service]:
        secret_env["items"]["properties"]["name"]["enum"] = list(SECRET_SETTINGS[service])
    else:
        secret_env["maxItems"] = 0  # the service has no secret setting but its database URLs
    schema["properties"]["global"] = {
        "type": "object",
        "description": "Global values shared with the umbrella chart (validated by its schema).",
    }
    return schema


def service_chart_yaml(service: str) -> str:
    _, description = SERVICES[service]
    return (
        f"# {GENERATED.format(source='helm/tools/generate.py')}\n"
        "apiVersion: v2\n"
        f"name: {service}\n"
        f"description: >-\n  Socle {service} service: {description}. Installed through the\n"
        "  umbrella chart socle; its templates come from the socle-lib library chart.\n"
        "type: application\n"
        f"version: {VERSION}\n"
        f'appVersion: "{VERSION}"\n'
    )


def service_template(service: str, library_template: str) -> str:
    return (
        f"{{{{- /* {GENERATED.format(source='helm/tools/generate.py')} */}}}}\n"
        f'{{{{- include "{library_template}" (dict "root" . "service" "{service}") }}}}\n'
    )


def umbrella_schema(service_schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    text = (UMBRELLA / "values.yaml").read_text()
    values = yaml.safe_load(text)
    docs = doc_comments(text)
    expected = set(SERVICES) | {"global", "test"}
    if set(values) != expected:
        raise SystemExit(f"helm/socle/values.yaml: top-level keys {sorted(values)} != {sorted(expected)}")
    properties: dict[str, Any] = {
        "global": infer(values["global"], "global", docs),
        "test": infer(values["test"], "test", docs),
        "socle-lib": {
            "type": "object",
            "description": "Values of the socle-lib library chart (it has none).",
        },
    }
    for service, sub in service_schemas.items():
        embedded = {k: v for k, v in sub.items() if k not in {"$schema", "title"}}
        embedded = copy.deepcopy(embedded)
        if service in docs:
            embedded["description"] = docs[service]
        properties[service] = embedded
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Values of the Socle umbrella chart",
        "type": "object",
        "additionalProperties": False,
        "required": ["global"],
        "properties": properties,
    }


def json_text(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for service, (has_db, _) in SERVICES.items():
        chart = UMBRELLA / "charts" / service
        values_text = f"# {GENERATED.format(source='helm/tools/service-values.yaml.in')}\n"
        values_text += service_values(service)
        files[chart / "Chart.yaml"] = service_chart_yaml(service)
        files[chart / "values.yaml"] = values_text
        schemas[service] = service_schema(service, values_text)
        files[chart / "values.schema.json"] = json_text(schemas[service])
        templates = dict(TEMPLATES, **(DB_TEMPLATES if has_db else {}))
        for name, library_template in templates.items():
            files[chart / "templates" / name] = service_template(service, library_template)
    files[UMBRELLA / "values.schema.json"] = json_text(umbrella_schema(schemas))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args()
    files = expected_files()
    stale = []
    for path, content in files.items():
        if not path.exists() or path.read_text() != content:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
    for service in SERVICES:
        templates_dir = UMBRELLA / "charts" / service / "templates"
        for extra in sorted(templates_dir.glob("*")):
            if extra not in files:
                stale.append(extra)
                if not args.check:
                    extra.unlink()
    root = HERE.parent.parent
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + str(path.relative_to(root)))
    if args.check and stale:
        print("run: uv run --no-project --with pyyaml python helm/tools/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

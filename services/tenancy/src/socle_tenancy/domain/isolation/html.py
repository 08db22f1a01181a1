"""The report as one self-contained HTML page (no external asset), printable to PDF by a browser."""

from __future__ import annotations

from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:12px}
th,td{border:1px solid #ccc;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}code{font-size:11px;word-break:break-all}
.pass{color:#0a6b2d;font-weight:700}.fail{color:#b00020;font-weight:700}.muted{color:#666}
.verdict{font-size:1.4rem;padding:.6rem 1rem;border:2px solid;display:inline-block;margin:.8rem 0}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}tr{page-break-inside:avoid}}
"""


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return '<span class="pass">yes</span>' if value else '<span class="fail">no</span>'
    if value is None:
        return '<span class="muted">—</span>'
    return escape(str(value))


def _outcome(outcome: str) -> str:
    css = "fail" if outcome == "violation" else "pass"
    return f"<span class='{css}'>{escape(outcome)}</span>"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    keys = {t["id"]: t["key"] for t in report["sample"]["tenants"]}
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Isolation evidence report {escape(report['report_id'])}</title><style>{_CSS}</style></head><body>",
        "<h1>Socle — tenant isolation evidence report</h1>",
        f"<p class='muted'>Report {escape(report['report_id'])} · schema {escape(report['schema_version'])} · "
        f"generated {escape(report['generated_at'])} · database {escape(str(report['database']['name']))} "
        f"(PostgreSQL {escape(str(report['database']['server_version']))}) · "
        f"environment {escape(report['environment'])}</p>",
        f"<div class='verdict {verdict}'>Verdict: {verdict.upper()} — "
        f"{report['counts']['violations']} violation(s)</div>",
        "<h2>Counts</h2>",
        _table(["measure", "value"], [[escape(k.replace("_", " ")), _cell(v)] for k, v in report["counts"].items()]),
    ]
    if report["violations"]:
        parts += [
            "<h2>Violations</h2>",
            _table(
                ["check", "subject", "detail"],
                [[escape(v["check"]), escape(v["subject"]), escape(v["detail"])] for v in report["violations"]],
            ),
        ]
    parts += [
        "<h2>Tenant sample</h2>",
        _table(
            ["tenant id", "key", "source"],
            [
                [f"<code>{escape(t['id'])}</code>", escape(t["key"]), escape(t["source"])]
                for t in report["sample"]["tenants"]
            ],
        ),
        "<h2>Tenant-owned tables</h2>",
        _table(
            ["table", "kind", "owner", "RLS enabled", "RLS forced", "policies (command, kind: USING / WITH CHECK)"],
            [
                [
                    f"{escape(t['schema'])}.{escape(t['table'])}",
                    escape(t["kind"] + (f" of {t['parent']}" if t["parent"] else "")),
                    escape(t["owner"]),
                    _cell(t["rls_enabled"]),
                    _cell(t["rls_forced"]),
                    "<br>".join(
                        f"<b>{escape(p['name'])}</b> ({escape(p['command'])}, {escape(p['kind'])}): "
                        f"<code>{escape(p['using'] or '—')}</code> / <code>{escape(p['with_check'] or '—')}</code>"
                        for p in t["policies"]
                    )
                    or '<span class="fail">none</span>',
                ]
                for t in report["catalogue"]["tables"]
            ],
        ),
        "<h2>Application roles</h2>",
        _table(
            ["role", "superuser", "BYPASSRLS", "owns", "member of", "violations"],
            [
                [
                    escape(r["name"]),
                    _cell(r["superuser"]),
                    _cell(r["bypassrls"]),
                    escape(", ".join(f"{o['objects']} in {o['catalog']}" for o in r["owns"]) or "nothing"),
                    escape(", ".join(r["member_of"]) or "—"),
                    escape("; ".join(r["violations"]) or "none"),
                ]
                for r in report["roles"]["application_roles"]
            ],
        ),
        "<p>Roles with superuser or BYPASSRLS (platform operators only): "
        + escape(", ".join(r["name"] for r in report["roles"]["privileged_roles"]) or "none")
        + "</p>",
        "<h2>Database probes (application roles, rolled back)</h2>",
    ]
    for service in report["database_probes"]["services"]:
        if service["status"] != "ran":
            parts.append(f"<p><b>{escape(service['service'])}</b>: not run ({escape(service['reason'])})</p>")
            continue
        parts.append(f"<p><b>{escape(service['service'])}</b> as <code>{escape(service['connected_as'])}</code></p>")
        rows = []
        for table in service["tables"]:
            for pair in table["pairs"]:
                rows.append(
                    [
                        f"{escape(table['schema'])}.{escape(table['table'])}",
                        escape(keys.get(pair["actor"], pair["actor"])),
                        escape(keys.get(pair["target"], pair["target"])),
                        _cell(pair["target_rows"]),
                        _cell(pair["select_visible"] - pair["shared_visible"]),
                        _cell(pair["shared_visible"]),
                        _cell(pair["update"]["affected"]),
                        _cell(pair["delete"]["affected"]),
                        escape(
                            pair["insert"]["by"]
                            if pair["insert"]["refused"]
                            else (pair["insert"]["skipped"] or "ACCEPTED")
                        ),
                        _outcome(pair["outcome"]),
                    ]
                )
        parts.append(
            _table(
                [
                    "table",
                    "as tenant",
                    "rows of",
                    "its rows",
                    "read",
                    "shared",
                    "updated",
                    "deleted",
                    "insert",
                    "outcome",
                ],
                rows,
            )
        )
    api = report["api_probes"]
    parts.append("<h2>API probes</h2>")
    if api["status"] != "ran":
        parts.append(f"<p>Not run: {escape(api['reason'])}</p>")
    else:
        parts.append(
            _table(
                ["route", "as tenant", "resource of", "status", "outcome"],
                [
                    [
                        escape(f"{p['service']} {p['method']} {p['path']}"),
                        escape(keys.get(p.get("actor", ""), p.get("actor", "—"))),
                        escape(keys.get(p["target"], p["target"])),
                        _cell(p.get("status")),
                        escape(p["outcome"] + (f" ({p['reason']})" if p.get("reason") else "")),
                    ]
                    for p in api["probes"]
                ],
            )
        )
    audit = report["audit_chain"]
    signature = report.get("signature", {})
    parts += [
        "<h2>Audit chain</h2>",
        f"<p>{escape(audit['status'])}: {escape(str(audit.get('detail', '')))}</p>",
        "<h2>Signature</h2>",
        f"<p>{escape(str(signature.get('algorithm')))}, key id <code>{escape(str(signature.get('key_id')))}</code>, "
        f"value <code>{escape(str(signature.get('value')))}</code>. Check the JSON report with "
        "<code>socle-isolation-report verify report.json</code>.</p>",
        "</body></html>",
    ]
    return "".join(parts)

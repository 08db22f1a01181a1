"""The report as one self-contained HTML page in French (no external asset), printable to PDF by a browser."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:12px}
th,td{border:1px solid #ccc;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}code{font-size:11px;word-break:break-all}
.pass{color:#0a6b2d;font-weight:700}.fail{color:#b00020;font-weight:700}.muted{color:#666}
.incomplete{color:#8a5300;font-weight:700}
.verdict{font-size:1.4rem;padding:.6rem 1rem;border:2px solid;display:inline-block;margin:.8rem 0}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}tr{page-break-inside:avoid}}
"""

VERDICTS = {"pass": "RÉUSSI", "fail": "ÉCHEC", "incomplete": "INCOMPLET"}
OUTCOMES = {
    "refused": "refusé",
    "vacuous": "sans objet (aucune ligne)",
    "violation": "VIOLATION",
    "skipped": "non fait",
}
COVERAGE = {"probed": "sondée", "gap": "LACUNE", "by_design": "hors sonde (expliqué)"}
CHECKS = {
    "catalogue": "catalogue",
    "roles": "rôles",
    "database_probe": "sonde de base de données",
    "api_probe": "sonde d'API",
    "api_routes": "routes d'API",
    "audit_chain": "chaîne d'audit",
}
AUDIT = {"verified": "vérifiée", "broken": "ROMPUE", "not available": "non disponible"}
COUNTS = {
    "tenant_owned_tables": "tables de collectivité",
    "policies": "politiques RLS",
    "application_roles": "rôles applicatifs",
    "tables_probed": "tables sondées",
    "probe_rows_inserted": "lignes de sonde insérées",
    "database_pair_probes": "sondes de base de données par paire",
    "database_pair_probes_refused": "… refusées",
    "database_pair_probes_vacuous": "… sans objet",
    "database_statements_refused": "instructions SQL refusées",
    "api_probes": "sondes d'API faites",
    "api_probes_refused": "… refusées",
    "api_probes_skipped": "sondes d'API non faites",
    "violations": "violations",
    "gaps": "lacunes",
}


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return '<span class="pass">oui</span>' if value else '<span class="fail">non</span>'
    if value is None:
        return '<span class="muted">—</span>'
    return escape(str(value))


def _outcome(outcome: str) -> str:
    css = "fail" if outcome == "violation" else ("incomplete" if outcome == "skipped" else "pass")
    return f"<span class='{css}'>{escape(OUTCOMES.get(outcome, outcome))}</span>"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _who(who: dict[str, str] | None) -> str:
    if not who:
        return _cell(None)
    return f"{escape(who['key'])}<br><code>{escape(who['id'])}</code>"


def _evidence(value: Any) -> str:
    if value is None:
        return _cell(None)
    if isinstance(value, list) and value and all(isinstance(v, dict) and "value" in v for v in value):
        return "<br>".join(
            f"<code>{escape(v['value'])}</code> — {escape(v['owner_view'])} ; trouvée : {escape(v['found_in'])}"
            for v in value
        )
    return f"<code>{escape(json.dumps(value, ensure_ascii=False))}</code>"


def render(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    keys = {t["id"]: t["key"] for t in report["sample"]["tenants"]}
    label = VERDICTS.get(verdict, verdict)
    counts = report["counts"]
    parts = [
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>",
        f"<title>Rapport de preuve d'isolation {escape(report['report_id'])}</title><style>{_CSS}</style></head>",
        "<body><h1>Socle — rapport de preuve d'isolation des collectivités</h1>",
        f"<p class='muted'>Rapport {escape(report['report_id'])} · schéma {escape(report['schema_version'])} · "
        f"produit le {escape(report['generated_at'])} · base {escape(str(report['database']['name']))} "
        f"(PostgreSQL {escape(str(report['database']['server_version']))}) · "
        f"environnement {escape(report['environment'])}</p>",
        f"<div class='verdict {verdict}'>Verdict : {label} — {counts['violations']} violation(s), "
        f"{counts['gaps']} lacune(s)</div>",
        "<p>RÉUSSI : aucune violation et tout a été contrôlé. INCOMPLET : aucune violation, mais une partie n'a "
        "pas pu être contrôlée (voir les lacunes). ÉCHEC : au moins une violation.</p>",
    ]
    if report["violations"]:
        parts += [
            "<h2>Violations</h2>",
            _table(
                ["contrôle", "objet", "constat", "sondeur", "cible", "requête", "preuve"],
                [
                    [
                        escape(CHECKS.get(v["check"], v["check"])),
                        escape(v["subject"]),
                        escape(v["detail"]),
                        _who(v.get("prober")),
                        _who(v.get("target")),
                        f"<code>{escape(v['request'])}</code>" if v.get("request") else _cell(None),
                        _evidence(v.get("evidence")),
                    ]
                    for v in report["violations"]
                ],
            ),
        ]
    if report["gaps"]:
        parts += [
            "<h2>Lacunes (non contrôlé)</h2>",
            _table(
                ["contrôle", "objet", "raison"],
                [
                    [escape(CHECKS.get(g["check"], g["check"])), escape(g["subject"]), escape(g["reason"])]
                    for g in report["gaps"]
                ],
            ),
        ]
    parts += [
        "<h2>Décomptes</h2>",
        _table(["mesure", "valeur"], [[escape(COUNTS.get(k, k)), _cell(v)] for k, v in counts.items()]),
        "<h2>Échantillon de collectivités</h2>",
        _table(
            ["identifiant", "clé", "origine"],
            [
                [
                    f"<code>{escape(t['id'])}</code>",
                    escape(t["key"]),
                    escape({"registry": "registre", "synthetic": "synthétique"}.get(t["source"], t["source"])),
                ]
                for t in report["sample"]["tenants"]
            ],
        ),
        "<h2>Tables de collectivité</h2>",
        _table(
            [
                "table",
                "nature",
                "propriétaire",
                "RLS activée",
                "RLS forcée",
                "politiques (commande, nature : USING / WITH CHECK)",
            ],
            [
                [
                    f"{escape(t['schema'])}.{escape(t['table'])}",
                    escape(t["kind"] + (f" de {t['parent']}" if t["parent"] else "")),
                    escape(t["owner"]),
                    _cell(t["rls_enabled"]),
                    _cell(t["rls_forced"]),
                    "<br>".join(
                        f"<b>{escape(p['name'])}</b> ({escape(p['command'])}, {escape(p['kind'])}) : "
                        f"<code>{escape(p['using'] or '—')}</code> / <code>{escape(p['with_check'] or '—')}</code>"
                        for p in t["policies"]
                    )
                    or '<span class="fail">aucune</span>',
                ]
                for t in report["catalogue"]["tables"]
            ],
        ),
        "<h2>Rôles applicatifs</h2>",
        _table(
            ["rôle", "superutilisateur", "BYPASSRLS", "possède", "membre de", "violations"],
            [
                [
                    escape(r["name"]),
                    _cell(r["superuser"]),
                    _cell(r["bypassrls"]),
                    escape(", ".join(f"{o['objects']} dans {o['catalog']}" for o in r["owns"]) or "rien"),
                    escape(", ".join(r["member_of"]) or "—"),
                    escape("; ".join(r["violations"]) or "aucune"),
                ]
                for r in report["roles"]["application_roles"]
            ],
        ),
        "<p>Rôles superutilisateurs ou BYPASSRLS (opérateurs de la plateforme seulement) : "
        + escape(", ".join(r["name"] for r in report["roles"]["privileged_roles"]) or "aucun")
        + "</p>",
        "<h2>Sondes de base de données (rôles applicatifs, transaction annulée)</h2>",
    ]
    for service in report["database_probes"]["services"]:
        if service["status"] != "ran":
            parts.append(f"<p><b>{escape(service['service'])}</b> : non fait ({escape(service['reason'])})</p>")
            continue
        parts.append(
            f"<p><b>{escape(service['service'])}</b> en tant que <code>{escape(service['connected_as'])}</code></p>"
        )
        rows = []
        for table in service["tables"]:
            if table.get("unreachable"):
                continue
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
                            (
                                "sécurité au niveau des lignes"
                                if pair["insert"]["by"] == "row-level security"
                                else pair["insert"]["by"]
                            )
                            if pair["insert"]["refused"]
                            else (pair["insert"]["skipped"] or "ACCEPTÉE")
                        ),
                        _outcome(pair["outcome"]),
                    ]
                )
        unreachable = [t for t in service["tables"] if t.get("unreachable")]
        parts.append(
            _table(
                [
                    "table",
                    "sondeur",
                    "lignes de",
                    "ses lignes",
                    "lues",
                    "partagées",
                    "modifiées",
                    "supprimées",
                    "insertion refusée par",
                    "résultat",
                ],
                rows,
            )
        )
        if unreachable:
            parts.append(
                f"<p class='muted'>{len(unreachable)} table(s) hors de portée du rôle applicatif (aucun privilège) : "
                + escape(", ".join(t["table"] for t in unreachable))
                + "</p>"
            )
    parts += _api_section(report["api_probes"], keys)
    audit = report["audit_chain"]
    signature = report.get("signature", {})
    parts += [
        "<h2>Chaîne d'audit</h2>",
        f"<p>{escape(AUDIT.get(audit['status'], audit['status']))} : {escape(str(audit.get('detail', '')))}</p>",
        "<h2>Signature</h2>",
        f"<p>{escape(str(signature.get('algorithm')))}, identifiant de clé "
        f"<code>{escape(str(signature.get('key_id')))}</code>, valeur "
        f"<code>{escape(str(signature.get('value')))}</code>.</p>",
        "<p>Vérifiez le rapport JSON avec la seule clé publique de la plateforme (<code>GET /v1/isolation/public-key"
        "</code>) : <code>socle-isolation-report verify rapport.json --public-key cle-publique.pem</code>. "
        "Cette clé ne permet pas de signer : qui vérifie ne peut pas contrefaire.</p>",
        "</body></html>",
    ]
    return "".join(parts)


def _api_section(api: dict[str, Any], keys: dict[str, str]) -> list[str]:
    parts = ["<h2>Sondes d'API</h2>"]
    if api["status"] != "ran":
        parts.append(f"<p>Non faites : {escape(api['reason'])}</p>")
    parts.append("<h3>Couverture des routes propres à une collectivité</h3>")
    parts.append(
        _table(
            ["route", "portée", "statut", "sondes", "raison"],
            [
                [
                    escape(row["route"]),
                    escape(row["scope"]),
                    f"<span class='{'incomplete' if row['status'] == 'gap' else 'pass'}'>"
                    f"{escape(COVERAGE.get(row['status'], row['status']))}</span>",
                    _cell(row.get("probes")),
                    escape(row.get("reason", "")),
                ]
                for row in api.get("coverage", [])
            ],
        )
    )
    if api["status"] == "ran":
        parts.append(
            _table(
                ["route", "sondeur", "ressource de", "requête", "statut", "valeurs comparées", "résultat"],
                [
                    [
                        escape(f"{p['service']} {p['method']} {p['path']}"),
                        escape(keys.get(p["actor"], p["actor"])),
                        escape(keys.get(p["target"], p["target"])),
                        f"<code>{escape(p['request'])}</code>" if p.get("request") else _cell(None),
                        _cell(p.get("status")),
                        _cell(p.get("identifying_values_compared")),
                        _outcome(p["outcome"]) + (f" ({escape(p['reason'])})" if p.get("reason") else ""),
                    ]
                    for p in api["probes"]
                ],
            )
        )
    return parts

"""The auditor's report as one self-contained HTML page (inline CSS, no scripts, no links out).

The template is registry/report/templates/report.html (package data).

Autoescaped Jinja2: every value from the registry (names, reasons, actors) is text, never markup.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment

from registry.report.gather import ReportData

#: Which evidence supports which obligation or function. A mapping, not legal advice.
MAPPING: tuple[tuple[str, str, str], ...] = (
    (
        "File digests and the manifest digest; the model signature",
        "EU AI Act Annex XI and XII (technical documentation: model authenticity, e.g. a "
        "secure hash); Art. 15(5) (resilience against model tampering)",
        "NIST AI RMF MAP 4 (third-party components), MANAGE 3 (third-party risks)",
    ),
    (
        "Mirror provenance: source and pinned commit",
        "EU AI Act Art. 11 and Annex IV (technical documentation); Annex XI",
        "NIST AI RMF MAP 4.1, GOVERN 6 (third-party software and data)",
    ),
    (
        "Scans: serialization, structure and backdoor scanners, their versions and verdicts",
        "EU AI Act Art. 15(5) (measures against data and model poisoning)",
        "NIST AI RMF MEASURE 2.7 (security and resilience), MANAGE 2",
    ),
    (
        "Admission policy and recorded decisions; exceptions with approvers and expiry",
        "EU AI Act Art. 9 (risk management), Art. 17 (quality management system)",
        "NIST AI RMF GOVERN 1 (policies), MANAGE 1 (risk treatment)",
    ),
    (
        "Quarantines and releases; the audit log",
        "EU AI Act Art. 12 (record-keeping), Art. 20 (corrective actions)",
        "NIST AI RMF MANAGE 4 (incident response and monitoring)",
    ),
)

#: The page, shipped as package data.
TEMPLATE = "templates/report.html"


def render_html(data: ReportData) -> str:
    text = resources.files("registry.report").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(text)
    context: dict[str, Any] = {"d": data, "mapping": MAPPING}
    return template.render(**context)

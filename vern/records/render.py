"""Documents as HTML (Jinja, in the reader's language), as PDF (WeasyPrint), as the answer to a
download, as plain text lines for a diff, and the record as CSV."""

from __future__ import annotations

import difflib
import html
import io
import re
from typing import Any

from fastapi.responses import HTMLResponse, Response

from vern.console.templating import environment
from vern.core.csvsafe import SafeWriter
from vern.core.i18n import format_day, gettext
from vern.core.responses import csp_for_own_styles

TAG = re.compile(r"<[^>]+>")
BLOCK = re.compile(r"</?(p|h[1-6]|li|tr|div|section|table|ul|ol|dt|dd|br)[^>]*>", re.I)


def render_html(template: str, context: dict[str, Any], locale: str) -> str:
    env = environment(locale)
    return env.get_template(template).render({**context, "locale": locale,
                                              "t": lambda m, **p: gettext(locale, m, **p),
                                              "day": lambda v: format_day(v, locale)})


def document_response(html: str, fmt: str, name: str) -> Response:
    """A document as the answer to a download: a PDF attachment, or the HTML under a CSP that
    allows its own styles only; neither is kept by a cache."""
    if fmt == "pdf":
        return Response(pdf(html), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{name}.pdf"', "Cache-Control": "no-store"})
    return HTMLResponse(html, headers={"Cache-Control": "no-store",
                                       "Content-Security-Policy": csp_for_own_styles(html)})


def pdf(document_html: str) -> bytes:
    """The PDF of a rendered document (WeasyPrint lays it out; nothing is drawn by hand)."""
    from weasyprint import HTML

    return HTML(string=document_html).write_pdf()


def text_lines(document_html: str) -> list[str]:
    body = document_html.split("<body", 1)[-1]
    text = html.unescape(TAG.sub("", BLOCK.sub("\n", body)))
    return [line.strip() for line in text.splitlines() if line.strip()]


def diff(old_html: str, new_html: str, old_name: str, new_name: str) -> list[str]:
    return list(difflib.unified_diff(text_lines(old_html), text_lines(new_html),
                                     fromfile=old_name, tofile=new_name, lineterm="", n=2))


def record_csv(records: list[dict[str, Any]]) -> str:
    """One row per fact: record, controller, section, item, field, value."""
    out = io.StringIO()
    w = SafeWriter(out)
    w.writerow(["record", "controller", "section", "item", "field", "value"])
    for rec in records:
        who = rec.get("controller", rec.get("processor", {})).get("name", "")
        kind = rec["record"]
        for role, officer in rec.get("officers", {}).items():
            for k, v in (officer.items() if isinstance(officer, dict) else [("value", officer)]):
                w.writerow([kind, who, "officers", role, k, v])
        for a in rec.get("activities", []):
            for field in ("purposes", "subjects", "data_categories", "recipients",
                          "subprocessors", "transfers", "retention"):
                for value in a[field]:
                    shown = (f"{value['key']} ({value['legal_basis']})" if field == "purposes"
                             else f"{value['recipient']}: {', '.join(value['countries'])}: "
                                  f"{value['safeguard']}" if field == "transfers" else value)
                    w.writerow([kind, who, "activity", a["key"], field, shown])
        for c in rec.get("controllers", []):
            _controller_rows(w, kind, who, c)
        for c in rec.get("categories", []):
            w.writerow([kind, who, "categories", f"{c['system']}.{c['table']}", "purpose", c["purpose"]])
            w.writerow([kind, who, "categories", f"{c['system']}.{c['table']}", "data_categories",
                        ", ".join(c["data_categories"])])
            w.writerow([kind, who, "categories", f"{c['system']}.{c['table']}", "retention", c["retention"]])
        for s in rec.get("subprocessors", []):
            if isinstance(s, dict):
                w.writerow([kind, who, "subprocessors", s["name"], "locations", ", ".join(s["locations"])])
                w.writerow([kind, who, "subprocessors", s["name"], "transfer_mechanism",
                            s["transfer_mechanism"]])
        for m in rec.get("measures", []):
            w.writerow([kind, who, "measures", m["key"], "title", m["title_en"]])
            w.writerow([kind, who, "measures", m["key"], "status", m["status"]])
    return out.getvalue()


def _controller_rows(w: SafeWriter, kind: str, who: str, c: dict[str, Any]) -> None:
    """One controller of the processor record: name, number, contract dates (when set), contacts."""
    w.writerow([kind, who, "controllers", c["org_id"], "name", c["name"]])
    w.writerow([kind, who, "controllers", c["org_id"], "org_number", c["org_number"]])
    for field in ("contract_start", "contract_end"):
        if c.get(field):
            w.writerow([kind, who, "controllers", c["org_id"], field, c[field]])
    for k, people in c["contacts"].items():
        w.writerow([kind, who, "controllers", c["org_id"], f"contact.{k}", ", ".join(people)])

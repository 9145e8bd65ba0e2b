"""The answer to an access or portability request (Art. 15, 20): a zip with the data as JSON
(machine-readable), one CSV per table, and a readable summary in bokmål or English that also says
why the data is kept (purposes), who receives it (recipients) and for how long (retention)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from vern.core.csvsafe import SafeWriter
from vern.core.i18n import N_, format_day, gettext, norm
from vern.datamap.categories import CATEGORIES
from vern.datamap.model import DataMap, System
from vern.datamap.model import Table as MapTable
from vern.rights.connectors import plain

HIDDEN_CATEGORIES = ("user.credential", "system.crypto")

# The summary's words, translated through the catalogs (vern.core.i18n).
TEXT = {
    "title": N_("Your personal data"),
    "intro": N_("This is a copy of the personal data %(org)s holds about you in its systems, "
                "as requested on %(received)s. The file data.json has the same data in a "
                "machine-readable form, and the folder csv has one table per file."),
    "system": N_("System"),
    "recipients": N_("Recipients"),
    "no_recipients": N_("No recipients outside the vendor"),
    "all_recipients": N_("Everyone your data is disclosed to"),
    "table": N_("Table"),
    "purpose": N_("Purpose"),
    "retention": N_("Kept"),
    "categories": N_("Kinds of data"),
    "rows": N_("Rows"),
    "none": N_("We found no personal data about you."),
    "hidden": N_("(kept, not shown for security)"),
    "rights": N_("You may ask for correction, erasure or restriction of this data, object to its "
                 "use, and complain to Datatilsynet (the Norwegian Data Protection Authority)."),
    "source": N_("Source: registered by you or by %(org)s when you used the service."),
}

# The summary's words for a customer's export at the end of its contract (the same package, about
# an organisation rather than a person).
EXPORT_TEXT = {
    "title": N_("Your organisation's data"),
    "intro": N_("This is a copy of every record of %(org)s in the service, made on %(received)s "
                "at the end of its contract. The file data.json has the same data in a "
                "machine-readable form, and the folder csv has one table per file."),
    "none": N_("We found no data of your organisation."),
    "rights": N_("The service deletes this data when the notice period ends; keep this copy."),
    "source": N_("Source: registered by %(org)s and its users when they used the service."),
}

_SUMMARY = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
  line-height:1.5;color:#1b1b1b}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #bbb;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef}dt{font-weight:600}section{margin-bottom:2rem}
</style></head><body>
<h1>{{ t.title }}</h1>
<p>{{ t.intro }}</p>
<p>{{ t.source }}</p>
{% if not systems %}<p>{{ t.none }}</p>{% endif %}
{% for system in systems %}
<section><h2>{{ t.system }}: {{ system.title }}</h2>
<p><strong>{{ t.recipients }}:</strong>
{% if system.recipients %}{{ system.recipients|join("; ") }}{% else %}{{ t.no_recipients }}{% endif %}</p>
{% for table in system.tables %}
<h3>{{ t.table }}: {{ table.name }}</h3>
<dl><dt>{{ t.purpose }}</dt><dd>{{ table.purpose }}</dd>
<dt>{{ t.retention }}</dt><dd>{{ table.retention }}</dd>
<dt>{{ t.categories }}</dt><dd>{{ table.categories|join(", ") }}</dd>
<dt>{{ t.rows }}</dt><dd>{{ table.count }}</dd></dl>
<table><thead><tr>{% for c in table.columns %}<th scope="col">{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{{ table.body }}</tbody></table>
{% endfor %}</section>
{% endfor %}
{% if all_recipients %}
<p><strong>{{ t.all_recipients }}:</strong> {{ all_recipients|join("; ") }}</p>{% endif %}
<p>{{ t.rights }}</p>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_summary = _env.from_string(_SUMMARY)


def build_zip(
    data_map: DataMap,
    rows: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    request_id: str,
    kind: str,
    org_name: str,
    received: datetime,
    locale: str,
    external: dict[str, Any] | None = None,
    texts: dict[str, str] | None = None,
) -> bytes:
    """The package; ``texts`` replaces some of the summary's words (``TEXT``'s keys)."""
    lang = norm(locale)
    values = {"org": org_name, "received": format_day(received, lang)}
    t = {key: gettext(lang, text, **(values if key in {"intro", "source"} else {}))
         for key, text in {**TEXT, **(texts or {})}.items()}
    doc: dict[str, Any] = {
        "request": {
            "id": request_id,
            "kind": kind,
            "received_at": received.isoformat(),
            "controller": org_name,
        },
        "systems": {},
        "recipients": data_map.recipient_names(),  # every system's (Art. 15(1)(c))
    }
    systems_view: list[dict[str, Any]] = []
    answers = external or {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for system in data_map.systems.values():
            sys_doc, view_tables = _add_system(zf, system, rows, answers.get(system.name), t["hidden"])
            if sys_doc["databases"] or "answer" in sys_doc:
                doc["systems"][system.name] = sys_doc
                systems_view.append(
                    {"title": system.title, "recipients": list(system.recipients), "tables": view_tables}
                )
        zf.writestr("data.json", json.dumps(doc, ensure_ascii=False, indent=2))
        html = _summary.render(
            lang=lang, t=t, org=org_name, systems=systems_view, all_recipients=doc["recipients"],
        )
        zf.writestr("summary.html", html)
    return buffer.getvalue()


def _add_system(
    zf: zipfile.ZipFile,
    system: System,
    rows: dict[str, dict[str, list[dict[str, Any]]]],
    answer: Any,
    hidden_text: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One system's part of the package: a CSV per table with rows found (and the answer of its
    HTTP connector, if any) written to the zip; returns the system's entry of data.json and its
    tables as the summary shows them."""
    sys_doc: dict[str, Any] = {
        "title": system.title,
        "recipients": list(system.recipients),
        "databases": {},
    }
    view_tables: list[dict[str, Any]] = []
    for db in system.databases.values():
        db_rows = rows.get(db.qualified, {})
        for tname, table in db.tables.items():
            found = db_rows.get(tname)
            if not found:
                continue
            entry, view = _table_part(table, tname, found, hidden_text)
            sys_doc["databases"].setdefault(db.name, {})[tname] = entry
            zf.writestr(f"csv/{system.name}.{db.name}.{tname}.csv", _csv(view["columns"], entry["rows"]))
            view_tables.append(view)
    if answer:  # what the system's HTTP connector answered (a system outside SQL)
        sys_doc["answer"] = answer
        text = json.dumps(answer, ensure_ascii=False, indent=2)
        zf.writestr(f"external/{system.name}.json", text)
        view_tables.append(
            {"name": system.title, "purpose": "", "retention": "", "categories": [],
             "columns": [], "count": 1, "body": Markup("<pre>{}</pre>").format(text)}
        )
    return sys_doc, view_tables


def _table_part(
    table: MapTable, tname: str, found: list[dict[str, Any]], hidden_text: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A table's rows found, as data.json holds them (secrets hidden) and as the summary shows
    them: only the map's columns that some row has."""
    columns = [c for c in table.fields if any(c in r for r in found)]
    hidden = {c for c in columns if table.fields[c].category.startswith(HIDDEN_CATEGORIES)}
    clean = [
        {c: (hidden_text if c in hidden else plain(r.get(c))) for c in columns} for r in found
    ]
    entry = {
        "purpose": table.purpose,
        "retention": table.retention_text,
        "categories": {c: table.fields[c].category for c in columns},
        "rows": clean,
    }
    cats = sorted({table.fields[c].category for c in columns if table.fields[c].personal})
    view = {
        "name": tname,
        "purpose": table.purpose,
        "retention": table.retention_text,
        "categories": [CATEGORIES.get(c, c) for c in cats],
        "columns": columns,
        "count": len(clean),
        "body": _rows_html(columns, clean),
    }
    return entry, view


def _rows_html(columns: list[str], rows: list[dict[str, Any]]) -> Markup:
    """The table body, every value escaped (one pass in Python rather than a template loop per
    cell: the summary of a person with many rows stays quick to build)."""
    return Markup(  # noqa: S704 - every value is escaped here
        "".join(
            "<tr>" + "".join(f"<td>{escape('' if r[c] is None else r[c])}</td>" for c in columns) + "</tr>\n"
            for r in rows
        )
    )


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """One table as CSV, no cell a spreadsheet formula (data.json keeps the exact values)."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c) for c in columns])
    return out.getvalue()

"""The API's reference page at /docs, drawn on the server from the OpenAPI document.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN, so on a farm network
without the internet they are blank; no installed package carries the Swagger UI assets to
serve instead. This page needs nothing but the service: every endpoint with its method,
summary, description, parameters and answers, and a link to /openapi.json for tools.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape

METHODS = ("get", "post", "put", "patch", "delete")
PAGE_HEADERS = {
    # Its own inline style and nothing else: no script, no outside address.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #1d2b24; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d6ddd9; }
section.op { margin: 1rem 0 1.5rem; }
.method { display: inline-block; min-width: 4.5em; font: 600 .85rem ui-monospace, monospace;
          text-transform: uppercase; }
code, .path { font-family: ui-monospace, monospace; }
.muted { color: #5b6b63; }
table { border-collapse: collapse; margin: .3rem 0; }
td, th { text-align: left; padding: .15rem .8rem .15rem 0; vertical-align: top; }
"""


def docs_page(openapi: dict[str, Any]) -> str:
    """Return the reference page of an OpenAPI document as one HTML string."""
    info = openapi.get("info", {})
    by_tag: dict[str, list[str]] = {}
    for path, operations in openapi.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is not None:
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append(_operation(method, path, operation))
    sections = "".join(
        f'<h2 id="{escape(tag)}">{escape(tag)}</h2>{"".join(ops)}' for tag, ops in by_tag.items()
    )
    contents = " · ".join(f'<a href="#{escape(t)}">{escape(t)}</a>' for t in by_tag)
    description = "".join(
        f"<p>{escape(part)}</p>" for part in str(info.get("description", "")).split("\n\n")
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(info.get('title', 'API'))} API</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(info.get('title', 'API'))} API "
        f'<small class="muted">{escape(info.get("version", ""))}</small></h1>'
        f"{description}"
        '<p>The machine-readable description: <a href="/openapi.json">/openapi.json</a> '
        "(OpenAPI 3; load it into any OpenAPI tool).</p>"
        f"<p>{contents}</p>{sections}</body></html>"
    )


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    params = [
        (p.get("name", ""), p.get("in", ""), p.get("required", False), p.get("description", ""))
        for p in operation.get("parameters", [])
    ]
    rows = "".join(
        f"<tr><td><code>{escape(n)}</code></td><td>{escape(where)}</td>"
        f"<td>{'required' if required else ''}</td><td>{escape(text)}</td></tr>"
        for n, where, required, text in params
    )
    answers = ", ".join(
        f"{escape(status)} {escape(r.get('description', ''))}"
        for status, r in operation.get("responses", {}).items()
    )
    body = "request body: JSON" if "requestBody" in operation else ""
    return (
        f'<section class="op"><div><span class="method">{escape(method)}</span>'
        f'<span class="path">{escape(path)}</span> — {escape(operation.get("summary", ""))}'
        f'</div><p class="muted">{escape(operation.get("description", ""))}</p>'
        f"{f'<table>{rows}</table>' if rows else ''}"
        f"{f'<p>{body}</p>' if body else ''}"
        f'<p class="muted">answers: {answers}</p></section>'
    )

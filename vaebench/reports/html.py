"""The one-file HTML report: tables, plots, image grids and run metadata, with nothing external.

Images are embedded as base64 data URIs; styles and the one script are inline. A Content
Security Policy allows only those (`default-src 'none'`, images from data: URIs, the script by
its hash), so the page loads nothing from the network, and even text that escaped escaping
could not run a script. Every string that came from the store (suite names, settings, dataset
parameters, error messages, paths) goes through `html.escape`.

The script counts, on load, the images that decoded (`naturalWidth > 0`) and the resources
that failed or were blocked, and writes them on <body> as `data-images-ok="k/n"` and
`data-load-errors="m"`, which the headless-browser test reads back from the DOM.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

e = html.escape

LOAD_CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener("error", function (ev) {
    var t = ev.target;
    if (t && t !== window && t.tagName) { errors.push(t.tagName.toLowerCase() + ":" + (t.getAttribute("alt") || "")); }
  }, true);
  document.addEventListener("securitypolicyviolation", function (ev) { errors.push("csp:" + ev.violatedDirective); });
  window.addEventListener("load", function () {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }
    document.body.dataset.imagesOk = ok + "/" + imgs.length;
    document.body.dataset.loadErrors = String(errors.length);
    if (errors.length) { document.body.dataset.loadErrorList = errors.join(" "); }
  });
})();
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .88em; }
caption { caption-side: bottom; text-align: left; font-size: .9em; color: #555; padding-top: .4em; max-width: 60em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #444; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #eef6ee; } .dir { color: #666; } .note { color: #8a4b00; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; max-width: calc(50% - 1em); }
figure img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: .85em; color: #555; }
img.grid { image-rendering: pixelated; min-width: 200px; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; white-space: pre-wrap; }
.scroll { overflow-x: auto; } nav a { margin-right: 1em; }
"""


def script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src '{script_hash(LOAD_CHECK_SCRIPT)}'; base-uri 'none'; form-action 'none'"
)


def data_uri(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(png).decode('ascii')}"


def img(png: bytes, alt: str, *, css_class: str = "") -> str:
    cls = f' class="{e(css_class)}"' if css_class else ""
    return f'<img{cls} src="{data_uri(png)}" alt="{e(alt)}">'


def figure(png: bytes, caption: str, *, css_class: str = "") -> str:
    return f"<figure>{img(png, caption, css_class=css_class)}<figcaption>{e(caption)}</figcaption></figure>"


@dataclass
class Section:
    id: str
    title: str
    body: str  # already-escaped HTML


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def render(self) -> str:
        nav = " ".join(f'<a href="#{e(s.id)}">{e(s.title)}</a>' for s in self.sections)
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(self.title)}</title>",
            f"<style>{STYLE}</style>",
            f"<script>{LOAD_CHECK_SCRIPT}</script>",
            "</head>",
            "<body>",
            f"<h1>{e(self.title)}</h1>",
            f"<p>{e(self.subtitle)}</p>" if self.subtitle else "",
            f"<nav>{nav}</nav>",
        ]
        for s in self.sections:
            parts.append(f'<section id="{e(s.id)}"><h2>{e(s.title)}</h2>\n{s.body}\n</section>')
        parts += ["</body>", "</html>"]
        return "\n".join(p for p in parts if p) + "\n"


def key_value_table(rows: Iterable[tuple[str, Any]], *, css_class: str = "meta") -> str:
    body = "".join(f"<tr><th>{e(str(k))}</th><td>{e(_text(v))}</td></tr>" for k, v in rows)
    return f'<table class="{e(css_class)}"><tbody>{body}</tbody></table>'


def frame_table(frame: pd.DataFrame, *, css_class: str = "", numeric: Sequence[str] = ()) -> str:
    """A DataFrame as an escaped HTML table (object cells as compact JSON)."""
    cls = f' class="{e(css_class)}"' if css_class else ""
    head = "".join(f"<th>{e(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for col, v in zip(frame.columns, record):
            attr = ' class="num"' if col in numeric else ""
            cells.append(f"<td{attr}>{e(_text(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def pre(text: str) -> str:
    return f"<pre>{e(text)}</pre>"

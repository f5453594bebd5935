"""The live view's documents, as pure functions of one :meth:`LiveView.snapshot`: the HTML page, the
JSON figures and the Prometheus text exposition. One snapshot feeds all three, so they always agree."""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import quote

from edgemask.app.liveview import LABELS, LATENCY_WINDOW, QUANTILES, STAGES

PAGE_REFRESH_MS = 1000
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PAGE_STYLE = """
body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#222;background:#fff}
main{display:flex;flex-wrap:wrap;align-items:flex-start}
img{display:block;max-width:100%;background:#888}
.figures{padding:0 12px}
table{border-collapse:collapse;margin:6px 0}
th,td{padding:1px 12px 1px 0;text-align:right;font-variant-numeric:tabular-nums}
th:first-child{text-align:left}
"""

PAGE_SCRIPT = """
const statsUrl = document.body.dataset.stats;
function pick(figures, path) {
  return path.split(".").reduce((v, key) => (v === null || v === undefined ? null : v[key]), figures);
}
async function refresh() {
  try {
    const figures = await (await fetch(statsUrl, {cache: "no-store"})).json();
    for (const cell of document.querySelectorAll("[data-stat]")) {
      const value = pick(figures, cell.dataset.stat);
      const digits = cell.dataset.digits;
      cell.textContent = value === null || value === undefined ? "–"
        : digits === undefined ? String(value) : Number(value).toFixed(Number(digits));
    }
  } catch (e) { /* the server may be gone; the last figures stay */ }
}
setInterval(refresh, REFRESH_MS);
"""


def with_token(path: str, token: str | None) -> str:
    return f"{path}?token={quote(token, safe='')}" if token else path


def pick(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def cell(figures: dict[str, Any], path: str, digits: int | None = None) -> str:
    """A table cell showing ``figures[path]`` that the page script can update in place."""
    value = pick(figures, path)
    shown = "–" if value is None else str(value) if digits is None else f"{value:.{digits}f}"
    digits_attr = "" if digits is None else f' data-digits="{digits}"'
    return f'<td data-stat="{path}"{digits_attr}>{html.escape(shown)}</td>'


def row(title: str, cells: list[str]) -> str:
    return f"<tr><th>{html.escape(title)}</th>{''.join(cells)}</tr>"


def render_page(figures: dict[str, Any], token: str | None = None) -> str:
    """The page: the annotated stream in an ``<img>`` (no script needed), the figures as at load, and a
    small script that refreshes them from ``/stats.json``."""
    faces = [("last frame", "last_frame.faces"), ("since start", "faces")]
    face_rows = [
        row(title, [cell(figures, f"{base}.{k}") for k in ("total", *LABELS)]) for title, base in faces
    ]
    ms_rows = [
        row("last frame", [cell(figures, f"ms.{s}.last", 1) for s in STAGES]),
        row("mean", [cell(figures, f"ms.{s}.mean", 1) for s in STAGES]),
        row(f"median (last {LATENCY_WINDOW})", [cell(figures, f"ms.{s}.p50", 1) for s in STAGES]),
        row(f"90 % (last {LATENCY_WINDOW})", [cell(figures, f"ms.{s}.p90", 1) for s in STAGES]),
    ]
    models = figures.get("models") or {}
    source = figures.get("source") or {}
    e = html.escape
    model_text = (
        f"detector {e(models.get('detector', '?'))} ({e(models.get('family', '?'))}), "
        f"classifier {e(models.get('classifier', '?'))}, runtime {e(models.get('runtime', '?'))}"
    )
    unit = "images" if source.get("kind") == "images" else "frames"
    total = f", {source['total']} {unit}" if source.get("total") else ""
    source_text = f"{e(str(source.get('name', '?')))} ({e(str(source.get('kind', '?')))}{total})"
    stats_url, metrics_url = with_token("/stats.json", token), with_token("/metrics", token)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>edgemask live view</title><style>{PAGE_STYLE}</style></head>
<body data-stats="{e(stats_url)}">
<main><img src="{e(with_token("/stream.mjpg", token))}" alt="annotated live picture">
<div class="figures">
<p><b data-stat="status">{e(figures["status"])}</b> · source {source_text}</p>
<table>
<tr><th>faces</th><th>all</th><th>masked</th><th>unmasked</th></tr>
{"".join(face_rows + people_rows(figures))}
</table>
<table>
<tr><th>frames processed</th>{cell(figures, "frames")}</tr>
<tr><th>skipped</th>{cell(figures, "skipped")}</tr>
<tr><th>frames per second</th>{cell(figures, "fps", 1)}</tr>
</table>
<table>
<tr><th>ms per frame</th>{"".join(f"<th>{s}</th>" for s in STAGES)}</tr>
{"".join(ms_rows)}
</table>
<p>models: {model_text}</p>
<p><a href="{e(stats_url)}">stats.json</a> · <a href="{e(metrics_url)}">metrics</a></p>
</div></main>
<script>{PAGE_SCRIPT.replace("REFRESH_MS", str(PAGE_REFRESH_MS))}</script>
</body></html>
"""


def people_rows(figures: dict[str, Any]) -> list[str]:
    """People counted by a tracked run, and count-line crossings (none without tracking)."""
    bases = [("people", "people")] if "people" in figures else []
    bases += [(f"crossed {d}", f"crossings.{d}") for d in figures.get("crossings", {})]
    return [row(title, [cell(figures, f"{base}.{k}") for k in ("total", *LABELS)]) for title, base in bases]


def tracking_metrics(figures: dict[str, Any]) -> list[str]:
    """``edgemask_people_total`` and ``edgemask_line_crossings_total`` of a tracked run."""
    if "people" not in figures:
        return []
    lines = family(
        "edgemask_people_total",
        "counter",
        "People seen since start (confirmed face tracks), by the label their track votes for.",
        [("edgemask_people_total", {"label": k}, figures["people"][k]) for k in LABELS],
    )
    crossings = figures.get("crossings", {})
    if crossings:
        lines += family(
            "edgemask_line_crossings_total",
            "counter",
            "People who crossed the count line since start, by direction and label.",
            [
                ("edgemask_line_crossings_total", {"direction": d, "label": k}, counts[k])
                for d, counts in crossings.items()
                for k in LABELS
            ],
        )
    return lines


def render_json(figures: dict[str, Any]) -> str:
    return json.dumps(figures, indent=1)


def escape_label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


SIGNIFICANT_DIGITS = 9
"""Enough for a counter of a billion and for microseconds of a latency, few enough to drop float noise
(``0.1 + 0.2`` is shown as ``0.3``, not ``0.30000000000000004``)."""


def number(value: float | None) -> str:
    """A sample value; a missing figure is NaN, as Prometheus expects for a summary with no observations."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(value, f".{SIGNIFICANT_DIGITS}g") if isinstance(value, float) else str(value)


def family(name: str, kind: str, help_text: str, samples: list[tuple[str, dict[str, str], Any]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for sample, labels, value in samples:
        label_text = ",".join(f'{k}="{escape_label(str(v))}"' for k, v in labels.items())
        lines.append(f"{sample}{{{label_text}}} {number(value)}" if labels else f"{sample} {number(value)}")
    return lines


def seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def render_metrics(figures: dict[str, Any]) -> str:
    """The Prometheus text exposition (format 0.0.4) of the figures: counters since start, stage latency
    summaries in seconds, and gauges for rate, state and viewers."""
    stage = "edgemask_stage_seconds"
    stage_samples = []
    for s in STAGES:
        ms = figures["ms"][s]
        for q in QUANTILES:
            stage_samples.append(
                (stage, {"stage": s, "quantile": f"{q:g}"}, seconds(ms[f"p{round(q * 100)}"]))
            )
        stage_samples.append((f"{stage}_sum", {"stage": s}, ms["sum"] / 1000.0))
        stage_samples.append((f"{stage}_count", {"stage": s}, ms["count"]))
    models = figures.get("models") or {}
    lines = [
        *family(
            "edgemask_frames_total",
            "counter",
            "Frames or images processed since start.",
            [("edgemask_frames_total", {}, figures["frames"])],
        ),
        *family(
            "edgemask_faces_total",
            "counter",
            "Faces found since start, by label.",
            [("edgemask_faces_total", {"label": k}, figures["faces"][k]) for k in LABELS],
        ),
        *tracking_metrics(figures),
        *family(
            "edgemask_skipped_total",
            "counter",
            "Inputs skipped: unreadable, or the pipeline failed on them.",
            [("edgemask_skipped_total", {}, figures["skipped"])],
        ),
        *family(
            stage,
            "summary",
            f"Seconds per frame in each stage; quantiles over the last {LATENCY_WINDOW} frames.",
            stage_samples,
        ),
        *family(
            "edgemask_fps", "gauge", "Processing rate, smoothed.", [("edgemask_fps", {}, figures["fps"])]
        ),
        *family(
            "edgemask_source_ended",
            "gauge",
            "1 once the source has ended (the figures are final).",
            [("edgemask_source_ended", {}, int(figures["ended"]))],
        ),
        *family(
            "edgemask_stream_clients",
            "gauge",
            "Viewers of the live picture right now.",
            [("edgemask_stream_clients", {}, figures.get("stream_clients", 0))],
        ),
        *family(
            "edgemask_info",
            "gauge",
            "The models in use (always 1).",
            [
                (
                    "edgemask_info",
                    {k: models.get(k, "unknown") for k in ("detector", "family", "classifier", "runtime")},
                    1,
                )
            ],
        ),
    ]
    return "\n".join(lines) + "\n"

"""Pictures drawn on the server as SVG: a job's task graph, its timeline, a server's
capacity strip.

Drawn here rather than by a JavaScript library so the console ships no third-party code,
works with no network and shows the same picture with scripts off; the page's script
only swaps in a fresh drawing when something changed. Layout is layered: a task's column
is the length of the longest chain of conditions above it, its row its order of
submission within the column, so every edge points rightwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

#: Most tasks drawn as a graph; a larger job's page lists its tasks' counts instead.
MAX_DRAWN_TASKS = 300
#: Most attempts drawn on a timeline (the latest ones).
MAX_DRAWN_ATTEMPTS = 1000
NODE_W, NODE_H = 150, 44
COL_GAP, ROW_GAP = 70, 24
MARGIN = 12


def _attr(value: object) -> str:
    """An attribute value in double quotes, escaped (what the browser tests select on)."""
    return '"' + escape(str(value), {'"': "&quot;"}) + '"'


def _layers(names: Sequence[str], edges: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """Each task's column: the length of the longest chain of conditions above it.

    Kahn's order, not recursion, so a chain of thousands of tasks draws like a short one;
    a task left over by a cycle (a definition refuses cycles) goes in column 0."""
    parents: dict[str, list[str]] = {n: [] for n in names}
    children: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        if e["to"] in parents and e["from"] in parents:
            parents[e["to"]].append(e["from"])
            children[e["from"]].append(e["to"])
    waiting = {n: len(parents[n]) for n in names}
    depth = {n: 0 for n in names}
    ready = [n for n in names if waiting[n] == 0]
    while ready:
        name = ready.pop()
        for child in children[name]:
            depth[child] = max(depth[child], depth[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return depth


def task_graph(tasks: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, str]],
               condition_types: Mapping[str, str]) -> str:
    """One ``<g data-task data-status>`` per task, one ``<g data-from data-to
    data-expect>`` per condition, labelled with the expected status."""
    if len(tasks) > MAX_DRAWN_TASKS:
        return (f'<p class="empty">{len(tasks)} tasks: the graph is drawn for jobs of up to '
                f'{MAX_DRAWN_TASKS} tasks (GET /api/jobs/ID gives every task and edge).</p>')
    names = [t["name"] for t in tasks]
    layer = _layers(names, edges)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for name in names:
        col = layer[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        place[name] = (MARGIN + col * (NODE_W + COL_GAP), MARGIN + row * (NODE_H + ROW_GAP))
    width = MARGIN * 2 + (max(layer.values(), default=0) + 1) * (NODE_W + COL_GAP) - COL_GAP
    height = MARGIN * 2 + max(rows.values(), default=1) * (NODE_H + ROW_GAP) - ROW_GAP
    parts = [(f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
              f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
              'aria-label="task graph">'),
             ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
              'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
              '</marker></defs>')]
    for e in edges:
        if e["from"] not in place or e["to"] not in place:
            continue
        (x1, y1), (x2, y2) = place[e["from"]], place[e["to"]]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        mid = (sx + tx) / 2
        parts.append(
            f'<g class="edge expect-{escape(e["expect"])}" data-from={_attr(e["from"])} '
            f'data-to={_attr(e["to"])} data-expect={_attr(e["expect"])}>'
            f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ty}, {tx} {ty}" '
            'marker-end="url(#arrow)"/>'
            f'<text x="{mid}" y="{(sy + ty) / 2 - 4}" text-anchor="middle">'
            f'{escape(e["expect"])}</text></g>')
    for t in tasks:
        x, y = place[t["name"]]
        kind = condition_types.get(t["name"], "all")
        n_parents = sum(1 for e in edges if e["to"] == t["name"])
        detail = t["status"] + (f" · {kind}" if n_parents > 1 else "")
        reason = f"<title>{escape(t['reason'])}</title>" if t.get("reason") else ""
        parts.append(
            f'<g class="node st-{escape(t["status"])}" data-task={_attr(t["name"])} '
            f'data-status={_attr(t["status"])} tabindex="0">{reason}'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + NODE_W / 2}" y="{y + 18}" text-anchor="middle" class="name">'
            f'{escape(t["name"])}</text>'
            f'<text x="{x + NODE_W / 2}" y="{y + 34}" text-anchor="middle" class="detail">'
            f'{escape(detail)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def timeline(attempts: Sequence[Mapping[str, Any]], *, now: datetime) -> str:
    """One lane per batch server (``data-lane``), one bar per attempt
    (``data-attempt="TASK#N"``), from the first start to the last end (or now)."""
    attempts = list(attempts)[-MAX_DRAWN_ATTEMPTS:]
    lanes = sorted({a["server"] for a in attempts})
    if not lanes:
        return '<p class="empty">No attempt yet.</p>'
    starts = [_when(a["started_at"]) for a in attempts]
    ends = [_when(a["ended_at"]) or now for a in attempts]
    first = min(s for s in starts if s is not None)
    last = max(max(e for e in ends if e is not None), first + timedelta(seconds=1))
    span = (last - first).total_seconds()
    label_w, width, lane_h = 110, 640, 26
    height = lane_h * len(lanes) + 22
    parts = [(f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" '
              f'width="{label_w + width + 10}" height="{height}" role="img" '
              'aria-label="timeline">')]
    for i, lane in enumerate(lanes):
        y = i * lane_h
        parts.append(f'<g class="lane" data-lane={_attr(lane)}>'
                     f'<text x="0" y="{y + 17}">{escape(lane)}</text>'
                     f'<line x1="{label_w}" y1="{y + lane_h}" x2="{label_w + width}" '
                     f'y2="{y + lane_h}"/>')
        for a, start, end in zip(attempts, starts, ends, strict=True):
            if a["server"] != lane or start is None or end is None:
                continue
            x = label_w + width * (start - first).total_seconds() / span
            w = max(2.0, width * (end - start).total_seconds() / span)
            key = f"{a['task']}#{a['number']}"
            parts.append(f'<rect class="bar out-{escape(a["outcome"])}" data-attempt='
                         f'{_attr(key)} data-task={_attr(a["task"])} x="{x:.1f}" '
                         f'y="{y + 4}" width="{w:.1f}" height="{lane_h - 8}" rx="3">'
                         f'<title>{escape(key)} {escape(a["outcome"])}</title></rect>')
            if w > 50:
                parts.append(f'<text class="bar-label" x="{x + 4:.1f}" y="{y + 17}">'
                             f'{escape(key)}</text>')
        parts.append("</g>")
    axis_y = lane_h * len(lanes) + 16
    parts.append(f'<text x="{label_w}" y="{axis_y}" class="axis">{first:%H:%M:%S} UTC</text>'
                 f'<text x="{label_w + width}" y="{axis_y}" class="axis" text-anchor="end">'
                 f'{last.astimezone(UTC):%H:%M:%S} UTC</text></svg>')
    return "".join(parts)


def capacity_strip(name: str, changes: Sequence[Mapping[str, Any]], *, hours: int,
                   timezone: str, kind: str = "server") -> str:
    """The threads over the next ``hours`` as coloured segments (``data-threads``), with
    the local hour every 3 hours, in the zone of the changes' ``local`` times."""
    width, height = 720, 34
    first = datetime.fromisoformat(changes[0]["at"])
    end = first + timedelta(hours=hours)
    most = max((c["threads"] for c in changes), default=0) or 1
    total = hours * 3600
    parts = [(f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" width="{width}" '
              f'height="{height + 14}" data-strip-{kind}={_attr(name)} role="img" '
              f'aria-label="capacity of {escape(name)}">')]
    for i, change in enumerate(changes):
        at = datetime.fromisoformat(change["at"])
        until = datetime.fromisoformat(changes[i + 1]["at"]) if i + 1 < len(changes) else end
        x = width * (at - first).total_seconds() / total
        w = width * (until - at).total_seconds() / total
        shade = 0.15 + 0.85 * change["threads"] / most if change["threads"] else 0
        parts.append(f'<rect data-threads="{change["threads"]}" data-at={_attr(change["at"])} '
                     f'x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
                     f'fill-opacity="{shade:.2f}" class="{"closed" if not shade else "open"}">'
                     f'<title>{escape(change["local"])}: {change["threads"]} threads</title>'
                     '</rect>')
        if w > 18:
            parts.append(f'<text x="{x + 3:.1f}" y="{height / 2 + 4}">{change["threads"]}</text>')
    zone = ZoneInfo(timezone)
    # a tick every 3 hours of real time, on the first whole local hour after the start
    local = first.astimezone(zone)
    tick = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            ).astimezone(UTC) if (local.minute, local.second) != (0, 0) else first
    while tick <= end:
        x = width * (tick - first).total_seconds() / total
        parts.append(f'<text class="axis" x="{min(x, width - 30):.1f}" y="{height + 12}">'
                     f'{tick.astimezone(zone):%H:%M}</text>')
        tick += timedelta(hours=3)
    parts.append("</svg>")
    return "".join(parts)

"""``archlab diagram``: a ``Diagram`` as Mermaid, Graphviz DOT, or SVG (DOT laid out by Graphviz's
``dot``, when it is on the PATH)."""

from __future__ import annotations

import html
import shutil
import subprocess
from typing import Any

from archlab.analysis.diagram import Box, Diagram
from archlab.errors import UserError
from archlab.units import human, shape_str

FORMATS = ("mermaid", "dot", "svg", "html")


def box_lines(box: Box) -> list[str]:
    """A box's text: name, type, output shape, params and MACs (each computed)."""
    error = [f"FAILED: {box.error}"] if box.error else []
    if box.type == "input":
        return [box.label or box.name, shape_str(box.output_shape) + (f" {box.dtype}" if "int" in box.dtype else "")]
    if box.type == "output":
        return [box.name, shape_str(box.output_shape)]
    if box.type == "op":
        lines = [box.label or box.name, shape_str(box.output_shape)]
        if box.macs:
            lines.append(f"{human(box.macs, 'MACs')}")
        return lines + error
    name = box.label or box.name or box.type
    kind = f"{box.type} × {box.repeat}" if box.repeat > 1 else box.type
    return [f"{name}: {kind}", shape_str(box.output_shape),
            f"params {human(box.params)} · {human(box.macs, 'MACs')}"] + error


def _title(d: Diagram) -> str:
    where = f" {d.block}" if d.block else ""
    return f"{d.model}{where}, depth {d.depth}"


def to_mermaid(d: Diagram) -> str:
    lines = ["flowchart TB",
             f"    %% {_title(d)}: boxes are modules (name: type, output shape, params, MACs), edges the data flow"]
    for box in d.boxes:
        text = "<br/>".join(html.escape(line, quote=True).replace("&#x27;", "'") for line in box_lines(box))
        if box.type == "op":
            lines.append(f'    {box.id}(("{text}"))')
        elif box.type in ("input", "output"):
            lines.append(f'    {box.id}[/"{text}"/]')
        else:
            lines.append(f'    {box.id}["{text}"]')
    for a, b in d.edges:
        lines.append(f"    {a} --> {b}")
    lines += [f"    style {box.id} stroke:#c00,stroke-width:3px" for box in d.boxes if box.error]
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(d: Diagram) -> str:
    lines = [f'digraph "{_dot_escape(d.model)}" {{', f'    label="{_dot_escape(_title(d))}";',
             '    rankdir=TB; node [shape=box, fontname="Helvetica", fontsize=10];']
    for box in d.boxes:
        label = "\\n".join(_dot_escape(line) for line in box_lines(box))
        shape = {"op": "circle", "input": "parallelogram", "output": "parallelogram"}.get(box.type, "box")
        mark = ', color="#cc0000", penwidth=3' if box.error else ""
        lines.append(f'    {box.id} [label="{label}", shape={shape}{mark}];')
    for a, b in d.edges:
        lines.append(f"    {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


DOT_MISSING = ("--format svg needs Graphviz's 'dot' on the PATH: install it (apt-get install graphviz, "
               "brew install graphviz, conda install graphviz); --format mermaid and dot need nothing")


def dot_available() -> bool:
    return shutil.which("dot") is not None


def to_svg(d: Diagram) -> str:
    """The diagram laid out by Graphviz (``dot -Tsvg``); a one-line error when it is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise UserError(DOT_MISSING)
    try:
        done = subprocess.run([dot, "-Tsvg"], input=to_dot(d).encode("utf-8"), capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"Graphviz's dot failed: {e}") from None
    if done.returncode != 0:
        raise UserError(f"Graphviz's dot failed: {done.stderr.decode(errors='replace').strip().splitlines()[:1]}")
    text = done.stdout.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def render(d: Diagram, fmt: str) -> str:
    if fmt == "mermaid":
        return to_mermaid(d)
    if fmt == "dot":
        return to_dot(d)
    if fmt == "svg":
        return to_svg(d)
    raise UserError(f"unknown --format '{fmt}' (choose {', '.join(FORMATS)})")


# --- the interactive diagram (--format html, and the report page's architecture section) ---------------------------

COLORS = ("macs", "params", "traffic", "time", "bound")
COLOR_NAMES = {"macs": "MACs", "params": "params", "traffic": "traffic (bytes read + written)",
               "time": "predicted time", "bound": "compute- or memory-bound"}


def _module_depths(tree: Any) -> list[int]:
    """Per node, the depth of its module (the model 0, its children 1, ...); a run of repeats counts as its blocks."""
    depths = [0] * len(tree.nodes)
    memo: dict[int, int] = {0: 0}

    def depth(i: int) -> int:
        if i not in memo:
            n = tree.nodes[i]
            up = depth(n.parent) if n.parent >= 0 else -1
            memo[i] = up if n.kind == "repeat" else up + 1
        return memo[i]

    for n in tree.nodes:
        depths[n.id] = depth(n.id)
    return depths


def blocks_depth(tree: Any, most: int = 3) -> int:
    """The depth that shows the paper's blocks: the shallowest at which blocks repeat (ResNet's
    Bottlenecks at 2, MobileNetV2's inverted residuals at 3), at most ``most``; else 1."""
    depths = _module_depths(tree)
    found = [depths[n.id] + 1 for n in tree.nodes if n.kind == "repeat" and depths[n.id] + 1 <= most]
    return min(found) if found else 1


def _rf_text(rf: Any) -> str:
    if rf is None:
        return "-"
    return "x".join(f"{v:g}" for v in rf)


def tree_data(tree: Any, depth: int, prediction: Any = None) -> dict[str, Any]:
    """What the page's script draws: per node its place, text and numbers (each computed), the edges
    with their tensors' shapes and bytes, and the boxes open at first (the diagram at ``depth``)."""
    from archlab.units import human_bytes

    seconds = bounds = None
    if prediction is not None:
        seconds = [0.0] * (max((p.index for p in prediction.ops), default=-1) + 1)
        bounds = [""] * len(seconds)
        for p in prediction.ops:
            seconds[p.index] = p.seconds
            bounds[p.index] = p.bound
    depths = _module_depths(tree)
    has_kids = {n.parent for n in tree.nodes}
    module_kids = {n.parent for n in tree.nodes if n.kind in ("module", "repeat")}
    nodes = []
    for n in tree.nodes:
        if n.kind in ("input", "output"):
            line1, line3 = n.name, ""
        elif n.kind == "op":
            line1, line3 = n.name, human(n.macs, "MACs") if n.macs else ""
        else:
            kind = f"{n.type} × {n.repeat}" if n.repeat > 1 else n.type
            line1 = f"{n.name}: {kind}" if n.kind != "model" else f"{n.name}: {n.type}"
            line3 = f"params {human(n.params)} · {human(n.macs, 'MACs')}"
        ms = bound = None
        if seconds is not None and n.ops[1] > n.ops[0]:
            by: dict[str, float] = {}
            for i in range(n.ops[0], min(n.ops[1], len(seconds))):
                by[bounds[i]] = by.get(bounds[i], 0.0) + seconds[i]
            ms = sum(by.values()) * 1e3
            bound = max(by, key=by.get) if by else None
        traffic = n.read + n.written
        details = [("type", f"{n.type} × {n.repeat} (collapsed repeats)" if n.repeat > 1 else n.type),
                   ("input shapes", ", ".join(shape_str(s) for s in n.input_shapes) or "-"),
                   ("output shape", shape_str(n.output_shape)),
                   ("params", f"{n.params:,}"), ("MACs", f"{n.macs:,} ({human(n.macs, 'MACs')})"),
                   ("other ops", f"{n.other:,} (not MACs)"),
                   ("traffic", f"{traffic:,} bytes ({human_bytes(traffic)}: {human_bytes(n.read)} read, "
                               f"{human_bytes(n.written)} written)"),
                   ("receptive field", _rf_text(n.rf))]
        if ms is not None:
            details += [("predicted time", f"{ms:.4g} ms"), ("bound", bound or "-")]
        nodes.append([n.parent, n.kind, line1, shape_str(n.output_shape), line3, n.order[0], n.order[1],
                      n.macs, n.params, traffic, ms, bound, details,
                      1 if n.id in has_kids and n.kind != "model" else 0, n.name])
    opened = [n.id for n in tree.nodes if n.kind == "model" or
              (n.kind == "module" and n.id in module_kids and depths[n.id] < depth)]
    edges = [[a, b, shape_str(s), human_bytes(nb)] for a, b, s, nb in tree.edges]
    return {"model": tree.model, "depth": depth, "nodes": nodes, "edges": edges, "open": opened,
            "timed": prediction is not None}


SCRIPT = r"""
(function () {
  var root = document.currentScript.parentNode;
  var D = JSON.parse(root.querySelector('script.archlab-data').textContent);
  var N = D.nodes, E = D.edges, NS = 'http://www.w3.org/2000/svg';
  var svg = root.querySelector('svg.archlab-diagram'), info = root.querySelector('.archlab-info');
  var select = root.querySelector('select.archlab-color'), legend = root.querySelector('.archlab-legend');
  var kids = N.map(function () { return []; }), open = {};
  N.forEach(function (n, i) { if (n[0] >= 0) kids[n[0]].push(i); });
  var initial = D.open.slice();
  initial.forEach(function (i) { open[i] = true; });
  var W = 240, H = 56, GX = 24, GY = 46;
  function path(i) { var p = []; while (i > 0) { p.unshift(i); i = N[i][0]; } return p; }
  var paths = N.map(function (n, i) { return path(i); });
  function rep(i) { var p = paths[i]; for (var k = 0; k < p.length; k++) { if (!open[p[k]]) return p[k]; } return i; }
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function share(i, metric) {
    var total = N[0][metric === 'macs' ? 7 : metric === 'params' ? 8 : metric === 'traffic' ? 9 : 10];
    var v = N[i][metric === 'macs' ? 7 : metric === 'params' ? 8 : metric === 'traffic' ? 9 : 10];
    return total ? (v || 0) / total : 0;
  }
  var BOUND = {compute: '#fc8d62', memory: '#66c2a5', overhead: '#8da0cb'};
  function fill(i, metric, top) {
    var k = N[i][1];
    if (k === 'input' || k === 'output') return '#eeeeee';
    if (metric === 'bound') return BOUND[N[i][11]] || '#ffffff';
    var s = top ? share(i, metric) / top : 0;
    var g = Math.round(255 - 165 * Math.sqrt(s)), b = Math.round(255 - 200 * Math.sqrt(s));
    return 'rgb(255,' + g + ',' + b + ')';
  }
  function show(i) {
    var rows = N[i][12].map(function (r) { return '<tr><th>' + esc(r[0]) + '</th><td>' + esc(r[1]) + '</td></tr>'; });
    info.innerHTML = '<b>' + esc(N[i][2]) + '</b><table>' + rows.join('') + '</table>';
    info.setAttribute('data-id', i);
  }
  function esc(s) { return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'); }
  function draw() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var shown = {}, order = [];
    N.forEach(function (n, i) { if (kids[i].length === 0 && i > 0) { var r = rep(i); if (!shown[r]) { shown[r] = 1; order.push(r); } } });
    order.sort(function (a, b) { return (N[a][5] - N[b][5]) || (N[a][6] - N[b][6]) || (a - b); });
    var seen = {}, edges = [];
    E.forEach(function (e) {
      var a = rep(e[0]), b = rep(e[1]);
      if (a === b || seen[a + ',' + b]) return;
      seen[a + ',' + b] = 1; edges.push([a, b, e[2], e[3]]);
    });
    var rank = {}, rows = [];
    order.forEach(function (i) { rank[i] = 0; });
    var into = {};
    edges.forEach(function (e) { (into[e[1]] = into[e[1]] || []).push(e[0]); });
    order.forEach(function (i) { (into[i] || []).forEach(function (a) { rank[i] = Math.max(rank[i], rank[a] + 1); }); });
    order.forEach(function (i) { (rows[rank[i]] = rows[rank[i]] || []).push(i); });
    var widest = 0; rows.forEach(function (r) { widest = Math.max(widest, r.length); });
    var width = widest * (W + GX) + W, pos = {};
    rows.forEach(function (r, y) {
      var x0 = (width - r.length * (W + GX) + GX) / 2;
      r.forEach(function (i, k) { pos[i] = [x0 + k * (W + GX), 10 + y * (H + GY)]; });
    });
    svg.setAttribute('width', width); svg.setAttribute('height', rows.length * (H + GY) + 20);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + (rows.length * (H + GY) + 20));
    var metric = select.value, top = 0;
    order.forEach(function (i) { if (metric !== 'bound') top = Math.max(top, share(i, metric)); });
    var ge = el('g', {'class': 'edges'}, svg);
    edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]], x1 = a[0] + W / 2, y1 = a[1] + H, x2 = b[0] + W / 2, y2 = b[1];
      var far = rank[e[1]] - rank[e[0]] > 1 ? W * 0.75 : 0;
      var g = el('g', {'class': 'edge', 'data-from': e[0], 'data-to': e[1]}, ge);
      el('path', {d: 'M' + x1 + ',' + y1 + ' C' + (x1 + far) + ',' + (y1 + GY) + ' ' + (x2 + far) + ',' + (y2 - GY) +
                  ' ' + x2 + ',' + y2, fill: 'none', stroke: '#888', 'marker-end': 'url(#archlab-arrow)'}, g);
      el('title', {}, g).textContent = e[2] + ' (' + e[3] + ')';
      var t = el('text', {x: (x1 + x2) / 2 + far * 0.75 + 4, y: (y1 + y2) / 2 + 3, 'class': 'elabel'}, g);
      t.textContent = e[2] + ' · ' + e[3];
    });
    var defs = el('defs', {}, svg), m = el('marker', {id: 'archlab-arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
      markerWidth: 6, markerHeight: 6, orient: 'auto'}, defs);
    el('path', {d: 'M0,0 L10,5 L0,10 z', fill: '#888'}, m);
    var gb = el('g', {'class': 'boxes'}, svg);
    order.forEach(function (i) {
      var n = N[i], p = pos[i];
      var g = el('g', {'class': 'box', 'data-id': i, 'data-kind': n[1], 'data-name': n[14], 'data-macs': n[7],
                        'data-params': n[8],
                        'transform': 'translate(' + p[0] + ',' + p[1] + ')'}, gb);
      var shape = n[1] === 'op' ? {rx: 22} : n[1] === 'repeat' ? {rx: 3, 'stroke-dasharray': '6 3'} : {rx: 3};
      var r = el('rect', Object.assign({width: W, height: H, fill: fill(i, metric, top), stroke: '#555'}, shape), g);
      el('title', {}, g).textContent = n[2] + '\n' + n[3] + (n[4] ? '\n' + n[4] : '');
      [n[2], n[3], n[4]].forEach(function (line, k) {
        var t = el('text', {x: W / 2, y: 16 + 15 * k, 'class': 'l' + k}, g); t.textContent = line;
      });
      if (n[13]) {
        var c = el('g', {'class': 'ctl expand', 'data-id': i, transform: 'translate(' + (W - 18) + ',2)'}, g);
        el('rect', {width: 16, height: 16, rx: 3}, c); el('text', {x: 8, y: 12}, c).textContent = '+';
        el('title', {}, c).textContent = 'expand ' + n[2];
      }
      if (n[0] > 0) {
        var u = el('g', {'class': 'ctl collapse', 'data-id': n[0], transform: 'translate(2,2)'}, g);
        el('rect', {width: 16, height: 16, rx: 3}, u); el('text', {x: 8, y: 12}, u).textContent = '\u2212';
        el('title', {}, u).textContent = 'collapse into ' + N[n[0]][2];
      }
      g.addEventListener('mouseenter', function () { show(i); });
      r.addEventListener('click', function () { show(i); });
    });
    legend.innerHTML = metric === 'bound' ? Object.keys(BOUND).map(function (k) {
      return '<span style="background:' + BOUND[k] + '">' + k + '</span>'; }).join(' ') :
      '<span style="background:' + fill(order[0], metric, 0) + '">0%</span> \u2192 <span style="background:' +
      'rgb(255,90,55)">' + (100 * top).toFixed(1) + '% of the model\'s ' + select.options[select.selectedIndex].text +
      '</span> (a box\'s share)';
    root.setAttribute('data-shown', order.length);
  }
  function shut(i) { open[i] = false; kids[i].forEach(shut); }
  svg.addEventListener('click', function (ev) {
    var c = ev.target.closest('.ctl');
    if (!c) return;
    var i = +c.getAttribute('data-id');
    if (c.classList.contains('expand')) open[i] = true; else shut(i);
    draw();
  });
  select.addEventListener('change', draw);
  root.querySelector('.archlab-reset').addEventListener('click', function () {
    open = {}; initial.forEach(function (i) { open[i] = true; }); draw();
  });
  draw();
  show(0);
})();
"""

STYLE = (".archlab-arch{position:relative}.archlab-arch .bar{margin:.3em 0}.archlab-arch .wrap{overflow:auto;"
         "max-height:80vh;border:1px solid #ddd}.archlab-arch svg text{font:11px sans-serif;text-anchor:middle}"
         ".archlab-arch svg .l0{font-weight:bold}.archlab-arch svg text.elabel{font-size:9px;fill:#666;"
         "text-anchor:start}.archlab-arch .ctl{cursor:pointer}.archlab-arch .ctl rect{fill:#fff;stroke:#555}"
         ".archlab-arch .ctl text{font-size:13px}.archlab-arch .main{display:flex;gap:1em;align-items:flex-start}"
         ".archlab-arch .wrap{flex:1 1 auto}.archlab-arch .archlab-info{flex:0 0 24em;font-size:85%;position:sticky;"
         "top:0}.archlab-arch .archlab-info th{text-align:left;padding-right:1em}"
         ".archlab-arch .archlab-legend span{padding:0 .4em;border:1px solid #ccc}")


def interactive(tree: Any, depth: int, color: str = "macs", prediction: Any = None) -> str:
    """The interactive diagram as one self-contained fragment: the data, an SVG the inline script draws
    (boxes expand into their children and collapse back, down to single ops), the details of the box
    under the pointer, and the colouring by each box's share. Nothing is fetched."""
    import json

    if color not in COLORS:
        raise UserError(f"unknown --color '{color}' (choose {', '.join(COLORS)})")
    if color in ("time", "bound") and prediction is None:
        raise UserError(f"--color {color} needs the machine's calibration: run 'archlab calibrate' first "
                        "(--color macs, params and traffic need nothing)")
    data = json.dumps(tree_data(tree, depth, prediction), separators=(",", ":"), ensure_ascii=True)
    data = data.replace("</", "<\\/")
    options = "".join(f"<option value='{c}'{' selected' if c == color else ''}>{COLOR_NAMES[c]}</option>"
                      for c in COLORS if prediction is not None or c not in ("time", "bound"))
    return (f"<div class='archlab-arch'><style>{STYLE}</style>"
            f"<div class='bar'>colour by <select class='archlab-color'>{options}</select> "
            "<button class='archlab-reset' type='button'>collapse all</button> "
            "<span class='archlab-legend'></span></div>"
            "<div class='main'><div class='wrap'><svg class='archlab-diagram' "
            "xmlns='http://www.w3.org/2000/svg'></svg></div><div class='archlab-info'></div></div>"
            f"<script type='application/json' class='archlab-data'>{data}</script>"
            f"<script>{SCRIPT}</script><noscript>The interactive diagram needs JavaScript; "
            "archlab diagram --format svg draws it without.</noscript></div>")


def to_html(tree: Any, depth: int, color: str = "macs", prediction: Any = None) -> str:
    """``archlab diagram --format html``: the interactive diagram as a self-contained page."""
    title = html.escape(f"{tree.model}: architecture")
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title}</title></head><body style='font-family:sans-serif'>\n<h1>{title}</h1>"
            "<p>Boxes are modules (name: type, output shape, params, MACs), ops and collapsed repeats (dashed); "
            "+ expands a box into its children, − collapses it into its parent; edges carry the tensor's shape "
            "and bytes; the pointer over a box shows its numbers.</p>\n"
            + interactive(tree, depth, color, prediction) + "\n</body></html>\n")

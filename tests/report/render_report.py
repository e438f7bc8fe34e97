#!/usr/bin/env python3
"""Renders an evaluation report in headless Chromium and checks what a person
would see: every plot is laid out with a real size and visible marks, the
series colours reach the screen, and the page logs no console errors.

Usage: render_report.py ROPESCALE_CLI SHARED_DIR
Exit 77 (skipped) when chromium or the model is absent. Standard library only.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]

# Runs after layout; reports each plot's box and how many of its marks have a non-empty box.
PROBE = """
<script>
window.addEventListener('load', () => {
  const plots = [...document.querySelectorAll('svg.plot')].map(svg => {
    const r = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('.mark')];
    const visible = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
    return {label: svg.getAttribute('aria-label'), width: r.width, height: r.height,
            marks: marks.length, visible: visible.length};
  });
  const out = document.createElement('pre');
  out.id = 'render-check';
  out.textContent = JSON.stringify(plots);
  document.body.appendChild(out);
});
</script>
"""


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(binary, args, url, tmp):
    env = dict(os.environ, HOME=tmp)  # a profile of its own
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)


def decode_png(path):
    """RGB(A) 8-bit PNG → (width, height, channels, rows of bytes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), f"unexpected PNG format depth={depth} color={color}"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def main():
    cli, shared = sys.argv[1], sys.argv[2]
    browser = chromium()
    model = os.path.join(shared, "models/stories260K/stories260K.bin")
    text = os.path.join(shared, "data/tinystories_valid_head.txt")
    if not browser:
        print("SKIPPED LOUDLY: no chromium (scripts/install-deps.sh installs Debian's chromium)")
        return 77
    if not os.path.exists(model):
        print(f"SKIPPED LOUDLY: {model} is absent")
        return 77
    tmp = tempfile.mkdtemp(prefix="ropescale-render-")
    report = os.path.join(tmp, "report.html")
    methods = "none,linear:2,yarn:2,dynamic"
    ctxs = "256,512,1024"
    subprocess.run([cli, "eval", "suite", "--model", model, "--text", text, "--ctx", ctxs, "--tokens", "4096",
                    "--methods", methods, "--depths", "0,1", "--trials", "1", "--alternatives", "4",
                    "--tasks", "kv,niah_single", "--task-wording", "compact", "--report", report, "--quiet"], check=True)
    # perplexity, NLL by position per context, a passkey heatmap per method, and per task × length the
    # depth curve of needle NLL (plus accuracy when some method scores)
    base_plots = 1 + len(ctxs.split(",")) + len(methods.split(","))
    depth_curves = 2 * len(ctxs.split(","))

    # 1. Layout: every plot has a size and visible marks.
    probe = os.path.join(tmp, "probe.html")
    html = open(report, encoding="utf-8").read()
    open(probe, "w", encoding="utf-8").write(html.replace("</body>", PROBE + "</body>"))
    dom = run_chromium(browser, ["--dump-dom", "--virtual-time-budget=5000"], "file://" + probe, tmp).stdout
    m = re.search(r'<pre id="render-check">(.*?)</pre>', dom, re.S)
    if not m:
        fail("the probe did not run; chromium printed:\n" + dom[:2000])
    plots = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    print(f"{len(plots)} plots rendered:")
    for p in plots:
        print(f"  {p['label']}: {p['width']:.0f}×{p['height']:.0f} px, {p['visible']}/{p['marks']} marks visible")
    if not base_plots + depth_curves <= len(plots) <= base_plots + 2 * depth_curves:
        fail(f"expected {base_plots} plots and {depth_curves} to {2 * depth_curves} depth curves, found {len(plots)}")
    for p in plots:
        if p["width"] < 150 or p["height"] < 80:
            fail(f"plot '{p['label']}' is laid out at {p['width']}×{p['height']} px")
        if p["visible"] < 1 or p["visible"] < p["marks"]:
            fail(f"plot '{p['label']}' shows {p['visible']} of {p['marks']} marks")

    # 2. No console errors on the report as shipped.
    log = run_chromium(browser, ["--dump-dom", "--enable-logging=stderr", "--v=0"], "file://" + report, tmp).stderr
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    if console:
        fail("console messages:\n" + "\n".join(console))

    # 3. Pixels: the series colours reach the screen (black 'none', blue linear,
    #    red yarn, green dynamic, heatmap greens), on a mostly white page.
    shot = os.path.join(tmp, "report.png")
    run_chromium(browser, ["--screenshot=" + shot, "--window-size=1280,5200"], "file://" + report, tmp)
    if not os.path.exists(shot):
        fail("chromium wrote no screenshot")
    w, h, ch, rows = decode_png(shot)
    targets = {"none #111111": (17, 17, 17), "linear #1f6fd1": (31, 111, 209), "yarn #d1263b": (209, 38, 59),
               "dynamic #2a9d3a": (42, 157, 58)}
    found = {k: 0 for k in targets}
    inked = 0
    for row in rows:
        for x in range(0, w * ch, ch):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if r < 235 or g < 235 or b < 235:
                inked += 1
            for k, (tr, tg, tb) in targets.items():
                if abs(r - tr) < 24 and abs(g - tg) < 24 and abs(b - tb) < 24:
                    found[k] += 1
    print(f"screenshot {w}×{h}: {inked / (w * h):.1%} inked; pixels per series colour: {found}")
    if inked < 0.02 * w * h:
        fail("the page is nearly blank")
    for k, n in found.items():
        if n < 40:
            fail(f"series colour {k} is (almost) absent from the screenshot ({n} pixels)")
    shutil.rmtree(tmp, ignore_errors=True)
    print("report renders: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

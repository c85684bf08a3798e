"""The notebooks as a person sees them: JupyterLab in a real Chromium, driven by Playwright.

For each notebook (parameters injected with papermill --prepare-only, default profile smoke): open it in
JupyterLab, Run All, wait for the kernel, then count inline figures, widgets and error outputs, and save a
screenshot. In the explorer, move the layer and timestep sliders with the keyboard and time each move until the
figure is redrawn (what a user waits for, rendering included).

Needs Chromium (Debian package `chromium`) and `pip install playwright` (no browser download: it drives
/usr/bin/chromium). Writes benchmarks/results/browser_check.json and build/browser/*.png.

    python benchmarks/browser_check.py --profile smoke
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(port: int, timeout_s: float) -> None:
    import urllib.request
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"JupyterLab did not answer on port {port} within {timeout_s} s")


def prepare(workdir: Path, profile: str, runs: Path, figures: Path) -> list[Path]:
    """Copies of the notebooks with the profile's parameters injected (not executed)."""
    import papermill as pm
    out = []
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        dest = workdir / nb.name
        params = {"profile": profile, "runs": str(runs), "results": str(workdir / "results"), "figures": str(figures)}
        declared = pm.inspect_notebook(str(nb))  # each notebook gets only the parameters it declares, as reproduce does
        pm.execute_notebook(str(nb), str(dest), prepare_only=True,
                            parameters={k: v for k, v in params.items() if k in declared})
        out.append(dest)
    return out


def run_all(page, timeout_s: float) -> float:
    """Run All Cells through the menu and wait until no cell is queued or running; returns seconds."""
    page.click("text=Run", timeout=30_000)
    page.click("text=Run All Cells", timeout=30_000)
    t0 = time.time()
    page.wait_for_timeout(1500)
    while time.time() - t0 < timeout_s:
        busy = page.locator(".jp-InputArea-prompt:has-text('[*]')").count()
        if busy == 0:
            return time.time() - t0
        page.wait_for_timeout(1000)
    raise TimeoutError(f"notebook still running after {timeout_s} s")


def inspect(page) -> dict:
    """What the user sees in the outputs."""
    return {"inline_images": page.locator(".jp-OutputArea-output img").count(),
            "widgets": page.locator(".jupyter-widgets").count(),
            "error_outputs": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                          ":has-text('Traceback')").count()
            + page.locator(".jp-RenderedText:has-text('Traceback (most recent call last)')").count(),
            "stderr_outputs": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                           ).count()}


def slider_latency(page, index: int, moves: int) -> list[float]:
    """Move the index-th slider of the explorer by one step `moves` times; seconds until the figure changes."""
    handle = page.locator(".jupyter-widgets .noUi-handle").nth(index)
    widget_img = page.locator("img.widget-image, .jupyter-widgets.jp-OutputArea img, .widget-output img").last
    times = []
    for k in range(moves):
        before = widget_img.get_attribute("src")
        handle.focus()
        t0 = time.time()
        page.keyboard.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")
        deadline = t0 + 30
        while time.time() < deadline and widget_img.get_attribute("src") == before:
            page.wait_for_timeout(10)
        times.append(time.time() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", help="profile injected into every notebook")
    ap.add_argument("--runs", default="build/browser/runs", help="training runs folder for the notebooks")
    ap.add_argument("--only", default="", help="comma list of notebook name prefixes (default: all)")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per notebook")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    work = ROOT / "build" / "browser"
    shutil.rmtree(work / "nb", ignore_errors=True)
    (work / "nb").mkdir(parents=True)
    notebooks = prepare(work / "nb", args.profile, (ROOT / args.runs).resolve(), work / "figures")
    if args.only:
        notebooks = [n for n in notebooks if n.name.startswith(tuple(args.only.split(",")))]
    port = free_port()
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--allow-root",
                            "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                            f"--ServerApp.root_dir={work / 'nb'}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=ROOT)
    results = {}
    try:
        wait_for_server(port, 180)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for nb in notebooks:
                # ?reset: a fresh workspace, so the previous notebook is not restored beside this one
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{nb.name}?reset", timeout=120_000)
                page.wait_for_selector(".jp-Notebook", timeout=120_000)
                page.wait_for_timeout(3000)
                seconds = run_all(page, args.timeout)
                page.wait_for_timeout(2000)
                info = {"run_all_s": round(seconds, 1), **inspect(page)}
                if nb.name.startswith("05"):
                    info["layer_move_s"] = [round(x, 3) for x in slider_latency(page, 1, 6)]
                    info["timestep_move_s"] = [round(x, 3) for x in slider_latency(page, 0, 4)]
                    info["layer_move_median_s"] = round(statistics.median(info["layer_move_s"]), 3)
                    info["timestep_move_median_s"] = round(statistics.median(info["timestep_move_s"]), 3)
                page.screenshot(path=str(work / f"{nb.stem}.png"), full_page=True)
                results[nb.stem] = info
                print(nb.stem, info, flush=True)
                page.click("text=Kernel", timeout=30_000)
                page.click("text=Shut Down Kernel", timeout=30_000)
                page.wait_for_timeout(1000)
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    from framer_nb.provenance import provenance
    out = ROOT / "benchmarks" / "results" / "browser_check.json"
    out.write_text(json.dumps(provenance(benchmark="browser_check", profile=args.profile, chromium=args.chromium,
                                         results=results), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

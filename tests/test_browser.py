"""Real-browser check of the course notebooks: run one in JupyterLab, drag an explorer's slider.

The widget tests (``test_widgets.py``) drive explorers from Python; nbval runs the notebooks
without a front end. Neither shows that a reader's browser renders the widgets and that moving a
slider there round-trips through the kernel into a new image. This test does what a reader
does: it starts JupyterLab on localhost, opens a notebook in headless Chromium (Debian's
``chromium``, driven by the Playwright client: downloading Playwright's own browser builds does
not work here), runs all cells, then, in each explorer the notebook shows, presses an arrow key
on a slider (or picks another option) and checks that the explorer's images changed; where the
notebook has exercises, it first opens the first hidden solution as a reader would, by clicking
its placeholder, and checks that the solution shows. A screenshot of each explorer after its
change is kept as a test artefact in ``build/test-artifacts/browser/`` (ignored by git).

The server serves a temporary copy of ``notebooks/``, so the committed notebooks are never saved
over, and every Jupyter/IPython folder points into that temporary space, so nothing is left in
the user's home. It skips, saying what is missing, where ``chromium`` or ``playwright`` is absent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

# The notebooks the test drives, as files in notebooks/, with how many explorers each must show
# (every one is driven) and whether to open an exercise's hidden solution: the course's opening,
# and notebook 06 with its translation and ablation explorers.
BROWSER_NOTEBOOKS = {
    "00_unit_in_one_minute.ipynb": {"explorers": 1, "exercise": True},
    "06_unit.ipynb": {"explorers": 2, "exercise": False},
}

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "build" / "test-artifacts" / "browser"
SHARED_DATA = REPO.parent / "shared" / "data"  # as in conftest.py

# Bounds of every wait, in seconds: generous for two busy cores, short enough to fail clearly.
SERVER_START_S = 90.0
PAGE_LOAD_S = 90.0
KERNEL_START_S = 60.0
CLEAR_S = 10.0
RUN_ALL_S = 240.0
REDRAW_S = 60.0
STOP_S = 20.0

# ArrowRight presses on the slider: 5 steps of 0.1 standard deviations is a visible edit.
SLIDER_STEPS = 5

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the Playwright client is not installed (pip install -e '.[test]')",
)

T = TypeVar("T")

# JupyterLab settings for the test's own settings folder: "none" windowing keeps every cell in
# the DOM and rendered (the default skips rendering cells away from the viewport); no news
# fetching, which would try to reach the internet and pop up a notification over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# The state of the current notebook panel as JupyterLab's models see it (the DOM only shows
# prompts): its path, kernel status, any open dialog, and per non-empty code cell its index
# among all cells, first line, execution count and first error. `window.jupyterapp` exists
# because the server runs with --LabApp.expose_app_in_browser.
NOTEBOOK_STATE_JS = """
() => {
  const dialog = document.querySelector('.jp-Dialog');
  const state = {dialog: dialog ? dialog.innerText : null, path: null, kernel: null, cells: []};
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.content || !panel.content.model) return state;
  state.path = panel.context.path;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  state.kernel = kernel ? kernel.status : null;
  const cells = panel.content.model.cells;
  for (let index = 0; index < cells.length; index++) {
    const cell = cells.get(index);
    const source = cell.sharedModel.getSource();
    if (cell.type !== 'code' || !source.trim()) continue;
    let error = null;
    for (let i = 0; i < cell.outputs.length; i++) {
      const out = cell.outputs.get(i).toJSON();
      if (out.output_type === 'error' && !error) error = `${out.ename}: ${out.evalue}`;
    }
    const line = source.trim().split('\\n')[0];
    state.cells.push({index, line, count: cell.executionCount, error});
  }
  return state;
}
"""

# The bytes of every <img> under an element, base64-encoded. Image widgets show blob: URLs, a
# new one on every update even for the same picture, so the test compares contents, not `src`.
IMAGE_BYTES_JS = """
async (root) => Promise.all([...root.querySelectorAll('img')].map(async (img) => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}))
"""

# An explorer as the notebooks build it: an ipywidgets HBox holding sliders and Image widgets.
# Every unitlab explorer widget carries this CSS class (see unitlab.widgets.EXPLORER_CLASS).
EXPLORER_SELECTOR = ".jp-OutputArea-output .unitlab-explorer"


@dataclass
class Lab:
    """A running JupyterLab server and what a browser needs to reach it."""

    process: subprocess.Popen
    url: str
    token: str
    root: Path
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def notebook_url(self, name: str) -> str:
        # `reset` opens a fresh layout: just this notebook, whatever an earlier test opened.
        return f"{self.url}lab/tree/{name}?reset&token={self.token}"


def wait_for(check: Callable[[], T | None], timeout: float, what: str, poll: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds with ``what`` in the message, so that a hang reads as a named failure."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def free_port() -> int:
    """A localhost port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_environment(home: Path) -> dict[str, str]:
    """The server's (and so the kernel's) environment: quick notebooks on one thread each, the
    real digits where CI keeps them, and every Jupyter/IPython folder inside ``home``, so that
    the user's settings neither change the test nor get written to."""
    env = dict(os.environ)
    env.update(UNITLAB_QUICK="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # The notebooks find ../../shared/data relative to notebooks/; the served copy lives in a
    # temporary folder, so point them at it the other way they look: $UNITLAB_DATA.
    if SHARED_DATA.is_dir():
        env.setdefault("UNITLAB_DATA", str(SHARED_DATA))
    folders = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    for variable, name in folders.items():
        (home / name).mkdir(parents=True, exist_ok=True)
        env[variable] = str(home / name)
    for name, settings in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    return env


def server_answers(lab: Lab) -> bool:
    """Whether the server's REST API answers; fails at once if the server process died."""
    if lab.process.poll() is not None:
        raise AssertionError(
            f"jupyter lab exited with code {lab.process.returncode}:\n{lab.log_tail()}"
        )
    request = urllib.request.Request(
        f"{lab.url}api/status", headers={"Authorization": f"token {lab.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(process: subprocess.Popen) -> None:
    """Stop the server: SIGTERM first, on which it shuts its kernels down, then SIGKILL to its
    whole process group (it was started in a new session) if it has not exited in time. A
    kernel orphaned that way exits by itself: ipykernel watches its parent's pid."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(STOP_S)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright; skips where ``chromium`` is not on PATH."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Chromium is not installed: no `chromium` on PATH (apt-get install chromium)")
    # Chromium's sandbox refuses to run as root; /dev/shm is small in some containers.
    args = ["--disable-dev-shm-usage"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a temporary copy of ``notebooks/``; always stopped afterwards."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port, token = free_port(), secrets.token_hex(16)
    log = home / "jupyter.log"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.allow_root=True",  # CI containers run as root; the server is local only
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=home,
            env=lab_environment(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(process, f"http://127.0.0.1:{port}/", token, root, log)
    try:
        wait_for(lambda: server_answers(server), SERVER_START_S, "jupyter lab to answer")
        yield server
    finally:
        stop(process)


def notebook_state(page: Page) -> dict[str, Any]:
    """:data:`NOTEBOOK_STATE_JS` on ``page``; fails at once if a dialog asks something."""
    state = page.evaluate(NOTEBOOK_STATE_JS)
    if state["dialog"]:
        raise AssertionError(f"JupyterLab opened a dialog: {state['dialog']!r}")
    return state


def open_notebook(page: Page, lab: Lab, name: str) -> None:
    """Open ``name`` and wait until its kernel is up and idle."""
    page.goto(lab.notebook_url(name), timeout=PAGE_LOAD_S * 1000)
    wait_for(
        lambda: notebook_state(page)["path"] == name,
        PAGE_LOAD_S,
        f"JupyterLab to show {name}",
    )
    wait_for(
        lambda: notebook_state(page)["kernel"] == "idle",
        KERNEL_START_S,
        f"the kernel of {name} to start",
    )


def run_all_cells(page: Page, name: str) -> None:
    """Clear the saved outputs, run every cell, and wait until each has run without error.

    Clearing first matters twice: the committed notebook already has execution counts (so
    "every cell has a count" would hold at once) and saved widget views (an explorer from
    saved state, which the kernel does not drive). The commands are JupyterLab's own, those
    behind the menu's "Edit > Clear Outputs of All Cells" and "Run > Run All Cells"; calling
    them through the app does not depend on menus, focus or key bindings.
    """
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    wait_for(
        lambda: all(c["count"] is None for c in notebook_state(page)["cells"]),
        CLEAR_S,
        f"the outputs of {name} to clear",
    )
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    def finished() -> bool:
        state = notebook_state(page)
        for cell in state["cells"]:
            if cell["error"]:
                where = f"cell {cell['index']} (from 0, `{cell['line']}`)"
                raise AssertionError(f"{name}: {where} raised {cell['error']}")
        return state["kernel"] == "idle" and all(c["count"] for c in state["cells"])

    started = time.monotonic()
    wait_for(finished, RUN_ALL_S, f"all cells of {name} to run")
    print(f"{name}: all cells ran in {time.monotonic() - started:.1f} s")


def image_contents(element: Locator) -> list[str] | None:
    """The (base64) contents of the images under ``element``; None while one is being replaced
    (an update revokes the blob URL a fetch may just be reading)."""
    try:
        return element.evaluate(IMAGE_BYTES_JS)
    except playwright_api.Error:
        return None


def settled_images(element: Locator) -> list[str]:
    """The images under ``element`` once two reads a second apart agree: updates the last cells
    sent may still be on their way when the kernel turns idle."""
    previous: list[list[str] | None] = [None]

    def same_twice() -> list[str] | None:
        current = image_contents(element)
        stable = current if current and current == previous[0] else None
        previous[0] = current
        return stable

    return wait_for(same_twice, REDRAW_S, "the explorer's images to settle", poll=1.0)


def explorer_slider(explorer: Locator) -> Locator:
    """The explorer's first float slider (a latent direction or an interpolation: its readout
    has a decimal point) if it has one, rather than the integer ones that pick a start code or
    an edited region; else its first slider."""
    sliders = explorer.locator(".widget-slider")
    wait_for(lambda: sliders.count() > 0, REDRAW_S, "the explorer's sliders to render")
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        if "." in slider.locator(".widget-readout").inner_text():
            return slider
    return sliders.first


def move_slider(slider: Locator, steps: int) -> str:
    """Press ArrowRight ``steps`` times on the slider's handle, as a keyboard user would (a
    drag depends on the slider's pixel width), or ArrowLeft where it already sits at its
    maximum (a notebook may have driven it there); returns a description of the move."""
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    handle = slider.locator(".noUi-handle")
    for key in ("ArrowRight", "ArrowLeft"):
        for _ in range(steps):
            handle.press(key)  # focuses the handle first
        after = readout.inner_text()
        if after != before:
            return f"{before} -> {after}"
    raise AssertionError(f"the slider did not move on ArrowRight/ArrowLeft (readout {before})")


def change_control(explorer: Locator) -> str:
    """Move the explorer's slider (see :func:`explorer_slider`), or where it has none, pick the
    next option of its first drop-down; returns a description of the change."""
    if explorer.locator(".widget-slider").count():
        return "a slider " + move_slider(explorer_slider(explorer), SLIDER_STEPS)
    select = explorer.locator("select")
    wait_for(lambda: select.count() > 0, REDRAW_S, "a slider or a drop-down in the explorer")
    options = select.first.locator("option")
    before = select.first.input_value()
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    after = next(v for v in values if v != before)
    select.first.select_option(after)
    return f"a drop-down {before!r} -> {after!r}"


def drive_explorer(page: Page, explorer: Locator, screenshot: Path) -> str:
    """Change one control of ``explorer``, wait for a new image, keep a screenshot."""
    explorer.scroll_into_view_if_needed()
    before = settled_images(explorer)
    move = change_control(explorer)
    wait_for(
        lambda: (images := image_contents(explorer)) is not None and images != before,
        REDRAW_S,
        f"the explorer's image to change after moving {move}",
    )
    # Let the kernel render the last change too, so the screenshot shows the end state.
    wait_for(lambda: notebook_state(page)["kernel"] == "idle", REDRAW_S, "the kernel to idle")
    assert settled_images(explorer) != before, f"moving {move} changed no image"
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=screenshot)
    assert screenshot.is_file() and screenshot.stat().st_size > 0, "no screenshot saved"
    return move


# The index (among all cells) of the first cell tagged `solution`, and whether JupyterLab shows
# its source and outputs collapsed, as the notebook's metadata asks.
SOLUTION_STATE_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  for (let index = 0; index < cells.length; index++) {
    const tags = cells.get(index).getMetadata('tags') || [];
    if (!tags.includes('solution')) continue;
    const widget = panel.content.widgets[index];
    return {index, inputHidden: widget.inputHidden, outputHidden: widget.outputHidden};
  }
  return null;
}
"""


def open_first_solution(page: Page, name: str) -> None:
    """Check that the first solution is hidden (code and output), then click what a reader sees
    of it, the "..." placeholders (JupyterLab shows the code's first, then the output's), until
    the solution's text shows."""
    state = page.evaluate(SOLUTION_STATE_JS)
    assert state, f"{name} has no cell tagged `solution`"
    assert state["inputHidden"] and state["outputHidden"], f"{name}: a solution shows: {state}"
    cell = page.locator(".jp-Notebook .jp-Cell").nth(state["index"])
    outputs = cell.locator(".jp-OutputArea")

    def solution_shows() -> bool:
        return outputs.count() > 0 and "Solution" in outputs.first.inner_text()

    for _ in range(2):
        placeholder = cell.locator(".jp-Placeholder:visible")
        if solution_shows() or not placeholder.count():
            break
        cell.scroll_into_view_if_needed()
        placeholder.first.click()
    wait_for(solution_shows, REDRAW_S, f"the first solution of {name} to show after clicks")


def screenshot_on_failure(page: Page, path: Path) -> None:
    """Save what the page showed when the test failed, without masking the failure."""
    try:
        page.screenshot(path=path)
        print(f"screenshot of the failure: {path}")
    except playwright_api.Error as error:
        print(f"no screenshot of the failure: {error}")


@pytest.mark.parametrize("notebook", list(BROWSER_NOTEBOOKS))
def test_notebook_explorers_redraw_and_solutions_open(
    chromium: Browser, lab: Lab, tmp_path: Path, notebook: str
) -> None:
    """Open ``notebook`` in the browser; where it has exercises, open a hidden solution as the
    reader finds it (before running: running clears outputs, which un-collapses them); run it;
    change a control of each explorer and see a new image."""
    expected = BROWSER_NOTEBOOKS[notebook]
    assert (lab.root / notebook).is_file(), f"no notebook {notebook} in {NOTEBOOKS}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        open_notebook(page, lab, notebook)
        if expected["exercise"]:  # as the reader finds it: committed, not yet run
            open_first_solution(page, notebook)
            page.screenshot(path=ARTIFACTS / f"{Path(notebook).stem}-solution.png")
        run_all_cells(page, notebook)
        explorers = page.locator(EXPLORER_SELECTOR)
        wait_for(
            lambda: explorers.count() >= expected["explorers"],
            REDRAW_S,
            f"{expected['explorers']} explorers in {notebook}",
        )
        assert explorers.count() == expected["explorers"], f"{notebook}: explorers changed"
        stem = Path(notebook).stem
        for i in range(expected["explorers"]):
            screenshot = ARTIFACTS / f"{stem}-explorer-{i + 1}.png"
            move = drive_explorer(page, explorers.nth(i), screenshot)
            print(f"{notebook}: explorer {i + 1} redrew after {move}; screenshot {screenshot}")
    except BaseException:
        screenshot_on_failure(page, tmp_path / "failure.png")
        raise
    finally:
        page.close()

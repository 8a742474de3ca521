"""JupyterLab in headless Chromium, for tests/test_notebooks_browser.py.

`JupyterLab` runs one server on 127.0.0.1 (free port, random token, temporary root, settings,
workspace and runtime directories) with TFPRUNE_FAST=1 in the environment its kernels inherit.
`LabPage` drives Debian's chromium through Selenium and chromedriver the way a learner uses the
notebooks: open one, *Run > Run All Cells*, type into a slider's readout, pick from a dropdown,
press a button, and read what the cell shows (its text and its last figure).
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = (
    "apt-get update && apt-get install -y chromium chromium-driver "
    '&& pip install -e ".[test]"  (selenium and jupyterlab come with the test extra; .ci/run does all of this)'
)
# Settings a fresh install would show as pop-ups or do over the network: no news or update checks;
# no autosave (the test saves explicitly, into its temporary copy).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


def missing_browser():
    """Why the browser test cannot run here (with the install command), or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    if not missing:
        return None
    return f"missing {', '.join(missing)}; install with: {INSTALL}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """One JupyterLab server serving `root`, started by `start()` and ended by `stop()`."""

    def __init__(self, root, work, env=None):
        self.root, self.work = Path(root), Path(work)
        self.env = {**os.environ, **(env or {})}
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.process = None
        self.log_path = self.work / "jupyterlab.log"

    def start(self, timeout=90):
        settings = self.work / "settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / f"{name}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {
            **self.env,
            "JUPYTER_RUNTIME_DIR": str(self.work / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.work / "config"),
        }
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.work / 'workspaces'}",
        ]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("GET", "api/status")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.log_tail()}")

    def url(self, path, **query):
        query = "&".join(f"{k}={v}" for k, v in {"token": self.token, **query}.items())
        return f"http://127.0.0.1:{self.port}/{path}?{query}"

    def api(self, method, path):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self):
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def log_tail(self, lines=40):
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # JupyterLab shuts its kernels down on SIGTERM
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None:
            self._log.close()


def chromium(width=1400, height=1000):
    """Debian's headless chromium under its chromedriver (no download: both paths are given)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


# Every code cell's prompt once the kernel has run it: "[12]:"; "[*]:" while queued or running.
DONE_PROMPT = re.compile(r"^\[\d+\]:$")

_CELL_STATE = """
const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'))
    .map(e => e.textContent.trim());
const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
return [prompts, indicator ? indicator.getAttribute('data-status') : null];
"""

_CELL_VIEW = """
const cell = arguments[0];
const last = (nodes) => nodes.length ? nodes[nodes.length - 1] : null;
const source = (img) => img ? (img.getAttribute('src') || '') : '';
const outputs = cell.querySelector('.jp-Cell-outputWrapper');
const widget = last(cell.querySelectorAll('.widget-output'));
return [outputs ? outputs.textContent : '', source(last(cell.querySelectorAll('.jp-Cell-outputWrapper img'))),
        widget ? widget.textContent : '', source(widget ? last(widget.querySelectorAll('img')) : null)];
"""


_SCROLL_TO_CONTROLS = """
const cell = arguments[0];
const controls = cell.querySelector('.widget-vbox') || cell.querySelector('.jupyter-widgets') || cell;
controls.scrollIntoView({block: 'start'});
const scroller = cell.closest('.jp-WindowedPanel-outer');
if (scroller) { scroller.scrollBy(0, -40); }
"""


class LabPage:
    """One browser tab on a JupyterLab server."""

    def __init__(self, driver, lab):
        self.driver, self.lab = driver, lab

    # -- notebooks ---------------------------------------------------------------------------
    def open(self, relative_path, timeout=120):
        """Opens a notebook in a fresh workspace and waits until its kernel is connected and idle
        (the toolbar's indicator alone says idle while JupyterLab still shows "No Kernel")."""
        self.driver.get(self.lab.url(f"lab/tree/{relative_path}", reset=""))
        self.wait(lambda: self._kernel_ready(relative_path), timeout,
                  f"{relative_path} did not open with a connected, idle kernel",
                  detail=lambda: f"status bar: {self._kernel_status()!r}")
        self._collapse_left_sidebar()

    def run_all(self, timeout=900, start_within=60):
        """*Run > Run All Cells* from the menu bar; returns once every code cell has run and the
        kernel is idle (the seconds it took). Fails early if no cell starts."""
        start = time.monotonic()
        self.menu("Run", "runmenu:run-all")
        self.wait(lambda: any(p != "[ ]:" for p in self._state()[0]), start_within,
                  "Run All Cells started no cell", detail=lambda: f"status bar: {self._kernel_status()!r}")
        self.wait(self._all_ran, timeout, "Run All Cells did not finish", poll=0.5)
        return time.monotonic() - start

    def save(self):
        self.menu("File", "docmanager:save")
        self.wait(lambda: not self.driver.find_elements("css selector", ".jp-NotebookPanel .jp-mod-dirty"),
                  30, "the notebook was not saved")

    def menu(self, title, command):
        from selenium.webdriver.common.by import By

        for item in self.driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item"):
            if item.text.strip() == title:
                item.click()
                break
        else:
            raise AssertionError(f"no {title!r} menu in JupyterLab's menu bar")
        entry = self.wait(lambda: self.driver.find_elements(
            By.CSS_SELECTOR, f'.lm-Menu-item[data-command="{command}"]'), 10, f"no {command} in {title}")
        entry[0].click()

    def errors(self):
        """Tracebacks shown in any cell output."""
        text = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output'))"
            ".map(e => e.textContent)")
        return [t for t in text if "Traceback (most recent call last)" in t]

    def output_text(self):
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-Cell-outputWrapper'))"
            ".map(e => e.textContent).join('\\n')")

    # -- widgets -----------------------------------------------------------------------------
    def widget_cell(self, label):
        """The code cell displaying a control whose description or text is `label`."""
        from selenium.webdriver.common.by import By

        path = (f"//div[contains(@class, 'jp-CodeCell')][.//label[contains(@class, 'widget-label') and "
                f"normalize-space()='{label}'] or .//button[normalize-space()='{label}']]")
        cells = self.driver.find_elements(By.XPATH, path)
        assert cells, f"no cell displays a control labelled {label!r}: did the widgets render?"
        return cells[-1]

    def view(self, cell):
        """What the cell shows: (all its output text, its last figure as a data URL, the text of
        its widget output, the widget output's last figure)."""
        return tuple(self.driver.execute_script(_CELL_VIEW, cell))

    def set_slider(self, cell, label, value):
        """Types `value` into the slider's readout and presses Enter, as a learner can."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        slider = self._control(cell, "widget-slider", label)
        readout = slider.find_element(By.CSS_SELECTOR, ".widget-readout")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", readout)
        readout.click()
        readout.send_keys(Keys.CONTROL, "a")
        readout.send_keys(str(value), Keys.ENTER)
        handle = slider.find_element(By.CSS_SELECTOR, ".noUi-handle")  # a log slider's is the exponent
        self.wait(lambda: _close(handle.get_attribute("aria-valuenow"), value), 10,
                  f"slider {label!r} did not take the value {value}")

    def select(self, cell, label, option):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        dropdown = self._control(cell, "widget-dropdown", label).find_element(By.TAG_NAME, "select")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", dropdown)
        Select(dropdown).select_by_value(option)

    def click(self, cell, text):
        from selenium.webdriver.common.by import By

        button = cell.find_element(By.XPATH, f".//button[normalize-space()='{text}']")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()

    def wait_for_widget_output(self, cell, pattern, timeout=90, changed_from=None):
        """Waits until the cell's widget output shows a figure other than `changed_from` (the one
        before the control moved: the kernel may not have started yet) and text matching
        `pattern`, and the kernel is idle; returns the cell's view."""
        regex = re.compile(pattern)

        def redrawn():
            view = self.view(cell)
            fresh = view[3] and view[3] != changed_from
            return view if regex.search(view[2]) and fresh and self._state()[1] == "idle" else None

        return self.wait(redrawn, timeout, f"the widget output never showed a figure and /{pattern}/ (no redraw?)",
                         poll=0.5, detail=lambda: "widget output: " + self.view(cell)[2][-2000:])

    def screenshot(self, cell, path):
        """Scrolls the cell's controls to the top of the notebook and saves a PNG of the window:
        the controls and the figure under them, as the learner sees them."""
        self.driver.execute_script(_SCROLL_TO_CONTROLS, cell)
        time.sleep(0.5)  # let the scroll and the figure paint
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"

    # -- helpers -----------------------------------------------------------------------------
    def wait(self, condition, timeout, message, poll=0.2, detail=None):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                prompts, status = self._state()
                extra = f"\n{detail()}" if detail else ""
                raise AssertionError(f"{message} within {timeout} s (kernel {status}, prompts {prompts}){extra}")
            time.sleep(poll)

    def _state(self):
        return self.driver.execute_script(_CELL_STATE)

    def _kernel_status(self):
        """The status bar's kernel item, e.g. "Python 3 (ipykernel) | Idle"."""
        items = self.driver.execute_script(
            "return Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).map(e => e.textContent)")
        return next((item for item in items if " | " in item), "")

    def _kernel_ready(self, relative_path):
        status = self._kernel_status()
        if not status.endswith("| Idle") or status.startswith("No Kernel") or self._state()[1] != "idle":
            return False
        sessions = self.lab.api("GET", "api/sessions")
        return any(s["path"] == relative_path and s["kernel"]["execution_state"] == "idle" for s in sessions)

    def _all_ran(self):
        prompts, status = self._state()
        return status == "idle" and prompts and all(DONE_PROMPT.match(p) for p in prompts)

    def _control(self, cell, kind, label):
        from selenium.webdriver.common.by import By

        path = f".//div[contains(@class, '{kind}')][.//label[normalize-space()='{label}']]"
        found = cell.find_elements(By.XPATH, path)
        assert found, f"no {kind} labelled {label!r} in the cell"
        return found[0]

    def _collapse_left_sidebar(self):
        """More room for the notebook, as in the screenshots: the file browser folds away."""
        tabs = self.driver.find_elements("css selector", ".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if tabs:
            tabs[0].click()


def _close(text, value):
    """Whether a slider handle's aria-valuenow is `value` (or its log10, for a log slider)."""
    try:
        now, value = float(text), float(value)
    except (TypeError, ValueError):
        return False
    return any(abs(v - value) <= 1e-6 * max(1.0, abs(value)) for v in (now, 10 ** now))


def copy_tree(source, target, pattern):
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).glob(pattern)):
        shutil.copy2(path, target / path.name)

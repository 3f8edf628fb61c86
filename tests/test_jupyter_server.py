"""Notebook 01 in JupyterLab's kernel, the way a student runs it after ``./run_all.sh lab``.

``run_all.sh``'s setup registers the notebooks' kernel ("Python 3 (genrestudy)", kernelspec name
``python3``) inside ``.venv``; ``./run_all.sh lab`` starts ``.venv/bin/jupyter lab notebooks``.
This test starts that server headless on a free localhost port, checks that it offers the kernel
the notebooks name and that the kernel is this project's Python, starts the kernel through the
REST API and runs notebook 01's code cells in order over the kernel's websocket, on a tiny data
set, as JupyterLab's frontend would. Only localhost traffic; every wait is bounded.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import make_dataset
from genrestudy import paths

websocket = pytest.importorskip("websocket", reason="websocket-client is needed to talk to the kernel")

ROOT = paths.project_root()
NOTEBOOK = ROOT / "notebooks" / "01_preprocess.ipynb"
#: what run_all.sh's setup registers (checked against run_all.sh below)
KERNEL_NAME = "python3"
DISPLAY_NAME = "Python 3 (genrestudy)"

SERVER_START_S = 60     # the server must answer /api/status within this
HTTP_TIMEOUT_S = 20     # one REST call
KERNEL_READY_S = 60     # kernel_info_reply after the kernel was started
CELL_TIMEOUT_S = 120    # one cell (the slowest, the images, takes a few seconds on the tiny set)


# -- the server -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A running Jupyter server: ``get``/``post``/``delete`` on its REST API, with the token."""

    def __init__(self, port: int, token: str, process: subprocess.Popen, log: Path):
        self.port, self.token, self.process, self.log = port, token, process, log
        self.base = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body=None, timeout: float = HTTP_TIMEOUT_S):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def delete(self, path):
        return self.request("DELETE", path)

    def channels_url(self, kernel_id: str, session_id: str) -> str:
        return (f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels"
                f"?token={self.token}&session_id={session_id}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's process group: SIGTERM (it shuts its kernels down), then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _start_server(tmp: Path, attempt: int) -> tuple[Server | None, str]:
    """Start ``jupyter lab`` as ``./run_all.sh lab`` does, headless; (server, "") or (None, why)."""
    jupyter = Path(sys.executable).parent / "jupyter-lab"   # the environment's own, not the PATH's
    port, token = _free_port(), secrets.token_hex(24)
    log = tmp / f"server-{attempt}.log"
    env = dict(os.environ)
    # a student's shell: the kernel picks its own (inline) matplotlib backend; Jupyter's runtime
    # files (connection files) and user config go to temp folders, not the developer's home
    env.pop("MPLBACKEND", None)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(tmp / "config")
    cmd = [str(jupyter), "--no-browser",
           f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
           f"--ServerApp.root_dir={ROOT / 'notebooks'}", f"--port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1",
           # no outside traffic even if something asked: JupyterLab's update check stays off
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:   # CI containers run as root, which Jupyter refuses without this
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(port, token, process, log)
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, f"exited with code {process.returncode}; its log ends:\n{_tail(log)}"
        try:
            server.request("GET", "/api/status", timeout=5)
            return server, ""
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            time.sleep(0.5)
    _stop(process)
    return None, f"did not answer GET /api/status within {SERVER_START_S} s; its log ends:\n{_tail(log)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    jupyter = Path(sys.executable).parent / "jupyter-lab"
    if not jupyter.exists():
        pytest.skip(f"no {jupyter} in this environment (JupyterLab not installed beside {sys.executable})")
    tmp = tmp_path_factory.mktemp("jupyter-server")
    reasons = []
    for attempt in range(2):   # a free port can be taken between finding it and binding it: one retry
        started, why = _start_server(tmp, attempt)
        if started is not None:
            break
        reasons.append(why)
    else:
        pytest.skip("the Jupyter server could not start on a localhost port:\n" + "\n---\n".join(reasons))
    try:
        yield started
    finally:
        _stop(started.process)


# -- the kernel's message protocol --------------------------------------------------------------

def _message(msg_type: str, session: str, content: dict, channel: str = "shell") -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "username": "genrestudy-test", "session": session,
                       "msg_type": msg_type, "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}


class Kernel:
    """One kernel's websocket: run code as JupyterLab does and gather what the cell shows."""

    def __init__(self, ws, session: str):
        self.ws, self.session = ws, session

    def _replies(self, msg_id: str, timeout: float, what: str):
        """Every message whose parent is ``msg_id``, until ``timeout`` (then fail, naming ``what``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{what}: no answer from the kernel within {timeout} s")
            self.ws.settimeout(left)
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                pytest.fail(f"{what}: no answer from the kernel within {timeout} s")
            if not isinstance(raw, str):   # a binary frame (buffers): nothing this test reads
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                yield msg

    def wait_ready(self, timeout: float = KERNEL_READY_S) -> dict:
        request = _message("kernel_info_request", self.session, {})
        self.ws.send(json.dumps(request))
        for msg in self._replies(request["header"]["msg_id"], timeout, "kernel_info_request"):
            if msg["msg_type"] == "kernel_info_reply":
                return msg["content"]

    def execute(self, code: str, what: str, timeout: float = CELL_TIMEOUT_S) -> tuple[dict, list[dict]]:
        """Run ``code``; (execute_reply content, outputs as {"type": msg_type, **content})."""
        request = _message("execute_request", self.session,
                           {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True})
        self.ws.send(json.dumps(request))
        reply, outputs, idle = None, [], False
        for msg in self._replies(request["header"]["msg_id"], timeout, what):
            kind, channel = msg["msg_type"], msg.get("channel")
            if channel == "shell" and kind == "execute_reply":
                reply = msg["content"]
            elif channel == "iopub" and kind in ("stream", "display_data", "execute_result", "error"):
                outputs.append({"type": kind, **msg["content"]})
            elif channel == "iopub" and kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            if reply is not None and idle:
                return reply, outputs


def _shown(outputs: list[dict]) -> str:
    """The outputs as a reader would see them (text only), for failure messages."""
    parts = []
    for out in outputs:
        if out["type"] == "stream":
            parts.append(out["text"])
        elif out["type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}\n" + re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out["traceback"])))
        else:
            parts.append(out["data"].get("text/plain", f"<{', '.join(out['data'])}>"))
    return "\n".join(parts)[-4000:]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the test -----------------------------------------------------------------------------------

def _notebook():
    return json.loads(NOTEBOOK.read_text())


def _registered_kernelspec(server: Server, name: str):
    return server.get("/api/kernelspecs")["kernelspecs"].get(name)


@pytest.mark.slow
def test_notebook01_runs_in_the_jupyterlab_kernel(server, tmp_path):
    notebook = _notebook()
    kernel_name = notebook["metadata"]["kernelspec"]["name"]

    # the kernel the notebooks name is the one run_all.sh's setup registers
    setup_line = re.search(r"ipykernel install --sys-prefix --name (\S+) --display-name \"([^\"]+)\"",
                           (ROOT / "run_all.sh").read_text())
    assert setup_line and setup_line.groups() == (KERNEL_NAME, DISPLAY_NAME), \
        "run_all.sh's setup no longer registers the kernel this test expects"
    assert kernel_name == KERNEL_NAME, \
        f"notebook 01 names kernel {kernel_name!r}, but run_all.sh's setup registers {KERNEL_NAME!r}"

    # 1. the server offers that kernel, named for the study, running this environment's Python
    spec = _registered_kernelspec(server, kernel_name)
    if spec is None or spec["spec"]["display_name"] != DISPLAY_NAME:
        # run_all.sh's setup has not run (pytest run directly): register it as the setup does
        done = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                               "--display-name", DISPLAY_NAME], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"registering the kernel failed:\n{done.stdout}\n{done.stderr}"
        spec = _registered_kernelspec(server, kernel_name)
    specs = sorted(server.get("/api/kernelspecs")["kernelspecs"])
    assert spec is not None, f"the Jupyter server offers no kernel {kernel_name!r} (it offers {specs})"
    assert spec["spec"]["display_name"] == DISPLAY_NAME, spec["spec"]
    interpreter = spec["spec"]["argv"][0]
    prefix = Path(sys.prefix).absolute()
    assert Path(interpreter).is_absolute() and Path(interpreter).absolute().is_relative_to(prefix), \
        f"kernel {kernel_name!r} runs {interpreter!r}, not this project's environment ({prefix})"

    # 2. a kernel of that name, started as JupyterLab starts one for notebooks/01_preprocess.ipynb
    data = make_dataset(tmp_path / "data_in", genres=("blues", "rock"), clips=10, seconds=6.5)
    outputs_dirs = {name: tmp_path / name for name in ("data", "cache", "figures", "results")}
    model = server.post("/api/kernels", {"name": kernel_name, "path": NOTEBOOK.name})
    kernel_id, kernel_pid, ws = model["id"], None, None
    try:
        session = uuid.uuid4().hex
        ws = websocket.create_connection(server.channels_url(kernel_id, session), timeout=HTTP_TIMEOUT_S)
        kernel = Kernel(ws, session)
        info = kernel.wait_ready()
        assert info["language_info"]["name"] == "python", info

        # before genrestudy is imported: every study folder into tmp_path; then ask who runs us
        setup = "import os\n" + "".join(f"os.environ['GENRESTUDY_{name.upper()}'] = {str(folder)!r}\n"
                                       for name, folder in outputs_dirs.items())
        setup += ("import json, sys\n"
                  "print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix, 'pid': os.getpid(),"
                  " 'cwd': os.getcwd()}))\n")
        reply, outputs = kernel.execute(setup, "the set-up cell")
        assert reply["status"] == "ok", _shown(outputs)
        about = json.loads("".join(o["text"] for o in outputs if o["type"] == "stream").strip().splitlines()[-1])
        kernel_pid = about["pid"]
        assert Path(about["executable"]).absolute().is_relative_to(prefix), \
            f"the kernel runs {about['executable']}, not this project's environment ({prefix})"
        assert Path(about["prefix"]).absolute() == prefix, about
        assert Path(about["cwd"]).resolve() == NOTEBOOK.parent.resolve(), about

        # 3. notebook 01's code cells in order, the parameters overridden to the tiny data set
        cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells), "notebook 01 lost its parameters cell"
        figure_cells, ran = [], 0
        for number, cell in enumerate(cells, start=1):
            source = "".join(cell["source"])
            reply, outputs = kernel.execute(source, f"code cell {number}")
            errors = [o for o in outputs if o["type"] == "error"]
            assert reply["status"] == "ok" and not errors, \
                f"code cell {number} of notebook 01 failed in the kernel:\n{source}\n---\n{_shown(outputs)}"
            ran += 1
            if "parameters" in cell["metadata"].get("tags", []):
                reply, outputs = kernel.execute(f"data = {str(data)!r}", "the injected parameters")
                assert reply["status"] == "ok", _shown(outputs)
            if "plots.mel_per_genre" in source and "save_fig" in source:
                figure_cells.append((number, outputs))
        assert ran == len(cells)

        # Fig 2 shows in the notebook (JupyterLab's inline figure), not only on disk
        assert len(figure_cells) == 1, "notebook 01 should have one Fig 2 cell (plots.mel_per_genre + save_fig)"
        number, outputs = figure_cells[0]
        shown = [o for o in outputs if o["type"] in ("display_data", "execute_result")]
        assert any("image/png" in o["data"] for o in shown), \
            f"the Fig 2 cell (code cell {number}) shows no image/png; it shows: {[sorted(o['data']) for o in shown]}"
        # and what the cells wrote went to the test's folders, not the project's
        assert (outputs_dirs["figures"] / "fig02_mel_per_genre.png").stat().st_size > 0
        assert (outputs_dirs["results"] / "table01_dataset.csv").stat().st_size > 0
    finally:
        if ws is not None:
            ws.close()
        try:
            server.delete(f"/api/kernels/{kernel_id}")
        except (urllib.error.URLError, OSError):
            pass
        # the kernel runs in its own session (not the server's process group): make sure it is gone
        if kernel_pid is not None:
            deadline = time.monotonic() + 10
            while _pid_alive(kernel_pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(kernel_pid):
                os.kill(kernel_pid, signal.SIGKILL)

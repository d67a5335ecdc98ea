"""Starts the wa-sim binary and `wa-device-admin serve` against it, the way
tests/fuzz-api.sh does: a throw-away data folder, a random password through
APP_BASIC_AUTH, `--simulator-url`, and the address from each program's first
line of output. Everything it talks to is on 127.0.0.1; the HTTP sessions
ignore proxy settings from the environment. Run inside
tests/desktop-session.sh (the server keeps secrets in the keyring).
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

import requests

USER = "gowa"
LOOPBACK = "127.0.0.1"


def binaries(argv_bin_dir):
    """(app, sim) paths: the given folder, else $BIN_DIR, else target/debug."""
    folder = argv_bin_dir or os.environ.get("BIN_DIR") or "target/debug"
    app = os.path.join(folder, "wa-device-admin")
    sim = os.path.join(folder, "wa-sim")
    for path in (app, sim):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"not an executable: {path} (build it, or give --bin-dir)")
    return app, sim


def loopback_only(url):
    host = urlsplit(url).hostname
    if host != LOOPBACK:
        raise SystemExit(f"refusing to talk to {host!r}: only {LOOPBACK} is allowed")
    return url


class Servers:
    """wa-sim plus `serve`; use as a context manager."""

    def __init__(self, app, sim, time_factor=10):
        self.app_path, self.sim_path, self.time_factor = app, sim, time_factor
        self.work = tempfile.mkdtemp(prefix="wa-gowa.")
        self.password = secrets.token_hex(18)
        self.sim_proc = self.app_proc = None

    def _first_line(self, path, what, proc):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(path, encoding="utf-8", errors="replace") as f:
                line = f.readline()
            if line.endswith("\n"):
                return line.strip()
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise SystemExit(f"{what} did not start; its stderr:\n{self._stderr(what)}")

    def _stderr(self, what):
        name = "sim.err" if what == "wa-sim" else "app.err"
        try:
            with open(os.path.join(self.work, name), encoding="utf-8", errors="replace") as f:
                return self.redact(f.read()[-4000:])
        except OSError:
            return ""

    def redact(self, text):
        return text.replace(self.password, "<password>")

    def __enter__(self):
        out = open(os.path.join(self.work, "sim.out"), "w")
        err = open(os.path.join(self.work, "sim.err"), "w")
        self.sim_proc = subprocess.Popen(
            [self.sim_path, "--listen", f"{LOOPBACK}:0", "--control", f"{LOOPBACK}:0"],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        first = json.loads(self._first_line(os.path.join(self.work, "sim.out"), "wa-sim", self.sim_proc))
        self.ws_url = loopback_only(first["ws_url"])
        control = first["control_url"]
        self.control_url = loopback_only(control if control.startswith("http") else f"http://{control}")

        env = dict(os.environ, APP_BASIC_AUTH=f"{USER}:{self.password}")
        env.pop("RUST_LOG", None)
        out = open(os.path.join(self.work, "app.out"), "w")
        err = open(os.path.join(self.work, "app.err"), "w")
        self.app_proc = subprocess.Popen(
            [self.app_path, "serve", "--listen", f"{LOOPBACK}:0",
             "--data-dir", os.path.join(self.work, "data"),
             "--simulator-url", self.ws_url,
             "--client-time-factor", str(self.time_factor)],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        line = self._first_line(os.path.join(self.work, "app.out"), "wa-device-admin serve", self.app_proc)
        if not line.startswith("listening on "):
            raise SystemExit(f"unexpected first line from serve: {line!r}")
        self.base = loopback_only(line[len("listening on "):].rstrip("/"))
        self.http = self.session(auth=True)
        self.control = self.session(auth=False)
        return self

    def session(self, auth=True):
        s = requests.Session()
        s.trust_env = False  # no proxies, no .netrc: 127.0.0.1 only
        if auth:
            s.auth = (USER, self.password)
        return s

    def url(self, path):
        return self.base + path

    # The simulator's control API (tests/wa-sim/src/serve.rs).
    def sim(self, method, path, body=None):
        r = self.control.request(method, self.control_url + path, json=body, timeout=60)
        return r.status_code, r.json() if r.content else None

    def scan(self, phone, qr_payload):
        status, body = self.sim("POST", f"/phones/{phone}/scan", {"qr": qr_payload})
        if status != 200:
            raise AssertionError(f"the simulated phone refused the QR code: {status} {body}")
        return body["jid"]

    def enter_code(self, phone, code):
        status, body = self.sim("POST", f"/phones/{phone}/code", {"code": code})
        if status != 200:
            raise AssertionError(f"the simulated phone refused the pairing code: {status} {body}")
        return body["jid"]

    def wait_state(self, device_id, state, timeout=60):
        """Polls GET /devices/{id} until its GOWA `state` is `state`."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.http.get(self.url(f"/devices/{device_id}"), timeout=30)
            if r.status_code == 200:
                last = r.json()["results"]
                if last.get("state") == state:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"device {device_id} never reached {state!r}; last seen: "
                             f"{last and {k: last.get(k) for k in ('state', 'detailed_state', 'state_reason')}}")

    def __exit__(self, *exc):
        failure = None
        if self.app_proc is not None:
            if self.app_proc.poll() is not None:
                failure = f"the server died during the run:\n{self._stderr('serve')}"
            else:
                self.app_proc.send_signal(signal.SIGTERM)
                try:
                    code = self.app_proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.app_proc.kill()
                    code = "none (killed after 60 s)"
                if code != 0:
                    failure = f"the server exited with {code} on SIGTERM:\n{self._stderr('serve')}"
        if self.sim_proc is not None and self.sim_proc.poll() is None:
            self.sim_proc.terminate()
            try:
                self.sim_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sim_proc.kill()
        for name in ("app.out", "app.err"):
            try:
                with open(os.path.join(self.work, name), encoding="utf-8", errors="replace") as f:
                    if self.password in f.read():
                        failure = failure or f"the password appeared in the server's {name}"
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)
        if failure and exc[0] is None:
            raise SystemExit(failure)
        return False

"""A flowgate process for the hostile-visitor benches (halfsent.py, slowloris.py): started on
a config written to a temporary folder, listeners on 127.0.0.1:0 (the addresses are read from
its stderr), stopped by its PID. Nothing here leaves 127.0.0.1."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RULES = """routes: { page: { respond: { body: "hello" } } }
campaigns: [ { id: c, flows: [ { name: f, to: page } ] } ]
"""
LISTENING = re.compile(r"flowgate::listeners\] listening on (\S+) \((\S+)\)")


def binary():
    """$FLOWGATE, else the repository's release build, else its debug build."""
    if os.environ.get("FLOWGATE"):
        return os.environ["FLOWGATE"]
    for kind in ("release", "debug"):
        path = os.path.join(ROOT, "target", kind, "flowgate")
        if os.access(path, os.X_OK):
            return path
    raise SystemExit("no flowgate binary: set FLOWGATE or cargo build")


class Flowgate:
    def __init__(self, extra_config, threads=2):
        self.dir = tempfile.mkdtemp(prefix="fg-hostile-")
        os.makedirs(os.path.join(self.dir, "rules"))
        with open(os.path.join(self.dir, "rules", "main.yaml"), "w") as f:
            f.write(RULES)
        config = os.path.join(self.dir, "flowgate.yaml")
        with open(config, "w") as f:
            f.write(
                'listen: ["127.0.0.1:0"]\nadmin: 127.0.0.1:0\nrules: rules\n'
                f"threads: {threads}\nevents: {{ sink: none }}\nintel: {{}}\n{extra_config}"
            )
        self.bin = binary()
        env = dict(os.environ, RUST_LOG=os.environ.get("FG_LOG", "warn") + ",flowgate::listeners=info")
        self.proc = subprocess.Popen(
            [self.bin, "run", "-c", config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.addrs = {}
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                m = LISTENING.search(line)
                if m:
                    host, port = m.group(1).rsplit(":", 1)
                    self.addrs[m.group(2)] = (host, int(port))
                    if "listen[0]" in self.addrs and "admin" in self.addrs:
                        ready.set()
                elif line.strip():
                    print("flowgate:", line.rstrip())

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise SystemExit("flowgate did not report its listeners in 30 s")
        self.addr = self.addrs["listen[0]"]
        self.admin = self.addrs["admin"]

    def status(self, field):
        """A /proc/PID/status field in kB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def metric(self, series):
        s = socket.create_connection(self.admin, timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        body = b""
        while chunk := s.recv(65536):
            body += chunk
        s.close()
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_metric(self, series, want, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.metric(series) == want:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def get(addr, keep=None):
    """One GET; on `keep` (an open socket) kept alive, else on a new connection. Returns the
    socket for the next request, or None."""
    s = keep or socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /lp HTTP/1.1\r\nHost: bench.example\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head[:40])
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(body) < need:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    if keep is None:
        s.close()
        return None
    return s


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

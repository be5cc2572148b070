"""Starts and stops `hlwq serve` for the scripts that test and measure it (no third-party imports)."""
import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HLWQ = os.path.join(ROOT, "build", "hlwq")
DEMO_GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def import_demo_model(folder):
    """The demo GGUF imported as F32 into folder (as scripts/demo.sh's reference); returns folder."""
    if not os.path.exists(os.path.join(folder, "config.json")):
        subprocess.run([HLWQ, "import", DEMO_GGUF, "-o", folder, "--dtype", "f32"], check=True,
                       stdout=subprocess.DEVNULL)
    return folder


class Server:
    """`hlwq serve` on a free port; the base URL is .url once it listens."""

    def __init__(self, model, *arguments):
        self.lines = []
        self.process = subprocess.Popen([HLWQ, "serve", "-m", model, "--port", "0", *arguments],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = None
        while self.url is None:
            line = self.process.stderr.readline()
            if not line:
                self.process.wait()
                self.process.stderr.close()
                raise RuntimeError("hlwq serve did not start: " + self.stderr_text())
            self.lines.append(line)
            found = re.search(rb"serving .* on (http://[\d.]+:\d+)", line)
            if found:
                self.url = found.group(1).decode()
        # Keep reading stderr so that the server never blocks on a full pipe.
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stderr.readline, b"")),
                                       daemon=True)
        self.reader.start()

    def stderr_text(self):
        return b"".join(self.lines).decode(errors="replace")

    def stop(self, timeout=120):
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.reader.join(timeout=10)
        self.process.stderr.close()
        return status


def post(url, body, headers=None, timeout=300):
    """POST raw bytes (or a JSON value); returns (status, parsed JSON or text)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def get(url, timeout=60):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()

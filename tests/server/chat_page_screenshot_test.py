#!/usr/bin/env python3
"""The chat page of `hlwq serve` in headless Chromium (Debian's `chromium`), driven through the
DevTools protocol over --remote-debugging-pipe (no third-party Python packages): a greedy question
streams in the answer `hlwq run` gives, with its tokens/s line; the stop button ends a long answer
early; a screenshot of the page is written to out/serve/chat_page.png.

    python3 tests/server/chat_page_screenshot_test.py

Exits 77 (skipped, not passed) without chromium or the demo model.
"""
import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_process  # noqa: E402

SCREENSHOT = os.path.join(serve_process.ROOT, "out", "serve", "chat_page.png")


class Browser:
    """Headless Chromium with one page, spoken to in DevTools-protocol messages (NUL-separated JSON
    on the pipe pair Chromium reads at fd 3 and writes at fd 4)."""

    def __init__(self, profile):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()
        # The child must find the pipe ends at fds 3 and 4 (by way of fds above both, in case a pipe
        # end already is 3 or 4); subprocess keeps the fds in pass_fds open.
        def place_pipes():
            reading = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)
            os.dup2(writing, 4)
        self.process = subprocess.Popen(
            [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--remote-debugging-pipe", "--window-size=1000,640", "--user-data-dir=" + profile, "about:blank"],
            preexec_fn=place_pipes, pass_fds=(3, 4, to_browser_read, from_browser_write),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer = b""
        self.next_id = 0
        try:
            page = next(target for target in self.call("Target.getTargets")["targetInfos"] if target["type"] == "page")
            self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        except Exception:
            self.close()
            raise

    def call(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                data = os.read(self.from_browser, 1 << 20)
                if not data:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += data
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def page(self, method, **params):
        return self.call(method, session=self.session, **params)

    def evaluate(self, expression):
        return self.page("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression, seconds=180):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)


def main():
    if shutil.which("chromium") is None or not os.path.exists(serve_process.DEMO_GGUF):
        print("chat_page_screenshot_test: SKIPPED, not passed: needs Debian's chromium and the demo model",
              file=sys.stderr)
        return 77
    question = "The capital of France is"
    with tempfile.TemporaryDirectory(prefix="hlwq-chat-page-") as folder:
        model = serve_process.import_demo_model(os.path.join(folder, "demo"))
        expected = subprocess.run([serve_process.HLWQ, "run", "-m", model, "-p", question, "-n", "24", "--temp", "0",
                                   "--threads", "2"], check=True, capture_output=True).stdout.decode()[:-1]
        server = serve_process.Server(model, "--ctx", "512", "--threads", "2")
        browser = None
        try:
            browser = Browser(os.path.join(folder, "profile"))
            settings = urllib.parse.urlencode({"temperature": 0, "max_tokens": 24, "system": "", "ask": question},
                                              quote_via=urllib.parse.quote)
            browser.page("Page.navigate", url=f"{server.url}/#{settings}")
            speed = browser.wait_for("(document.querySelector('.assistant .speed') || {}).textContent")
            answer = browser.evaluate("document.querySelector('.assistant').firstChild.textContent")
            user = browser.evaluate("document.querySelector('.user').textContent")
            failures = []
            if user != question:
                failures.append(f"the user turn shows {user!r}")
            if answer != expected:
                failures.append(f"the page's answer {answer!r} is not hlwq run's {expected!r}")
            if not re.fullmatch(r"\d+ tokens, [\d.]+ tokens/s, (length|stop)", speed):
                failures.append(f"the speed line is {speed!r}")
            os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
            png = base64.b64decode(browser.page("Page.captureScreenshot", format="png")["data"])
            with open(SCREENSHOT, "wb") as file:
                file.write(png)
            if not png.startswith(b"\x89PNG") or len(png) < 5000:
                failures.append(f"the screenshot is not a real PNG ({len(png)} bytes)")
            # The stop button ends a long answer: the speed line says "stopped".
            browser.evaluate("document.getElementById('max_tokens').value = 400;"
                             "document.getElementById('prompt').value = 'Write a long story about a dragon.';"
                             "document.getElementById('form').requestSubmit(); true")
            browser.wait_for("document.querySelectorAll('.assistant').length == 2 && "
                             "document.querySelectorAll('.assistant')[1].textContent.length > 20")
            browser.evaluate("document.getElementById('stop').click(); true")
            stopped = browser.wait_for("(document.querySelectorAll('.assistant')[1].querySelector('.speed') || {}).textContent",
                                       seconds=30)
            if not stopped.endswith("stopped"):
                failures.append(f"after stop the speed line is {stopped!r}")
        finally:
            if browser is not None:
                browser.close()
            status = server.stop()
        if status != 0:
            failures.append(f"hlwq serve exited {status}")
        for failure in failures:
            print("chat_page_screenshot_test: FAILED: " + failure, file=sys.stderr)
        if not failures:
            print(f"chat_page_screenshot_test: passed; screenshot in {SCREENSHOT}", file=sys.stderr)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

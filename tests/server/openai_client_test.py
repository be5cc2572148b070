#!/usr/bin/env python3
"""`hlwq serve` on the demo model through OpenAI's own Python client (PyPI `openai`).

Greedy answers equal `hlwq run`'s (chat with the template; completions with --raw), streamed or
not; error statuses (400, 401, 429); a bounded load test in which every answer comes whole while
some clients hang up mid-stream; SIGTERM lets a running answer finish and exits 0.

    python3 tests/server/openai_client_test.py      (after scripts/build.sh and scripts/fetch_demo_model.sh)

Exits 77 (skipped, not passed) when the demo model is absent.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_process  # noqa: E402

try:
    import openai
except ImportError:
    sys.exit("openai_client_test: the PyPI package openai is missing (scripts/setup.sh installs it)")

CONTEXT = 512
PROMPTS = ["The capital of France is", "Write a haiku about the sea.", "What is 2 + 3?", "List three colors.",
           "Explain gravity in one sentence.", "Hello! Who are you?", "Name a famous painter.",
           "Once upon a time"]
MAX_TOKENS = 24


def run_hlwq(model, prompt, raw):
    """What `hlwq run` prints for a greedy answer of MAX_TOKENS tokens (stdout, the final newline off)."""
    arguments = [serve_process.HLWQ, "run", "-m", model, "-p", prompt, "-n", str(MAX_TOKENS), "--temp", "0",
                 "--threads", "2"]
    if raw:
        arguments.append("--raw")
    output = subprocess.run(arguments, check=True, capture_output=True).stdout.decode()
    assert output.endswith("\n")
    output = output[:-1]
    return output[len(prompt):] if raw else output


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory(prefix="hlwq-serve-test-")
        cls.model = serve_process.import_demo_model(os.path.join(cls.folder.name, "demo"))
        cls.server = serve_process.Server(cls.model, "--parallel", "4", "--ctx", str(CONTEXT), "--queue", "64",
                                          "--threads", "2")
        cls.client = openai.OpenAI(base_url=cls.server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        cls.expected_chat = {}
        cls.expected_text = {}

    @classmethod
    def tearDownClass(cls):
        status = cls.server.stop()
        cls.folder.cleanup()
        if status != 0:
            raise AssertionError(f"hlwq serve exited {status} after SIGTERM: {cls.server.stderr_text()}")

    def chat_reference(self, prompt):
        if prompt not in self.expected_chat:
            self.expected_chat[prompt] = run_hlwq(self.model, prompt, raw=False)
        return self.expected_chat[prompt]

    def text_reference(self, prompt):
        if prompt not in self.expected_text:
            self.expected_text[prompt] = run_hlwq(self.model, prompt, raw=True)
        return self.expected_text[prompt]

    def chat(self, prompt, **fields):
        return self.client.chat.completions.create(model="demo", messages=[{"role": "user", "content": prompt}],
                                                   max_tokens=MAX_TOKENS, temperature=0, **fields)

    def streamed_chat(self, prompt, hang_up_after=None):
        """The streamed answer's text, finish reason and usage (None, None when hung up early)."""
        stream = self.chat(prompt, stream=True, stream_options={"include_usage": True})
        text, finish, usage, chunks = "", None, None, 0
        for chunk in stream:
            self.assertEqual(chunk.object, "chat.completion.chunk")
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            text += delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
            chunks += 1
            if hang_up_after is not None and chunks >= hang_up_after:
                stream.close()
                return text, None, None
        return text, finish, usage

    def test_models_health_and_page(self):
        models = self.client.models.list()
        self.assertEqual([model.id for model in models.data], ["demo"])
        self.assertEqual(serve_process.get(self.server.url + "/health"), (200, '{"status":"ok"}'))
        status, page = serve_process.get(self.server.url + "/")
        self.assertEqual(status, 200)
        self.assertIn("<title>hlwq chat</title>", page)

    def test_chat_greedy_equals_run(self):
        for prompt in PROMPTS[:3]:
            answer = self.chat(prompt)
            self.assertEqual(answer.choices[0].message.content, self.chat_reference(prompt), prompt)
            self.assertEqual(answer.object, "chat.completion")
            self.assertIn(answer.choices[0].finish_reason, ("stop", "length"))
            usage = answer.usage
            self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
            self.assertLessEqual(usage.completion_tokens, MAX_TOKENS)
            if answer.choices[0].finish_reason == "length":
                self.assertEqual(usage.completion_tokens, MAX_TOKENS)

    def test_chat_streamed_equals_whole(self):
        for prompt in PROMPTS[:2]:
            text, finish, usage = self.streamed_chat(prompt)
            whole = self.chat(prompt)
            self.assertEqual(text, whole.choices[0].message.content)
            self.assertEqual(text, self.chat_reference(prompt))
            self.assertEqual(finish, whole.choices[0].finish_reason)
            self.assertEqual(usage.completion_tokens, whole.usage.completion_tokens)
            self.assertEqual(usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_completion_greedy_equals_run_raw(self):
        prompt = "The capital of France is"
        answer = self.client.completions.create(model="demo", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0)
        self.assertEqual(answer.choices[0].text, self.text_reference(prompt))
        streamed = "".join(chunk.choices[0].text for chunk in self.client.completions.create(
            model="demo", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, stream=True) if chunk.choices)
        self.assertEqual(streamed, answer.choices[0].text)

    def test_stop_strings_and_seeded_sampling(self):
        reference = self.chat_reference(PROMPTS[0])
        # A 3-character stop string from the second half whose first occurrence is there.
        start = next(index for index in range(len(reference) // 2, len(reference) - 3)
                     if reference.find(reference[index: index + 3]) == index)
        cut, stop = reference[:start], reference[start: start + 3]
        answer = self.chat(PROMPTS[0], stop=[stop])
        self.assertEqual(answer.choices[0].message.content, cut)
        self.assertEqual(answer.choices[0].finish_reason, "stop")
        text, finish, _ = self.streamed_chat_with_stop(PROMPTS[0], stop)
        self.assertEqual((text, finish), (cut, "stop"))
        sampled = [self.client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Tell me a story."}],
                                                       max_tokens=16, temperature=1.0, top_p=0.95, seed=42)
                   .choices[0].message.content for _ in range(2)]
        self.assertEqual(sampled[0], sampled[1])

    def streamed_chat_with_stop(self, prompt, stop):
        text, finish = "", None
        for chunk in self.chat(prompt, stream=True, stop=[stop]):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish, None

    def test_bad_requests_are_400(self):
        url = self.server.url + "/v1/chat/completions"
        status, body = serve_process.post(url, b"{not json")
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_json")
        status, body = serve_process.post(url, {"messages": "hello"})
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_type"))
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                                temperature="warm")
        self.assertIn("temperature", str(caught.exception))
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=CONTEXT + 1)
        self.assertIn("context", str(caught.exception))
        with self.assertRaises(openai.BadRequestError) as caught:
            self.client.completions.create(model="demo", prompt="word " * (CONTEXT + 10), max_tokens=4)
        self.assertEqual(caught.exception.status_code, 400)
        self.assertIn("context", str(caught.exception))
        status, body = serve_process.post(self.server.url + "/v1/nothing", {})
        self.assertEqual(status, 404)
        self.assertIn("error", body)

    def test_load_with_hang_ups(self):
        """16 clients x 2 requests, streamed and not; every fourth client hangs up mid-stream first."""
        for prompt in PROMPTS:
            self.chat_reference(prompt)
        failures = []

        def client_work(index):
            prompt = PROMPTS[index % len(PROMPTS)]
            if index % 4 == 3:
                self.streamed_chat(prompt, hang_up_after=3)
            for attempt in range(2):
                if (index + attempt) % 2:
                    text, finish, usage = self.streamed_chat(prompt)
                else:
                    answer = self.chat(prompt)
                    text, finish = answer.choices[0].message.content, answer.choices[0].finish_reason
                    usage = answer.usage
                if text != self.expected_chat[prompt] or finish not in ("stop", "length") or usage is None:
                    failures.append((index, attempt, prompt, text, finish))

        start = time.time()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(client_work, range(16)))
        print(f"load: 16 clients x 2 requests (+4 hung up) in {time.time() - start:.1f} s", file=sys.stderr)
        self.assertEqual(failures, [])
        # Every slot came free: nothing waits or runs once the answers are in.
        deadline = time.time() + 30
        while time.time() < deadline:
            metrics = serve_process.get(self.server.url + "/metrics")[1]
            if "hlwq_active_requests 0" in metrics and "hlwq_queue_length 0" in metrics:
                break
            time.sleep(0.2)
        self.assertIn("hlwq_active_requests 0", metrics)
        self.assertIn("hlwq_queue_length 0", metrics)
        self.assertIn('hlwq_time_to_first_token_seconds{quantile="0.5"}', metrics)
        self.assertRegex(metrics, r"hlwq_tokens_generated_total [1-9]")
        # The four hang-ups were noticed (the server's write failed) and counted as 499.
        self.assertIn('hlwq_requests_total{endpoint="/v1/chat/completions",status="499"} 4', metrics)


class ServeLimitsTest(unittest.TestCase):
    """Servers with an API key, a one-slot no-queue setup, and SIGTERM during an answer."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.TemporaryDirectory(prefix="hlwq-serve-test-")
        cls.model = serve_process.import_demo_model(os.path.join(cls.folder.name, "demo"))

    @classmethod
    def tearDownClass(cls):
        cls.folder.cleanup()

    def test_api_key(self):
        server = serve_process.Server(self.model, "--ctx", "256", "--api-key", "sesame", "--threads", "2")
        try:
            for key in ("wrong", None):
                client = openai.OpenAI(base_url=server.url + "/v1", api_key=key or "x", max_retries=0,
                                       default_headers=None if key else {"Authorization": ""})
                with self.assertRaises(openai.AuthenticationError) as caught:
                    client.models.list()
                self.assertEqual(caught.exception.status_code, 401)
            status, body = serve_process.post(server.url + "/v1/completions", {"prompt": "x"})
            self.assertEqual((status, body["error"]["type"]), (401, "authentication_error"))
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="sesame", max_retries=0)
            self.assertEqual(len(client.models.list().data), 1)
            self.assertEqual(serve_process.get(server.url + "/health")[0], 200)
        finally:
            self.assertEqual(server.stop(), 0)

    def test_full_queue_is_429_and_sigterm_finishes_the_answer(self):
        server = serve_process.Server(self.model, "--ctx", "256", "--parallel", "1", "--queue", "0",
                                      "--threads", "2")
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)
        try:
            stream = client.completions.create(model="demo", prompt="Once upon a time", max_tokens=120,
                                               temperature=0, stream=True)
            chunks = iter(stream)
            first = next(chunks)  # the one slot is busy now
            with self.assertRaises(openai.RateLimitError) as caught:
                client.completions.create(model="demo", prompt="Hello", max_tokens=4)
            self.assertEqual(caught.exception.status_code, 429)
            # SIGTERM mid-answer: the answer still comes whole, new requests are refused, exit 0.
            server.process.terminate()
            time.sleep(0.5)
            status, _ = serve_process.post(server.url + "/v1/completions", {"prompt": "x", "max_tokens": 2}, timeout=30)
            self.assertEqual(status, 503)
            text = first.choices[0].text + "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
            whole = run_hlwq_n(self.model, "Once upon a time", 120)
            self.assertEqual(text, whole)
        finally:
            self.assertEqual(server.stop(), 0, server.stderr_text())


def run_hlwq_n(model, prompt, tokens):
    output = subprocess.run([serve_process.HLWQ, "run", "-m", model, "-p", prompt, "-n", str(tokens), "--temp", "0",
                             "--raw", "--threads", "2"], check=True, capture_output=True).stdout.decode()
    return output[len(prompt):-1]


if __name__ == "__main__":
    if not os.path.exists(serve_process.DEMO_GGUF):
        print("openai_client_test: SKIPPED, not passed: the demo model is absent (scripts/fetch_demo_model.sh)",
              file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)

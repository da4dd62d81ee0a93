"""A scripted OpenAI-compatible ``/completions`` server on 127.0.0.1 (a real HTTP server in a thread) that
answers each prompt's first-token top log-probs with ``tops(prompt)``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubCompletionsServer:
    """``script``: behaviours consumed one per request (``500``, ``404``, ``malformed``, ``nologprobs``); when it
    runs out, requests succeed. ``requests`` keeps every request body."""

    def __init__(self, tops):
        self.tops, self.script, self.requests = tops, [], []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    behaviour = server.script.pop(0) if server.script else "ok"
                if behaviour in ("500", "404"):
                    payload = b'{"error": {"message": "model not loaded"}}'
                    self.send_response(int(behaviour))
                else:
                    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                    choices = [{"index": i, "text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": [0.0],
                                "top_logprobs": [server.tops(p)]}} for i, p in enumerate(prompts)]
                    if behaviour == "nologprobs":
                        choices = [{"index": 0, "text": "x"}]
                    payload = b"{oops" if behaviour == "malformed" else json.dumps({"choices": choices[::-1]}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

"""A scripted OpenAI-compatible ``/completions`` server on 127.0.0.1 (a real HTTP server in a thread) that
answers each prompt's first-token top log-probs with ``tops(prompt)``."""

from __future__ import annotations

import json
import threading

from tests.local_http import LocalServer, QuietHandler


class StubCompletionsServer(LocalServer):
    """``script``: behaviours consumed one per request (``500``, ``404``, ``malformed``, ``nologprobs``); when
    it runs out, requests succeed. ``requests`` keeps every request body."""

    def __init__(self, tops):
        self.tops, self.script, self.requests = tops, [], []
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    behaviour = server.script.pop(0) if server.script else "ok"
                if behaviour in ("500", "404"):
                    payload = b'{"error": {"message": "model not loaded"}}'
                    status = int(behaviour)
                else:
                    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                    choices = [
                        {
                            "index": i,
                            "text": "x",
                            "logprobs": {
                                "tokens": ["x"],
                                "token_logprobs": [0.0],
                                "top_logprobs": [server.tops(p)],
                            },
                        }
                        for i, p in enumerate(prompts)
                    ]
                    if behaviour == "nologprobs":
                        choices = [{"index": 0, "text": "x"}]
                    payload = (
                        b"{oops"
                        if behaviour == "malformed"
                        else json.dumps({"choices": choices[::-1]}).encode()
                    )
                    status = 200
                self.send_json(status, payload)

        self.serve(Handler)

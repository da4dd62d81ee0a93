"""A scripted OpenAI-compatible chat server on 127.0.0.1 (a real HTTP server in a thread)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.local_http import LocalServer, QuietHandler


class ScriptedChatServer(LocalServer):
    """Answers POST /v1/chat/completions; ``script`` is a list of behaviours consumed one per request
    (``ok``, ``slow``, ``429``, ``429-3600`` (Retry-After: 3600), ``500``, ``malformed``, ``400``, ``401``,
    ``403``, ``404`` (error statuses send ``error_body``), ``trickle``: a success sent one byte per second,
    60 s in all, ``hangups`` counting those cut short); when it runs out, requests succeed (or follow
    ``default``, e.g. ``500``). A success replies ``reply(request_body)`` (default: an echo of the last
    message)."""

    def __init__(self):
        self.script: list[str] = []
        self.default = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        self.reply = lambda body: f" echo: {body['messages'][-1]['content']} "
        self.usage = None  # body -> the reply's "usage" object (None: replies carry no usage)
        self.error_body = b""  # sent with a 4xx / 5xx status (e.g. the server's JSON explanation)
        self.hangups = 0  # trickled replies the client hung up on before their end
        server = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    behaviour = server.script.pop(0) if server.script else server.default
                if behaviour == "slow":
                    time.sleep(1.0)
                if behaviour in ("429", "429-3600", "500", "400", "401", "403", "404"):
                    self.send_response(int(behaviour[:3]))
                    if behaviour.startswith("429"):
                        self.send_header("Retry-After", behaviour[4:] or "0")
                    self.send_header("Content-Length", str(len(server.error_body)))
                    self.end_headers()
                    self.wfile.write(server.error_body)
                    return
                reply = {"choices": [{"message": {"role": "assistant", "content": server.reply(body)}}]}
                if server.usage is not None:
                    reply["usage"] = server.usage(body)
                payload = b"{not json" if behaviour == "malformed" else json.dumps(reply).encode()
                if behaviour == "trickle":
                    self.trickle(payload.ljust(60))
                    return
                self.send_json(200, payload)

            def trickle(self, payload: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                for i in range(len(payload)):
                    try:
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        with server.lock:
                            server.hangups += 1
                        return
                    time.sleep(1.0)

        self.serve(Handler)


@pytest.fixture
def chat_server(monkeypatch):
    """The scripted server, with the key variables the tests name set (the client refuses unset ones)."""
    for name in ("METALIGHT_TEST_KEY", "METALIGHT_JUDGE_KEY"):
        monkeypatch.setenv(name, "sk-test-key-not-secret")
    server = ScriptedChatServer()
    yield server
    server.close()

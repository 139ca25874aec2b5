"""The judge stub (tests/judge_stub.py) extended to the rest of the OpenAI API autolog needs.

    with OpenAIStub() as stub:
        client = openai.OpenAI(base_url=stub.base_url, api_key="test")

Adds, on top of POST /v1/chat/completions: `stream=True` (server-sent events, the reply cut into
word chunks, a final usage chunk when `stream_options.include_usage`), POST /v1/responses (plain
and streamed) and POST /v1/embeddings. Answers still come from `stub.responder`, so a StubFailure
scripts an error on any route.
"""

from __future__ import annotations

import json
from typing import Any

from tests.judge_stub import StubJudgeServer, _Handler

__all__ = ["OpenAIStub"]


class _Handler2(_Handler):
    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings"):
            return super().do_POST()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        stub = self.server.stub
        if path == "/v1/embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25, float(len(str(t)))]}
                    for i, t in enumerate(inputs)]  # fmt: skip
            words = sum(len(str(t).split()) for t in inputs)
            return self._send(200, {"object": "list", "data": data, "model": body["model"],
                                    "usage": {"prompt_tokens": words, "total_tokens": words}})  # fmt: skip
        chat_request = body if path == "/v1/chat/completions" else {
            "model": body.get("model"), "messages": [{"role": "user", "content": json.dumps(body.get("input"))}],
        }  # fmt: skip
        status, payload, headers = stub._answer(chat_request, dict(self.headers))
        if status != 200:
            return self._send(status, payload, headers)
        if path == "/v1/responses":
            return self._responses(body, payload)
        if body.get("stream"):
            return self._stream_chat(body, payload)
        return self._send(status, payload, headers)

    def _sse(self, events: list[dict[str, Any]], done: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _stream_chat(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        text = completion["choices"][0]["message"]["content"]
        base = {"id": completion["id"], "object": "chat.completion.chunk", "created": 1, "model": completion["model"]}
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": completion["usage"]})
        self._sse(events)

    def _responses(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        text = completion["choices"][0]["message"]["content"]
        usage = completion["usage"]
        response = {
            "id": "resp_stub", "object": "response", "created_at": 1, "model": completion["model"],
            "status": "completed", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                      "total_tokens": usage["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }  # fmt: skip
        if not body.get("stream"):
            return self._send(200, response)
        events = [{"type": "response.created", "sequence_number": 0, "response": {**response, "status": "in_progress"}}]
        events += [
            {"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_1", "output_index": 0,
             "content_index": 0, "delta": w, "logprobs": []}
            for i, w in enumerate(text.split(" "))
        ]  # fmt: skip
        events.append({"type": "response.completed", "sequence_number": len(events), "response": response})
        self._sse(events, done=False)


class OpenAIStub(StubJudgeServer):
    """StubJudgeServer serving streamed chat, responses and embeddings as well."""

    handler_class = _Handler2

"""Local stand-ins for AI services that cannot run here, speaking their documented HTTP APIs.

The real clients (the anthropic SDK, httpx for Ollama) talk to them; each answers from a script
of replies and records what it was sent.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.servers import HttpServer, Reply


def anthropic_stream(text: str, *, model: str = "claude-standin", input_tokens: int = 11) -> Reply:
    """A Messages API answer streamed as server-sent events, the way the API sends them."""
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)] or [""]
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_standin",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
            for p in pieces
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return Reply(body=body.encode(), headers={"Content-Type": "text/event-stream"})


def anthropic_error(status: int, kind: str, message: str) -> Reply:
    """An error answer in the API's shape."""
    return Reply(
        status=status,
        body={"type": "error", "error": {"type": kind, "message": message}},
    )


def ollama_chat(text: str, *, model: str = "llama3.2") -> Reply:
    """An /api/chat answer streamed as newline-delimited JSON."""
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    lines = [
        {"model": model, "message": {"role": "assistant", "content": p}, "done": False}
        for p in pieces
    ]
    lines.append(
        {
            "model": model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 9,
            "eval_count": len(pieces),
        }
    )
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return Reply(body=body, headers={"Content-Type": "application/x-ndjson"})


def ollama_pull(model: str) -> Reply:
    """An /api/pull progress stream."""
    lines = [
        {"status": "pulling manifest"},
        {"status": f"pulling {model}", "digest": "sha256:abc", "total": 1000, "completed": 400},
        {"status": f"pulling {model}", "digest": "sha256:abc", "total": 1000, "completed": 1000},
        {"status": "success"},
    ]
    return Reply(
        body="".join(json.dumps(x) + "\n" for x in lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )


def ollama_server(server: HttpServer, *, answer: str = "Paris.", dim: int = 8) -> None:
    """Script ``server`` as an Ollama: chat, embed, tags and pull."""
    server.script("/api/chat", ollama_chat(answer))
    server.script(
        "/api/embed",
        Reply(body={"model": "nomic-embed-text", "embeddings": [[0.5] * dim, [0.25] * dim]}),
    )
    server.script(
        "/api/tags",
        Reply(body={"models": [{"name": "llama3.2:latest", "size": 2_000_000_000}]}),
    )
    server.script("/api/pull", ollama_pull("llama3.2"))

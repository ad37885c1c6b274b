"""Build API-format prompts and run them through POST /prompt on a real server."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests


class Graph:
    """An API-format prompt under construction: `g.node(...)` returns a handle; `h[i]` links."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def node(self, class_type: str, node_id: str | None = None, **inputs: Any) -> NodeRef:
        nid = node_id or str(len(self.nodes) + 1)
        self.nodes[nid] = {"class_type": class_type, "inputs": {}}
        for k, v in inputs.items():
            self.nodes[nid]["inputs"][k] = v.link() if isinstance(v, NodeRef) else v
        return NodeRef(nid)

    def prompt(self) -> dict[str, Any]:
        return self.nodes


@dataclass(frozen=True)
class NodeRef:
    node_id: str

    def __getitem__(self, index: int) -> list:
        return [self.node_id, index]

    def link(self) -> list:
        return [self.node_id, 0]


@dataclass
class RunResult:
    prompt_id: str
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    messages: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def error(self) -> dict | None:
        for name, data in self.messages:
            if name == "execution_error":
                return data
        return None

    def interrupted(self) -> bool:
        return any(name == "execution_interrupted" for name, _ in self.messages)


def queue(url: str, prompt: dict | Graph, client_id: str | None = None) -> str:
    """POST /prompt; raises with the server's validation errors when refused."""
    if isinstance(prompt, Graph):
        prompt = prompt.prompt()
    body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
    r = requests.post(url + "/prompt", json=body, timeout=30)
    if r.status_code != 200:
        raise PromptRefused(r.status_code, r.json() if r.content else {})
    return r.json()["prompt_id"]


class PromptRefused(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"POST /prompt refused ({status}): {body}")
        self.status = status
        self.body = body


def wait(url: str, prompt_id: str, timeout: float = 300.0) -> RunResult:
    """Poll /history until the prompt has finished (success, error or interrupted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/history/{prompt_id}", timeout=10)
        entry = r.json().get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            st = entry["status"]
            if st.get("status_str") in ("success", "error") or st.get("completed"):
                return RunResult(
                    prompt_id,
                    st.get("status_str", "unknown"),
                    entry.get("outputs", {}),
                    st.get("messages", []),
                )
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout}s")


def run(url: str, prompt: dict | Graph, timeout: float = 300.0, client_id: str | None = None):
    if isinstance(prompt, Graph):
        prompt = prompt.prompt()
    return wait(url, queue(url, prompt, client_id), timeout)


def interrupt(url: str) -> None:
    requests.post(url + "/interrupt", json={}, timeout=10)

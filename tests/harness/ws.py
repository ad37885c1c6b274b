"""A ComfyUI websocket client (as a browser tab is one): collects the JSON events it receives."""

from __future__ import annotations

import json
import threading
import time

import websocket


class WsClient:
    """Connects as `client_id`; `events` fills in a background thread."""

    def __init__(self, url: str, client_id: str) -> None:
        self.client_id = client_id
        self.events: list[tuple[str, dict]] = []
        ws_url = url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
        self._ws = websocket.create_connection(ws_url, timeout=10)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                msg = self._ws.recv()
            except (websocket.WebSocketTimeoutException, TimeoutError):
                continue
            except Exception:
                return
            if not msg:
                return
            if isinstance(msg, str):
                data = json.loads(msg)
                self.events.append((data.get("type"), data.get("data")))

    def of_type(self, event: str) -> list[dict]:
        return [d for t, d in list(self.events) if t == event]

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(event)
            if found:
                return found[0]
            time.sleep(0.1)
        raise TimeoutError(f"{self.client_id} got no {event!r} within {timeout}s")

    def close(self) -> None:
        self._stop = True
        self._ws.close()
        self._thread.join(5)

"""Start and stop a real ComfyUI server (headless, CPU) with the pack installed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from .paths import COMFYUI, REPO, VENV_PYTHON


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_base_directory(base: Path, models: Path | None) -> Path:
    """A ComfyUI --base-directory with the pack linked into custom_nodes and the models linked."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "user").mkdir(exist_ok=True)
    link = base / "custom_nodes" / "comfy-papa"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    if models is not None:
        for sub in models.iterdir():
            if not sub.is_dir():
                continue
            dest = base / "models" / sub.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in sub.iterdir():
                target = dest / f.name
                if not target.exists():
                    target.symlink_to(f)
    return base


class ComfyServer:
    """One ComfyUI process. `start()` waits until HTTP answers; `kill()` is a real SIGKILL."""

    def __init__(
        self,
        base: Path,
        port: int | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.base = base
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.env = dict(env or {})  # added to os.environ at each start (e.g. COMFY_PAPA_FAULT)
        self.proc: subprocess.Popen | None = None
        self.log_path = base / "comfyui.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> ComfyServer:
        cmd = [
            str(VENV_PYTHON),
            str(COMFYUI / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base),
            "--disable-api-nodes",
            "--preview-method",
            "taesd",
            *self.extra_args,
        ]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "2")
        env.update(self.env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, cwd=str(COMFYUI), stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited at start-up:\n{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/system_stats", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean-up code of the server runs."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)
        if getattr(self, "_log", None):
            self._log.close()

    def restart(self, timeout: float = 120.0) -> ComfyServer:
        self.stop()
        return self.start(timeout)


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

"""Shared fixtures: one real ComfyUI server per test session, tiny models, a real browser."""

from __future__ import annotations

import pytest

from harness.comfy_server import ComfyServer, make_base_directory
from harness.paths import ARTIFACTS
from harness.tiny_models import CHECKPOINT, ensure_tiny_models


@pytest.fixture(scope="session")
def tiny_models():
    return ensure_tiny_models()


@pytest.fixture(scope="session")
def checkpoint_name(tiny_models) -> str:
    return CHECKPOINT


@pytest.fixture(scope="session")
def comfy(tmp_path_factory, tiny_models):
    """The shared server: tests that only queue prompts and read results use this one."""
    base = make_base_directory(tmp_path_factory.mktemp("comfy-shared"), tiny_models)
    server = ComfyServer(base).start()
    yield server
    server.stop()


@pytest.fixture
def own_comfy(tmp_path, tiny_models):
    """A server of the test's own, for tests that kill, restart or fill its folders."""
    servers: list[ComfyServer] = []

    def factory(**kwargs) -> ComfyServer:
        base = make_base_directory(tmp_path / "comfy", tiny_models)
        server = ComfyServer(base, **kwargs).start()
        servers.append(server)
        return server

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    from harness.browser import launch

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

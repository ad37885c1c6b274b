"""Test harness: a real ComfyUI server, graph helpers, tiny models and a real browser."""

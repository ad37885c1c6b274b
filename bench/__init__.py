"""comfy-papa's benchmarks: scripts that print tables and write bench/results/*.json; not tests.

A package: the scripts import each other and the pack as packages (`from .digits_baselines import
...`, `comfy_papa`), and tests import them as `bench.digits`. Run one from the repository root as a
module or by its path, the same:

    .host/venv/bin/python -m bench.digits --rounds 2 ...
    .host/venv/bin/python bench/digits.py --rounds 2 ...     # re-runs itself as the module
"""

"""Write locales/en/nodeDefs.json and main.json from the nodes as a real server declares them.

    .host/venv/bin/python scripts/build_locales.py           start a server, (re)write the files
    .host/venv/bin/python scripts/build_locales.py --check   exit 1 if the files are out of date
    .host/venv/bin/python scripts/build_locales.py --url http://127.0.0.1:8188
                                                             read a running server instead

The English strings are the nodes' own (display name, description, input and output names and
tooltips from /object_info), so the English files are the template a translator copies to
locales/<lang>/ and translates. The layout is the one ComfyUI's frontend reads for custom nodes
(the server merges locales/<lang>/main.json and nodeDefs.json into /i18n):

    nodeDefs.json  {NodeId: {display_name, description,
                             inputs: {input: {name, tooltip}},
                             outputs: {"0": {name, tooltip}}}}
    main.json      {nodeCategories: {segment: text}, dataTypes: {TYPE: text}}

as the frontend's own nodeDefs.json writes them: an output's "name" only where it differs from its
type (else the frontend shows dataTypes.<TYPE>), keys with "." replaced by "_" (the frontend's
normalizeI18nKey), and "control after generate" for the control widget a seed input gets.
After changing a node's inputs, outputs or tooltips run this script; tests/host/test_locales.py
fails while the files are out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCALE_DIR = REPO / "locales" / "en"
ANCHOR = "PAPAProfile"  # a node of the pack: its python_module names the pack's folder
SEED_NAMES = {"seed", "noise_seed"}  # INT inputs the frontend gives a control widget by name


def key(name: str) -> str:
    """The frontend's normalizeI18nKey: '.' would split the i18n path."""
    return name.replace(".", "_")


def pack_ids(object_info: dict) -> list[str]:
    """The pack's node ids: those loaded from the same custom_nodes folder as ANCHOR."""
    module = object_info.get(ANCHOR, {}).get("python_module")
    if not module or not module.startswith("custom_nodes."):
        return []
    return sorted(k for k, v in object_info.items() if v.get("python_module") == module)


def _node_inputs(info: dict) -> dict:
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    order = info.get("input_order", {})
    names = [*order.get("required", []), *order.get("optional", [])] or list(specs)
    out: dict = {}
    has_control = False
    for name in names:
        spec = specs[name]
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        entry = {"name": opts.get("display_name") or name}  # the label the node shows
        if opts.get("tooltip"):
            entry["tooltip"] = opts["tooltip"]
        out[key(name)] = entry
        if spec[0] == "INT" and (opts.get("control_after_generate") or name in SEED_NAMES):
            has_control = True
    if has_control:
        out["control_after_generate"] = {"name": "control after generate"}
    return out


def _node_outputs(info: dict) -> dict:
    out: dict = {}
    tooltips = info.get("output_tooltips") or []
    for i, (typ, name) in enumerate(zip(info["output"], info["output_name"], strict=True)):
        entry: dict = {}
        if name != typ:
            entry["name"] = name
        tip = tooltips[i] if i < len(tooltips) else None
        if tip:
            entry["tooltip"] = tip
        if entry:
            out[str(i)] = entry
    return out


def node_defs(object_info: dict) -> dict:
    """The pack's nodes in the frontend's nodeDefs layout, sorted by node id."""
    defs = {}
    for node_id in pack_ids(object_info):
        info = object_info[node_id]
        entry: dict = {"display_name": info.get("display_name") or node_id}
        if info.get("description"):
            entry["description"] = info["description"]
        entry["inputs"] = _node_inputs(info)
        outputs = _node_outputs(info)
        if outputs:
            entry["outputs"] = outputs
        defs[key(node_id)] = entry
    return defs


def _types(info: dict) -> set[str]:
    found = {t for t in info.get("output", []) if isinstance(t, str)}
    for group in ("required", "optional"):
        for spec in info["input"].get(group, {}).values():
            if isinstance(spec[0], str):
                found.add(spec[0])
    return found


def main_strings(object_info: dict) -> dict:
    """Category path segments of the pack's nodes and the socket types only the pack defines."""
    ids = set(pack_ids(object_info))
    pack = [object_info[k] for k in sorted(ids)]
    others = set().union(*(_types(v) for k, v in object_info.items() if k not in ids))
    categories = sorted({seg for v in pack for seg in v.get("category", "").split("/") if seg})
    types = sorted(set().union(*(_types(v) for v in pack)) - others - {"COMBO"})
    return {
        "nodeCategories": {key(c): c for c in categories},
        "dataTypes": {key(t): t for t in types},
    }


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def expected_files(object_info: dict) -> dict[Path, str]:
    return {
        LOCALE_DIR / "nodeDefs.json": render(node_defs(object_info)),
        LOCALE_DIR / "main.json": render(main_strings(object_info)),
    }


def _fetch(url: str) -> dict:
    import requests

    return requests.get(url.rstrip("/") + "/object_info", timeout=120).json()


def _object_info(url: str | None) -> dict:
    if url:
        return _fetch(url)
    sys.path.insert(0, str(REPO / "tests"))
    from harness.comfy_server import ComfyServer, make_base_directory

    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(make_base_directory(Path(tmp), None)).start()
        try:
            return _fetch(server.url)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--url", help="a running ComfyUI with this pack (default: start one)")
    ap.add_argument("--check", action="store_true", help="only report files that are stale")
    args = ap.parse_args(argv)
    info = _object_info(args.url)
    if not pack_ids(info):
        print(f"{ANCHOR} is not in /object_info: is the pack installed?", file=sys.stderr)
        return 2
    stale = []
    for path, text in expected_files(info).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path.relative_to(REPO)}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

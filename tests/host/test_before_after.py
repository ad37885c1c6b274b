"""PAPA Before / After: the same seeds from the base and the personalised model, one grid."""

import numpy as np
from papa_graphs import SIZE, base_nodes, labelled_round
from PIL import Image

from harness.graph import Graph, run

SHOWN = 4  # the node shows SIZE (32 px) pictures enlarged 4x, pixel-sharp, to 128 px


def _grid(server, result, node_id="ba") -> np.ndarray:
    """The grid the node shows, at the pictures' own size (every SHOWN x SHOWN block one pixel)."""
    info = result.outputs[node_id]["images"][0]
    path = server.base / "temp" / info["subfolder"] / info["filename"]
    shown = np.asarray(Image.open(path)).astype(np.float32)
    grid = shown[::SHOWN, ::SHOWN]
    assert shown.shape[:2] == (grid.shape[0] * SHOWN, grid.shape[1] * SHOWN), shown.shape
    enlarged = grid.repeat(SHOWN, axis=0).repeat(SHOWN, axis=1)
    assert np.array_equal(shown, enlarged), "shown enlarged pixel-sharp (nearest neighbour)"
    return grid


def _before_after(checkpoint, profile, count=3, seed=5):
    g = Graph()
    ckpt, pos, neg, empty = base_nodes(g, checkpoint)
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
    personal = g.node("PAPAApplyProfile", model=ckpt[0], profile=prof[0], strength=1.0)
    g.node(
        "PAPABeforeAfter",
        node_id="ba",
        base_model=ckpt[0],
        personalised_model=personal[0],
        positive=pos[0],
        negative=neg[0],
        latent=empty[0],
        vae=ckpt[2],
        count=count,
        seed=seed,
        steps=3,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
    )
    return g


def _rows(img: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    gap = 4
    h = (img.shape[0] - gap) // 2
    assert img.shape[1] == count * (SIZE + gap) - gap and h == SIZE, img.shape
    return img[:h], img[h + gap :]


def test_rows_match_before_training_and_differ_after(comfy, checkpoint_name):
    r = run(comfy.url, _before_after(checkpoint_name, "ba-fresh"), timeout=900)
    assert r.ok, r.error()
    top, bottom = _rows(_grid(comfy, r), 3)
    assert np.abs(top - bottom).max() <= 1, "a profile with no round is the base model"
    assert np.abs(top[:, :SIZE] - top[:, SIZE + 4 : 2 * SIZE + 4]).mean() > 1, "seeds differ"

    trained = run(
        comfy.url,
        labelled_round(checkpoint_name, "ba-trained", "+ - + -", steps=6, learning_rate=2e-2),
        timeout=900,
    )
    assert trained.ok, trained.error()
    r = run(comfy.url, _before_after(checkpoint_name, "ba-trained"), timeout=900)
    assert r.ok, r.error()
    top2, bottom2 = _rows(_grid(comfy, r), 3)
    assert np.abs(top2 - top).max() <= 1, "the top row is the base model at the same seeds"
    assert np.abs(top2 - bottom2).mean() > 0.5, "the personalised row shows the change"

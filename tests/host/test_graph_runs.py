"""A real graph runs through POST /prompt: checkpoint -> candidate sampler -> VAE decode."""

import requests
from PIL import Image

from harness.graph import Graph, run


def test_candidate_sampler_graph_produces_images(comfy, checkpoint_name):
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint_name)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text="a red fox")
    neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")
    empty = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    cand = g.node(
        "PAPACandidateSampler",
        model=ckpt[0],
        positive=pos[0],
        negative=neg[0],
        latent=empty[0],
        count=3,
        seed=7,
        steps=4,
        cfg=2.0,
        sampler_name="euler",
        scheduler="normal",
    )
    dec = g.node("VAEDecode", samples=cand[0], vae=ckpt[2])
    g.node("SaveImage", node_id="save", images=dec[0], filename_prefix="papa_test")
    result = run(comfy.url, g, timeout=300)
    assert result.ok, result.error()
    images = result.outputs["save"]["images"]
    assert len(images) == 3
    r = requests.get(comfy.url + "/view", params=images[0], timeout=30)
    assert r.ok
    from io import BytesIO

    img = Image.open(BytesIO(r.content))
    assert img.size == (64, 64)


def test_ksampler_graph_runs_on_tiny_checkpoint(comfy, checkpoint_name):
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint_name)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text="a red fox")
    empty = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    ks = g.node(
        "KSampler",
        model=ckpt[0],
        positive=pos[0],
        negative=pos[0],
        latent_image=empty[0],
        seed=1,
        steps=4,
        cfg=1.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=1.0,
    )
    dec = g.node("VAEDecode", samples=ks[0], vae=ckpt[2])
    g.node("SaveImage", node_id="save", images=dec[0], filename_prefix="papa_ks")
    result = run(comfy.url, g, timeout=300)
    assert result.ok, result.error()
    assert len(result.outputs["save"]["images"]) == 1

"""LoRA interchange with a real ComfyUI server, both ways, on the tiny SD1.5 checkpoint.

ComfyUI's denoiser output is read back from the server: one euler step of KSamplerAdvanced from a
given latent at the schedule's largest sigma down to sigma 0 returns the model's denoised latent
(x + (0 - sigma) (x - denoised) / sigma = denoised), divided by the SD1.5 latent scale. The prompt
is zeroed (ConditioningZeroOut) so both sides see the same cross-attention context.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from host.papa_graphs import SIZE, labelled_round
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file
from tiny_sd15 import SD15_SCALE

from comfy_papa.diffusers import Denoiser, PapaSession, load_lora
from harness.graph import Graph, run
from harness.outputs import saved_latent, ui_text

LATENT = SIZE // 8


def _pipeline(unet, scheduler) -> StableDiffusionPipeline:
    """An SD1.5 pipeline around the UNet (no text encoder or VAE needed to load a UNet LoRA)."""
    return StableDiffusionPipeline(
        vae=None,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _input_latent(server, name: str, seed: int) -> torch.Tensor:
    """A latent at the largest sigma, saved in the server's input folder for LoadLatent."""
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn((1, 4, LATENT, LATENT), generator=gen) * 14.6 / SD15_SCALE
    (server.base / "input").mkdir(exist_ok=True)
    save_file(
        {"latent_tensor": latent, "latent_format_version_0": torch.tensor([])},
        str(server.base / "input" / f"{name}.latent"),
    )
    return latent


def _comfy_denoised(server, checkpoint, latent_name, models: dict) -> dict[str, torch.Tensor]:
    """Denoised latent of each MODEL built by models[tag](graph, ckpt) at sigma_max."""
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    text = g.node("CLIPTextEncode", clip=ckpt[1], text="a red fox")
    zero = g.node("ConditioningZeroOut", conditioning=text[0])
    lat = g.node("LoadLatent", latent=f"{latent_name}.latent")
    for tag, build in models.items():
        ks = g.node(
            "KSamplerAdvanced",
            model=build(g, ckpt),
            add_noise="disable",
            noise_seed=0,
            steps=1,
            cfg=1.0,
            sampler_name="euler",
            scheduler="normal",
            positive=zero[0],
            negative=zero[0],
            latent_image=lat[0],
            start_at_step=0,
            end_at_step=10000,
            return_with_leftover_noise="disable",
        )
        g.node("SaveLatent", node_id=tag, samples=ks[0], filename_prefix=f"{latent_name}_{tag}")
    r = run(server.url, g)
    assert r.ok, r.error()
    return {tag: saved_latent(server, r, tag) for tag in models}


def _diffusers_denoised(unet, scheduler, latent: torch.Tensor) -> torch.Tensor:
    den = Denoiser(unet, scheduler)
    t = torch.tensor([len(den.sigmas) - 1])
    x = latent * SD15_SCALE  # ComfyUI's process_latent_in; VE form at sigma_max
    with torch.no_grad():
        x0 = den(x, t, torch.zeros(1, 77, 768))
    return x0 / SD15_SCALE


def _lora_loader(name):
    return lambda g, ckpt: g.node(
        "LoraLoaderModelOnly", model=ckpt[0], lora_name=name, strength_model=1.0
    )[0]


def _close(a, b, what):
    err = (a - b).abs().max().item()
    scale = b.abs().max().item()
    assert err <= 1e-4 * scale + 1e-4, f"{what}: max |diff| {err:.3g} (scale {scale:.3g})"


@pytest.fixture(scope="module")
def comfy_trained_lora(comfy, checkpoint_name):
    """A PAPA round trained by the real ComfyUI nodes, exported with PAPA Export LoRA."""
    r = run(
        comfy.url,
        labelled_round(
            checkpoint_name, "dif-from-comfy", "+ - + - + -", learning_rate=1e-2, steps=6
        ),
    )
    assert r.ok, r.error()
    g = Graph()
    prof = g.node("PAPAProfile", name="dif-from-comfy", rollback_to_round=-1, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_")
    r = run(comfy.url, g)
    assert r.ok, r.error()
    return json.loads(ui_text(r, "export"))["lora"]


def test_comfy_lora_loads_in_diffusers_with_the_same_denoiser_output(
    comfy, checkpoint_name, comfy_trained_lora, tiny_sd15_unet_factory, sd15_scheduler
):
    latent = _input_latent(comfy, "c2d", seed=3)
    out = _comfy_denoised(
        comfy,
        checkpoint_name,
        "c2d",
        {
            "base": lambda g, ckpt: ckpt[0],
            "lora": _lora_loader(comfy_trained_lora),
            "profile": lambda g, ckpt: g.node(
                "PAPAApplyProfile",
                model=ckpt[0],
                profile=g.node(
                    "PAPAProfile", name="dif-from-comfy", rollback_to_round=-1, reset=False
                )[0],
                strength=1.0,
            )[0],
        },
    )
    _close(out["lora"], out["profile"], "ComfyUI LoraLoader vs PAPA Apply Profile")

    base_unet = tiny_sd15_unet_factory()
    _close(_diffusers_denoised(base_unet, sd15_scheduler, latent), out["base"], "base models")

    pipe = _pipeline(tiny_sd15_unet_factory(), sd15_scheduler)
    lora_sd = load_file(str(comfy.base / "models" / "loras" / comfy_trained_lora))
    load_lora(pipe, lora_sd)
    adapted = _diffusers_denoised(pipe.unet, sd15_scheduler, latent)
    _close(adapted, out["profile"], "diffusers + exported LoRA vs ComfyUI personalised MODEL")
    assert (out["profile"] - out["base"]).abs().max() > 1e-2, "the adapter must matter"
    n_modules = sum(k.endswith(".lora_up.weight") for k in lora_sd)
    assert sum(isinstance(m, BaseTunerLayer) for m in pipe.unet.modules()) == n_modules

    # The profile itself, opened by the diffusers backend, gives the same personalised model.
    session = PapaSession.open(
        comfy.base / "models" / "papa_profiles",
        "dif-from-comfy",
        tiny_sd15_unet_factory(),
        sd15_scheduler,
        create=False,
    )
    assert session.adapter.naming == "ldm"
    _close(
        _diffusers_denoised(session.denoiser.unet, sd15_scheduler, latent),
        out["profile"],
        "diffusers session on the ComfyUI profile",
    )


def test_diffusers_trained_lora_loads_in_comfy_loraloader(
    comfy, checkpoint_name, tmp_path, tiny_sd15_unet_factory, sd15_scheduler
):
    pipe = _pipeline(tiny_sd15_unet_factory(), sd15_scheduler)
    session = PapaSession.open(
        tmp_path, "from-diffusers", pipe, rank=4, alpha=2.0, latent_scale=SD15_SCALE
    )
    context = torch.zeros(1, 77, 768)
    cand = session.sample(6, seed=1, steps=4, context=context, size=LATENT)
    session.give_labels(cand.ids, [1, -1, 1, -1, 1, -1])
    stats = session.finetune(steps=6, learning_rate=1e-2, batch_size=6, timesteps_per_sample=2)
    assert stats["round"] == 1 and session.profile.round == 1

    loras = comfy.base / "models" / "loras"
    for fmt in ("kohya", "comfy"):
        session.export_lora(loras / f"papa_diffusers_{fmt}.safetensors", format=fmt)
    latent = _input_latent(comfy, "d2c", seed=4)
    out = _comfy_denoised(
        comfy,
        checkpoint_name,
        "d2c",
        {
            "base": lambda g, ckpt: ckpt[0],
            "kohya": _lora_loader("papa_diffusers_kohya.safetensors"),
            "comfy": _lora_loader("papa_diffusers_comfy.safetensors"),
        },
    )
    mine = _diffusers_denoised(pipe.unet, sd15_scheduler, latent)
    _close(out["kohya"], mine, "ComfyUI LoraLoader (kohya export) vs diffusers session")
    _close(out["comfy"], mine, "ComfyUI LoraLoader (ComfyUI-layout export) vs diffusers session")
    assert (out["base"] - mine).abs().max() > 1e-2, "the adapter must matter"

    # And back: the kohya export loads into a fresh diffusers pipeline with the same output.
    again = _pipeline(tiny_sd15_unet_factory(), sd15_scheduler)
    load_lora(again, loras / "papa_diffusers_kohya.safetensors")
    _close(_diffusers_denoised(again.unet, sd15_scheduler, latent), mine, "kohya round trip")

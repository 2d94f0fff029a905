"""A synthetic world for the tests: captioned images of coloured shapes and a tiny CLIP.

The tiny CLIP is OpenAI's own `clip.model.CLIP` class in a small configuration, trained
contrastively for about a minute on images like "a photo of a red circle". It is saved as a
checkpoint file and loaded through the same code path as a user's checkpoint, so the tests
exercise the real pipeline with a model whose zero-shot and few-shot accuracy is measurable.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

import clip
from clip.model import CLIP

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 230),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 190),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
CAPTIONS = (
    "a photo of a {}.",
    "a {}.",
    "a picture of the {}.",
    "an image of a small {}.",
    "a drawing of a {}.",
)
RESOLUTION = 32
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
_MEAN, _STD = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)


def all_classes() -> list[str]:
    return [f"{c} {s}" for c in COLORS for s in SHAPES]


def render(name: str, rng: random.Random, size: int = RESOLUTION) -> Image.Image:
    """Draw one image of class `name` ("<colour> <shape>") on a noisy grey background."""
    color, shape = name.split()
    bg = rng.randint(60, 200)
    noise = np.random.default_rng(rng.getrandbits(32)).integers(-25, 26, (size, size, 3))
    img = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    rgb = tuple(int(np.clip(v + rng.randint(-25, 25), 0, 255)) for v in COLORS[color])
    s = rng.uniform(0.35, 0.7) * size
    x0, y0 = rng.uniform(0, size - s), rng.uniform(0, size - s)
    x1, y1 = x0 + s, y0 + s
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=rgb)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=rgb)
    elif shape == "triangle":
        draw.polygon(((x0 + s / 2, y0), (x0, y1), (x1, y1)), fill=rgb)
    else:
        w = s / 3
        draw.rectangle((x0 + w, y0, x0 + 2 * w, y1), fill=rgb)
        draw.rectangle((x0, y0 + w, x1, y0 + 2 * w), fill=rgb)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - _MEAN) / _STD


def tiny_clip(embed_dim: int = 64) -> CLIP:
    """The real CLIP architecture, small: a 2-layer ViT on 32x32 images, a 2-layer text transformer."""
    return CLIP(
        embed_dim=embed_dim,
        image_resolution=RESOLUTION,
        vision_layers=2,
        vision_width=64,
        vision_patch_size=8,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=2,
    )


def train_tiny_clip(steps: int = 600, batch: int = 96, seed: int = 0, classes: list[str] | None = None) -> CLIP:
    """Contrastive training on freshly drawn captioned images; about a minute on 2 CPU cores."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    classes = classes or all_classes()
    model = tiny_clip()
    # Token ids of every caption of every class, computed once.
    captions = [[t.format(c) for t in CAPTIONS] for c in classes]
    tokens = clip.tokenize([c for caps in captions for c in caps]).view(len(classes), len(CAPTIONS), -1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        cls = [rng.randrange(len(classes)) for _ in range(batch)]
        images = torch.stack([to_tensor(render(classes[c], rng)) for c in cls])
        text = torch.stack([tokens[c, rng.randrange(len(CAPTIONS))] for c in cls])
        img_f = F.normalize(model.encode_image(images), dim=-1)
        txt_f = F.normalize(model.encode_text(text), dim=-1)
        logits = model.logit_scale.exp() * img_f @ txt_f.t()
        # Several images in a batch may share a class: every caption of the same class is a positive.
        target = torch.tensor(cls)
        same = (target[:, None] == target[None, :]).float()
        same = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, same) + F.cross_entropy(logits.t(), same)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def save_checkpoint(model: CLIP, path: Path, torchscript: bool = False) -> Path:
    """Save as OpenAI does (a TorchScript archive) or as a plain state-dict file."""
    path = Path(path)
    if torchscript:
        image = torch.zeros(1, 3, RESOLUTION, RESOLUTION)
        text = clip.tokenize(["a photo"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing CLIP warns about shape checks it freezes
            torch.jit.trace(model, (image, text), check_trace=False).save(str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


def open_clip_config(model: CLIP) -> dict:
    """The tiny CLIP's architecture in open_clip's terms (its `CLIP` class with QuickGELU, as
    OpenAI's models use, keeps OpenAI's state-dict layout) and CLIP's preprocessing."""
    width = model.visual.conv1.out_channels
    return {"model_cfg": {"embed_dim": int(model.text_projection.shape[1]), "quick_gelu": True,
                          "vision_cfg": {"image_size": RESOLUTION, "layers": len(model.visual.transformer.resblocks),
                                         "width": width, "patch_size": model.visual.conv1.kernel_size[0],
                                         "head_width": width},  # one attention head, as the tiny CLIP has
                          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": model.transformer.width,
                                       "heads": 1, "layers": len(model.transformer.resblocks)}},
            "preprocess_cfg": {"mean": list(MEAN), "std": list(STD),
                               "interpolation": "bicubic", "resize_mode": "shortest"}}


def save_open_clip(model: CLIP, folder: Path) -> Path:
    """The trained tiny CLIP in open_clip's `local-dir` layout (`open_clip:local-dir:<folder>`):
    its config and its weights, which open_clip's own model class then runs."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(open_clip_config(model), indent=1))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


def write_image_folder(root: Path, classes, per_class: int, seed: int, fmt: str = "jpg") -> Path:
    """Write `root/<folder>/<i>.<fmt>` images. `classes` lists class names ("red circle", in
    folder `red_circle`) or maps folder names to the class drawn in them."""
    rng = random.Random(seed)
    folders = classes if isinstance(classes, dict) else {c.replace(" ", "_"): c for c in classes}
    for folder_name, name in folders.items():
        folder = Path(root) / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            render(name, rng, size=rng.choice((32, 48, 64))).save(folder / f"{i:03d}.{fmt}", quality=95)
    return Path(root)


def feature_blobs(n_per_class: int, seed: int, classes: int, dim: int, spread: float = 1.0):
    """Synthetic L2-normalised features and int labels: `classes` Gaussian clusters around
    fixed random centres (always drawn from seed 0), `n_per_class` samples each drawn from
    `seed`, with noise `spread` times the centres' scale."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(0).normal(size=(classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    x = means[y] + spread * rng.normal(size=(len(y), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y

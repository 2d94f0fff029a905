import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the `synthetic` helper module

import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The classes of the synthetic few-shot task: one per colour, shapes mixed.
CLASSES = ["red circle", "green square", "blue triangle", "yellow cross", "purple circle", "orange square"]
# The same task with one class named with a word the tiny CLIP never saw ("crimson"): zero-shot
# gets that class wrong, as real CLIP does with names it knows poorly, and few shots repair it.
FOLDERS = {("crimson_circle" if c == "red circle" else c.replace(" ", "_")): c for c in CLASSES}


@pytest.fixture(scope="session")
def tiny_clip():
    """A tiny CLIP trained for about a minute on captioned coloured shapes (all 24 classes)."""
    return synthetic.train_tiny_clip(steps=300, seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_clip, tmp_path_factory) -> Path:
    """The tiny CLIP saved as a plain state-dict file, as a user's own checkpoint would be."""
    return synthetic.save_checkpoint(tiny_clip, tmp_path_factory.mktemp("ckpt") / "tiny-clip.pt")


@pytest.fixture(scope="session")
def tiny_open_clip(tiny_clip, tmp_path_factory) -> str:
    """The tiny CLIP's trained weights as an open_clip model (`local-dir` layout): its `model` name."""
    return "open_clip:local-dir:" + str(synthetic.save_open_clip(tiny_clip, tmp_path_factory.mktemp("open_clip") / "tiny"))


@pytest.fixture(scope="session")
def random_vit_s_32(tmp_path_factory) -> Path:
    """open_clip's ViT-S-32 (63 M parameters) with random weights, as a state-dict file."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from random_checkpoint import random_open_clip

    path = tmp_path_factory.mktemp("open_clip_random") / "vit-s-32-random.pt"
    random_open_clip("ViT-S-32", path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint_ts(tiny_clip, tmp_path_factory) -> Path:
    """The tiny CLIP saved as a TorchScript archive, the format of OpenAI's checkpoints."""
    return synthetic.save_checkpoint(tiny_clip, tmp_path_factory.mktemp("ckpt") / "tiny-clip-ts.pt",
                                     torchscript=True)

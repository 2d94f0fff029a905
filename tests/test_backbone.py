import urllib.error

import numpy as np
import pytest
import torch

from fewclip import UserError
from fewclip.backbone import LazyBackbone, load_backbone
from fewclip.backbone.openai import MEAN, STD, _torchscript
from fewclip.embedding import embed_images
from helpers import ROOT
from synthetic import RESOLUTION, render, to_tensor


def test_state_dict_and_torchscript_checkpoints_load_to_the_same_frozen_model(tiny_checkpoint, tiny_checkpoint_ts):
    a = load_backbone(str(tiny_checkpoint), device="cpu")
    b = load_backbone(str(tiny_checkpoint_ts), device="cpu")
    for bb in (a, b):
        assert not bb.model.training
        assert not any(p.requires_grad for p in bb.model.parameters())
        assert bb.resolution == RESOLUTION and bb.dim == 64 and (bb.mean, bb.std) == (MEAN, STD)
        assert len(bb.sha256) == 64 and bb.family == "openai"
    assert a.sha256 != b.sha256  # identified by file content
    import random
    x = torch.stack([to_tensor(render("red circle", random.Random(i))) for i in range(4)])
    fa, fb = a.encode_images(x), b.encode_images(x)
    assert torch.allclose(fa, fb, atol=1e-3)  # both were stored from the same (fp16-rounded) weights
    assert torch.allclose(fa.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_only_torchscript_archives_are_tried_as_torchscript(tiny_checkpoint, tiny_checkpoint_ts, tmp_path):
    assert _torchscript(str(tiny_checkpoint_ts)) and not _torchscript(str(tiny_checkpoint))
    other = tmp_path / "other.pt"  # TorchScript, but not CLIP: neither way reads it
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(other))
    assert _torchscript(str(other))
    with pytest.raises(UserError, match=r"other\.pt: not a CLIP checkpoint"):
        load_backbone(str(other), device="cpu")


def test_unknown_model_name_says_what_to_do():
    with pytest.raises(UserError, match=r"^model='ViT-Q/99': neither a CLIP model name .*ViT-B/32.* nor an existing checkpoint"):
        load_backbone("ViT-Q/99", device="cpu")


def test_named_model_offline_fails_with_one_clear_line(tmp_path, monkeypatch):
    import clip.clip

    def no_network(url, root):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(clip.clip, "_download", no_network)
    with pytest.raises(UserError) as err:
        load_backbone("ViT-B/32", device="cpu", download_root=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg
    assert "'ViT-B/32'" in msg and str(tmp_path) in msg and "ViT-B-32.pt" in msg
    assert "Name or service not known" in msg and "checkpoint's path" in msg
    # and the way to try the pipeline without real weights, with a command that exists
    assert "python benchmarks/random_checkpoint.py ViT-B/32 /tmp/random.pt" in msg
    assert (ROOT / "benchmarks" / "random_checkpoint.py").is_file()


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match=r"weights\.pt: not a CLIP checkpoint"):
        load_backbone(str(bad), device="cpu")


def test_embed_images_marks_unreadable_files_and_keeps_the_rest(tiny_checkpoint, tmp_path):
    import random
    good = tmp_path / "good.png"
    render("blue square", random.Random(0)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    bb = load_backbone(str(tiny_checkpoint), device="cpu")
    feats, errors = embed_images(bb, [str(good), str(bad), str(good)], batch_size=2)
    assert feats.shape == (3, 64)
    assert errors[0] == errors[2] == "" and "not an image" in errors[1]
    assert np.allclose(feats[0], feats[2], atol=1e-6) and np.allclose(np.linalg.norm(feats[0]), 1, atol=1e-5)
    assert not feats[1].any()


def test_a_lazy_backbone_knows_its_identity_and_tokenizer_without_loading(tiny_checkpoint):
    lazy = LazyBackbone(str(tiny_checkpoint), device="cpu")
    assert lazy.family == "openai" and len(lazy.sha256) == 64 and lazy.context_length == 77
    assert lazy.count_tokens("a photo of a bus.") == 8  # 6 tokens, the start and the end and "openai-clip==" in lazy.tokenizer_id
    assert lazy.loaded is None  # none of that loaded the weights
    assert lazy.dim == 64 and lazy.loaded is not None  # the feature width needs them
    with pytest.raises(AttributeError):
        lazy.no_such_attribute  # noqa: B018 - an unknown attribute is an error, not a load


def test_a_cuda_error_while_loading_is_not_taken_for_a_failed_download(tiny_checkpoint_ts, tmp_path, monkeypatch):
    import clip

    from fewclip.backbone import openai

    def cuda_broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(clip, "load", cuda_broken)
    with pytest.raises(RuntimeError, match="CUDA error"):
        openai.load("ViT-B/32", torch.device("cpu"), str(tmp_path), "0" * 64)
    # nor, for a checkpoint file, for a file that is not CLIP's
    with pytest.raises(RuntimeError, match="CUDA error"):
        openai.load(str(tiny_checkpoint_ts), torch.device("cpu"), str(tmp_path), "0" * 64)

"""The open_clip family: names, identity, the bad inputs that each get one line, and the same
trained weights giving the same features through open_clip as through OpenAI's `clip`."""

import random
import sys

import pytest
import torch

import synthetic
from fewclip import SettingError, UserError
from fewclip.backbone import LazyBackbone, check_name, family_of, load_backbone, model_sha256
from fewclip.backbone import open_clip as family


@pytest.fixture
def random_small(random_vit_s_32):
    return random_vit_s_32


def test_the_same_weights_give_the_same_features_through_either_family(tiny_checkpoint, tiny_open_clip):
    ours, theirs = load_backbone(str(tiny_checkpoint), "cpu"), load_backbone(tiny_open_clip, "cpu")
    assert (ours.family, theirs.family) == ("openai", "open_clip")
    assert (theirs.resolution, theirs.dim, theirs.mean, theirs.std, theirs.resize) == \
        (ours.resolution, ours.dim, ours.mean, ours.std, ours.resize)
    assert theirs.logit_scale == pytest.approx(ours.logit_scale)
    images = [synthetic.render(c, random.Random(i), size=48) for i, c in enumerate(synthetic.all_classes())]
    a = ours.encode_images(torch.stack([ours.preprocess(im) for im in images]))
    b = theirs.encode_images(torch.stack([theirs.preprocess(im) for im in images]))
    assert (a * b).sum(-1).min() > 0.9999
    texts = [f"a photo of a {c}." for c in synthetic.all_classes()]
    assert (ours.encode_texts(texts) * theirs.encode_texts(texts)).sum(-1).min() > 0.9999
    assert theirs.count_tokens(texts[0]) == ours.count_tokens(texts[0]) and theirs.context_length == 77
    assert theirs.sha256 != ours.sha256 and theirs.tokenizer_id != ours.tokenizer_id


def test_a_weights_file_names_its_architecture_and_is_identified_by_both(random_small, tmp_path):
    name = f"open_clip:ViT-S-32:{random_small}"
    assert family_of(name) is family and family.parse(name) == ("ViT-S-32", str(random_small))
    bb = load_backbone(name, "cpu")
    assert (bb.resolution, bb.dim, bb.dtype) == (224, 384, torch.float32)
    f = bb.encode_images(torch.zeros(2, 3, 224, 224))
    assert f.shape == (2, 384) and torch.allclose(f.norm(dim=-1), torch.ones(2))
    copy = tmp_path / "same.pt"
    copy.write_bytes(random_small.read_bytes())
    assert model_sha256(f"open_clip:ViT-S-32:{copy}") == bb.sha256  # the content, not the path
    assert model_sha256(f"open_clip:ViT-S-32-alt:{copy}") != bb.sha256  # another architecture


def test_a_lazy_open_clip_backbone_knows_its_identity_without_the_weights(tiny_open_clip):
    lazy = LazyBackbone(tiny_open_clip, "cpu")
    assert lazy.family == "open_clip" and lazy.libraries == family.LIBRARIES
    assert lazy.context_length == 77 and lazy.count_tokens("a red circle") == 5 and lazy.loaded is None
    assert lazy.dim == 64 and lazy.loaded is not None


@pytest.mark.parametrize("name, message", [
    ("open_clip:ViT-B-32", "an open_clip name is open_clip:<architecture>:<pretrained tag or weights file>"),
    ("open_clip:ViT-X-32:openai", "open_clip has no architecture 'ViT-X-32'; did you mean ViT-S-32"),
    ("open_clip:ViT-B-32:laion5b", "'laion5b' is neither a pretrained tag of ViT-B-32 (openai, laion400m_e31"),
    ("open_clip:local-dir:/", "/ holds no open_clip_config.json"),
])
def test_a_bad_name_is_one_line_naming_the_model(name, message):
    with pytest.raises(SettingError) as e:
        check_name(name)
    assert e.value.setting == "model" and message in str(e.value) and "\n" not in str(e.value)


def test_weights_that_do_not_fit_the_architecture_are_named(random_small, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not weights")
    for path, arch in ((random_small, "ViT-B-32"), (junk, "ViT-S-32")):
        with pytest.raises(UserError, match=rf"^{path}: does not hold weights for open_clip's {arch}") as e:
            load_backbone(f"open_clip:{arch}:{path}", "cpu")
        assert "\n" not in str(e.value)


def test_a_hub_tag_without_network_fails_at_once(tmp_path, monkeypatch):
    import socket

    import huggingface_hub.constants

    def no_network(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", huggingface_hub.constants.HF_HUB_OFFLINE)
    with pytest.raises(UserError) as e:
        load_backbone("open_clip:ViT-B-32:laion2b_s34b_b79k", "cpu", download_root=str(tmp_path))
    assert str(e.value) == (
        f"cannot load 'open_clip:ViT-B-32:laion2b_s34b_b79k': its weights are not in {tmp_path} and the download "
        "failed (no network: huggingface.co does not resolve); on a machine without internet, copy the weights "
        "file here and set `model` to open_clip:ViT-B-32:<that file>")


def test_a_tokenizer_that_must_be_downloaded_says_so(monkeypatch):
    import open_clip

    def needs_hub(name, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    family.tokenizer.cache_clear(), family._open_clip_tokenizer.cache_clear()
    monkeypatch.setattr(open_clip, "get_tokenizer", needs_hub)
    try:
        with pytest.raises(UserError, match="its tokenizer must come from the Hugging Face hub and could not be "
                                            r"loaded \(OSError: We couldn't connect.*run once with network access"):
            LazyBackbone("open_clip:ViT-B-16-SigLIP:webli", "cpu")
    finally:
        family.tokenizer.cache_clear(), family._open_clip_tokenizer.cache_clear()


def test_without_open_clip_installed_the_line_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` raises ImportError
    with pytest.raises(UserError, match=r"open_clip models need the open_clip package, which is not installed: "
                                        r"pip install -e '\.\[open_clip\]'"):
        check_name("open_clip:ViT-B-32:openai")

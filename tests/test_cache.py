"""The per-image feature cache: incremental, content-keyed, and safe against kill -9."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fewclip.backbone import load_backbone
from fewclip.cache import PIXEL_MODULES, TEMP_PREFIX, FeatureCache, code_identity, pixels_identity
from fewclip.embedding import CacheStats, embed_cached, embed_images
from synthetic import write_image_folder

from helpers import env, truncated_jpeg

# Batched matrix products may round differently for different batch compositions (a resumed
# run batches the remaining images differently from a clean run): measured up to 1.5e-7.
ROUNDING = 1e-6


@pytest.fixture(scope="module")
def backbone(tiny_checkpoint):
    return load_backbone(str(tiny_checkpoint), device="cpu")


@pytest.fixture
def images(tmp_path):
    root = write_image_folder(tmp_path / "imgs", ["red circle", "blue square", "green triangle"], 8, seed=3)
    return sorted(str(p) for p in root.rglob("*.jpg"))


def cache_for(root, backbone):
    return FeatureCache(root, backbone.sha256, "float32", pixels_identity("cpu", "openai"))


def test_only_new_content_is_embedded(backbone, images, tmp_path):
    cache = cache_for(tmp_path / "cache", backbone)
    first = CacheStats()
    feats, errors = embed_cached(backbone, images, cache, batch_size=5, stats=first, progress=False)
    assert (first.embedded, first.cached) == (len(images), 0) and not any(errors)
    plain, _ = embed_images(backbone, images, batch_size=5, progress=False)
    assert np.array_equal(feats, plain)  # same batches, same numbers

    # Rename one, copy one (same content twice), add two new images.
    renamed = images[0].replace(".jpg", " renamed é.jpg")
    os.rename(images[0], renamed)
    copy = str(tmp_path / "copy.jpg")
    shutil.copy(images[1], copy)
    new = sorted(str(p) for p in write_image_folder(tmp_path / "new", ["red circle"], 2, seed=99).rglob("*.jpg"))
    paths = [renamed, *images[1:], copy, *new]
    second = CacheStats()
    again, errors = embed_cached(backbone, paths, cache, batch_size=5, stats=second, progress=False)
    assert (second.embedded, second.cached) == (2, len(images) + 1) and not any(errors)
    assert np.array_equal(again[: len(images)], feats)
    assert np.array_equal(again[len(images)], feats[1])
    fresh, _ = embed_images(backbone, new, batch_size=5, progress=False)
    assert np.allclose(again[-2:], fresh, atol=ROUNDING)
    assert len(cache) == len(images) + 2


def test_cache_is_per_checkpoint_and_precision(backbone, images, tmp_path):
    a = cache_for(tmp_path / "c", backbone)
    b = FeatureCache(tmp_path / "c", "0" * 64, "float32", pixels_identity("cpu", "openai"))
    c = FeatureCache(tmp_path / "c", backbone.sha256, "float16", pixels_identity("cpu", "openai"))
    embed_cached(backbone, images[:3], a, progress=False)
    assert len(a) == 3 and a.dir != b.dir and a.dir != c.dir
    stats = CacheStats()
    embed_cached(backbone, images[:3], b, stats=stats, progress=False)
    assert stats.embedded == 3  # another checkpoint's features are not reused


def test_unreadable_and_undecodable_files_are_reported_not_cached(backbone, images, tmp_path):
    cache = cache_for(tmp_path / "cache", backbone)
    broken = truncated_jpeg(tmp_path / "broken.jpg")
    folder_named_like_an_image = tmp_path / "folder.jpg"
    folder_named_like_an_image.mkdir()
    stats = CacheStats()
    feats, errors = embed_cached(backbone, [images[0], str(broken), str(folder_named_like_an_image)], cache,
                                 stats=stats, progress=False)
    assert errors[0] == "" and errors[1].startswith("cannot decode") and errors[2].startswith("cannot read")
    assert (stats.embedded, stats.failed) == (1, 2) and len(cache) == 1
    assert not feats[1:].any()


def test_a_corrupt_entry_is_recomputed(backbone, images, tmp_path):
    cache = cache_for(tmp_path / "cache", backbone)
    feats, _ = embed_cached(backbone, images[:2], cache, progress=False)
    entry = next(cache.dir.glob("*/*.npy"))
    entry.write_bytes(entry.read_bytes()[:20])  # e.g. a disk that filled up under another tool
    stats = CacheStats()
    again, _ = embed_cached(backbone, images[:2], cache, stats=stats, progress=False)
    assert (stats.embedded, stats.cached) == (1, 1)
    assert np.allclose(again, feats, atol=ROUNDING)


KILLABLE = """
import sys
from fewclip.backbone import load_backbone
from fewclip.cache import FeatureCache, pixels_identity
from fewclip.embedding import embed_cached
checkpoint, cache_dir, *paths = sys.argv[1:]
backbone = load_backbone(checkpoint, device="cpu")
cache = FeatureCache(cache_dir, backbone.sha256, "float32", pixels_identity("cpu", "openai"))
embed_cached(backbone, paths, cache, batch_size=2, progress=False)
print("finished")
"""


def test_kill_9_mid_run_then_resume_gives_the_clean_run_features(backbone, tiny_checkpoint, tmp_path):
    paths = sorted(str(p) for p in write_image_folder(
        tmp_path / "many", ["red circle", "blue square", "green triangle", "yellow cross"], 60, seed=5).rglob("*.jpg"))
    cache_dir = tmp_path / "cache"
    cache = cache_for(cache_dir, backbone)
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tiny_checkpoint), str(cache_dir), *paths],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(cache) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL and b"finished" not in out, err.decode()[-2000:]
    done = len(cache)
    assert 10 <= done < len(paths)
    for entry in cache.dir.glob("*/*.npy"):  # every entry that exists is whole
        assert np.load(entry).shape == (backbone.dim,)
    cache.prune_temp()
    assert not list(cache.dir.glob(f"*/{TEMP_PREFIX}*"))

    stats = CacheStats()
    resumed, errors = embed_cached(backbone, paths, cache, batch_size=2, stats=stats, progress=False)
    assert not any(errors) and (stats.cached, stats.embedded) == (done, len(paths) - done)
    clean, _ = embed_cached(backbone, paths, cache_for(tmp_path / "clean", backbone), batch_size=2, progress=False)
    assert np.allclose(resumed, clean, atol=ROUNDING)
    assert (resumed.argmax(1) == clean.argmax(1)).all()


def test_a_fully_cached_run_never_loads_the_backbone(tiny_checkpoint, images, tmp_path):
    """Images and class texts all cached: the features come back without loading the
    checkpoint, equal to the first run's; one new image makes it load."""
    from fewclip.backbone import LazyBackbone
    from fewclip.prompts import cached_logit_scale, text_classifier

    def run(paths):
        lazy = LazyBackbone(str(tiny_checkpoint), device="cpu")
        cache = FeatureCache(tmp_path / "cache", lazy.sha256, lazy.precision_key,
                             pixels_identity("cpu", "openai"))
        feats, _ = embed_cached(lazy, paths, cache, batch_size=8, progress=False)
        text = text_classifier(lazy, ["red circle", "blue square"], ["a photo of a {}."], cache=cache)
        return feats, text, cached_logit_scale(lazy, cache), lazy.loaded is not None

    feats, text, scale, loaded = run(images)
    assert loaded
    again, text_again, scale_again, loaded_again = run(images)
    assert not loaded_again
    assert np.array_equal(again, feats) and np.array_equal(text_again, text) and scale_again == scale
    new = sorted(str(p) for p in write_image_folder(tmp_path / "new", ["red circle"], 1, seed=5).rglob("*.jpg"))
    assert run(images + new)[3]


def test_the_pixel_path_is_part_of_the_key(backbone, images, tmp_path, monkeypatch):
    """Another decode route, an edited pixel module or another library version: another
    folder, so nothing computed another way is served."""
    cpu, gpu = pixels_identity("cpu", "openai"), pixels_identity("gpu", "openai")
    assert cpu != gpu and cpu == pixels_identity("cpu", "openai")
    a = FeatureCache(tmp_path / "c", backbone.sha256, "float32", cpu)
    embed_cached(backbone, images[:3], a, progress=False)
    stats = CacheStats()
    embed_cached(backbone, images[:3], FeatureCache(tmp_path / "c", backbone.sha256, "float32", gpu), stats=stats,
                 progress=False)
    assert stats.embedded == 3 and stats.cached == 0
    assert "pixels.py" in PIXEL_MODULES
    from importlib import metadata
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0-other" if name == "pillow" else real(name))
    assert pixels_identity("cpu", "openai") != cpu


def test_code_identity_follows_the_source(tmp_path, monkeypatch):
    import fewclip.cache

    package = tmp_path / "fewclip"
    package.mkdir()
    (package / "pixels.py").write_text("x = 1\n")
    monkeypatch.setattr(fewclip.cache, "__file__", str(package / "cache.py"))
    before = code_identity(["pixels.py"], ["numpy"])
    (package / "pixels.py").write_text("x = 2\n")
    assert code_identity(["pixels.py"], ["numpy"]) != before
    assert code_identity(["pixels.py"], ["numpy"], "gpu") != code_identity(["pixels.py"], ["numpy"], "cpu")


def test_a_folder_in_use_is_marked_so_old_ones_can_be_found_by_age(backbone, tmp_path):
    cache = cache_for(tmp_path / "c", backbone)
    cache.touch()
    os.utime(cache.dir, (0, 0))
    cache.touch()
    assert time.time() - cache.dir.stat().st_mtime < 60


def test_the_text_key_includes_the_tokenizer():
    """Another tokenizer (another family, or another version of openai-clip) gives other
    text keys; the same one the same keys."""
    from types import SimpleNamespace

    from fewclip import prompts
    from fewclip.backbone import openai

    ours = SimpleNamespace(tokenizer_id=openai.tokenizer().tokenizer_id)
    assert "openai-clip==" in ours.tokenizer_id
    other = SimpleNamespace(tokenizer_id=ours.tokenizer_id.replace("openai-clip==", "openai-clip==9."))
    assert prompts.text_identity(ours) == prompts.text_identity(SimpleNamespace(tokenizer_id=ours.tokenizer_id))
    assert prompts.text_identity(other) != prompts.text_identity(ours)

"""The Ray engine (`fewclip.ray_engine.embed_ray`) on a local Ray: the same features and the
same error strings as the local engine (`fewclip.embedding.embed_images`), also when an actor
is killed mid-run; one-line user errors when Ray is missing or the cluster unreachable."""

import sys
from pathlib import Path

import numpy as np
import pytest
import ray
import synthetic
from conftest import CLASSES
from helpers import truncated_jpeg

from fewclip import UserError
from fewclip.backbone import load_backbone, model_sha256
from fewclip.embedding import embed_images
from fewclip.ray_engine import KILL_ONCE_ENV, NOT_INSTALLED, embed_ray


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for this module (the engine must leave a Ray it did not start alone)."""
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """36 synthetic JPEGs and PNGs of varied sizes, a byte-identical copy, and bad files: a
    truncated JPEG, a text file named .jpg, an empty file, a missing path and a folder."""
    root = tmp_path_factory.mktemp("ray-images")
    synthetic.write_image_folder(root / "jpg", CLASSES, per_class=4, seed=1)
    synthetic.write_image_folder(root / "png", CLASSES[:3], per_class=4, seed=2, fmt="png")
    good = sorted(str(p) for p in root.rglob("*.*"))
    (root / "copy.jpg").write_bytes(Path(good[0]).read_bytes())
    truncated_jpeg(root / "truncated.jpg")
    (root / "text.jpg").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    bad = [root / "truncated.jpg", root / "text.jpg", root / "empty.png", root / "missing.jpg", root / "jpg"]
    paths = good + [str(root / "copy.jpg")]
    for i, b in enumerate(bad):  # spread the bad files over the batches
        paths.insert(7 * i + 3, str(b))
    return paths


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return str(tiny_checkpoint), model_sha256(str(tiny_checkpoint))


@pytest.fixture(scope="module")
def local_result(checkpoint, images):
    backbone = load_backbone(checkpoint[0], "cpu", None, checkpoint[1])
    return embed_images(backbone, images, batch_size=8, progress=False)


def check_same(result, local_result, images):
    (feats, errors), (want_feats, want_errors) = result, local_result
    assert feats.dtype == np.float32 and feats.shape == want_feats.shape == (len(images), 64)
    assert errors == want_errors
    bad = [i for i, e in enumerate(errors) if e]
    assert len(bad) == 5 and all(errors[i] for i in bad)
    assert {errors[i].split(":")[0] for i in bad} == {"cannot decode", "not an image (unrecognised file content)",
                                                      "cannot read"}
    np.testing.assert_allclose(feats, want_feats, rtol=0, atol=1e-5)
    good = [i for i in range(len(images)) if i not in bad]
    np.testing.assert_allclose(np.linalg.norm(feats[good], axis=1), 1.0, atol=1e-5)
    assert not feats[bad].any()


def test_same_features_and_errors_as_local(local_ray, checkpoint, images, local_result):
    result = embed_ray(*checkpoint, images, device="cpu", batch_size=8, progress=False)
    check_same(result, local_result, images)
    assert ray.is_initialized()  # a Ray the engine did not start is left running


def test_killed_actor_loses_and_duplicates_nothing(local_ray, checkpoint, images, local_result,
                                                    tmp_path, monkeypatch):
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    result = embed_ray(*checkpoint, images, batch_size=4, progress=False)
    assert marker.exists()  # an actor really died on its first batch
    check_same(result, local_result, images)


def test_empty_list_keeps_the_width(local_ray, checkpoint):
    feats, errors = embed_ray(*checkpoint, [], progress=False)
    assert feats.shape == (0, 64) and feats.dtype == np.float32 and errors == []


def test_bad_checkpoint_is_one_user_error(local_ray, tmp_path, images):
    bad = tmp_path / "not-a-checkpoint.pt"
    bad.write_text("hello")
    with pytest.raises(UserError, match="not a CLIP checkpoint"):
        embed_ray(str(bad), "0" * 64, images[:4], progress=False)


def test_ray_not_installed(monkeypatch, images):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError) as e:
        embed_ray("model.pt", "0" * 64, images, progress=False)
    assert str(e.value) == NOT_INSTALLED == "embed.engine: ray needs Ray: pip install -e '.[ray]'"


def test_unreachable_address(monkeypatch, images):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    with pytest.raises(UserError, match=r"^Ray cannot reach the Ray cluster at '127.0.0.1:1' \("):
        embed_ray("model.pt", "0" * 64, images, address="127.0.0.1:1", progress=False)


def test_the_embed_path_sends_only_uncached_images_and_never_loads_the_backbone(local_ray, checkpoint, images,
                                                                              local_result, tmp_path):
    """`embed.engine: ray` through `fewclip.embedding.embed_cached`: the cache still holds,
    what comes back is stored, and the driver never loads the checkpoint."""
    from fewclip.backbone import LazyBackbone
    from fewclip.cache import FeatureCache, pixels_identity
    from fewclip.embedding import CacheStats, embed_cached

    lazy = LazyBackbone(checkpoint[0], device="cpu")
    cache = FeatureCache(tmp_path / "cache", lazy.sha256, "float32", pixels_identity("cpu", "openai"))
    first = CacheStats()
    half = images[: len(images) // 2]
    embed_cached(lazy, half, cache, batch_size=8, progress=False, stats=first, engine="ray")
    second = CacheStats()
    result = embed_cached(lazy, images, cache, batch_size=8, progress=False, stats=second, engine="ray")
    check_same(result, local_result, images)
    good_half = sum(not e for e in local_result[1][: len(half)])
    assert first.embedded == good_half  # (copy.jpg, identical to a first-half photo, is a hit below)
    assert second.cached >= good_half and second.embedded + second.cached + second.failed == len(images)
    assert second.embedded == sum(not e for e in local_result[1]) - second.cached
    assert lazy.loaded is None

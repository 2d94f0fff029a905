"""fewclip.decode on the CPU: the GPU path's own code, with torchvision's CPU JPEG decoder
(libjpeg-turbo) in place of nvJPEG. Photos are synthetic (no data set needed)."""

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from fewclip import SettingError, decode
from fewclip.pixels import load_rgb
from fewclip.backbone.openai import MEAN, STD
from fewclip.decode import decode_jpegs, iter_batches, preprocess_batch, preprocess_tensor, resolve_decode
from fewclip.routing import RouteCounts, route
from fewclip.embedding import ImageFiles

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.clip import _transform
    from clip.model import VisionTransformer

RES = 224
# (width, height): landscape, portrait, square, extreme, smaller than RES, odd centre offsets
SIZES = [(640, 480), (480, 640), (300, 200), (224, 224), (225, 300), (1000, 250), (50, 60), (223, 400),
         (320, 240), (800, 600), (1024, 768), (299, 224), (224, 299), (151, 227), (400, 400), (640, 427),
         (427, 640), (96, 128), (1280, 720), (500, 333)]


def photo(w: int, h: int, seed: int) -> Image.Image:
    """A photo-like image: smooth colour field, sharp-edged shapes and lines, slight blur, sensor noise."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.4) * min(w, h)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + s, y + s * rng.uniform(0.5, 2)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    for _ in range(10):
        draw.line([tuple(rng.uniform(0, [w, h])) for _ in range(2)],
                  fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    pixels = np.asarray(img.filter(ImageFilter.GaussianBlur(0.7)), np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, quality=90, **options)
    return out.getvalue()


def with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """`data` with a marker segment inserted right after SOI."""
    return data[:2] + struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload + data[2:]


def patch_sof(data: bytes, marker: int | None = None, precision: int | None = None,
              size: tuple[int, int] | None = None, luma_sampling: int | None = None) -> bytes:
    """`data` with fields of its SOF0 segment changed (header only: for `route`)."""
    b = bytearray(data)
    at = data.index(b"\xff\xc0")
    if marker is not None:
        b[at + 1] = marker
    if precision is not None:
        b[at + 4] = precision
    if size is not None:
        b[at + 5:at + 9] = struct.pack(">HH", size[1], size[0])
    if luma_sampling is not None:
        b[at + 11] = luma_sampling
    return bytes(b)


def corrupt_scan(data: bytes) -> bytes:
    """A second SOF marker in the middle of the scan data, EOI intact: the header reads fine,
    libjpeg fails ("two SOF markers"); nvJPEG decodes it into garbage without an error (seen
    on an H200, benchmarks/device_embed.py), so `route` must send it to the CPU path."""
    mid = (data.index(b"\xff\xda") + len(data)) // 2
    return data[:mid] + b"\xff\xc0\x00\x11" + data[mid + 4:]


def exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


BASE = photo(160, 120, 0)
PLAIN = jpeg(BASE)
BIG_ENDIAN_EXIF_6 = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + b"\0" * 4
XMP = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><tiff:Orientation>{}</tiff:Orientation></x:xmpmeta>"
ADOBE_TRANSFORM_0 = b"Adobe\x00\x64\x00\x00\x00\x00\x00"

ROUTES = {
    "baseline": (PLAIN, "gpu"),
    "progressive": (jpeg(BASE, progressive=True), "gpu"),
    "grey": (jpeg(BASE.convert("L")), "gpu"),
    "grey, Adobe transform 0": (with_segment(jpeg(BASE.convert("L")), 0xEE, ADOBE_TRANSFORM_0), "gpu"),
    "4:4:4": (jpeg(BASE, subsampling=0), "gpu"),
    "PNG": (jpeg(BASE, "PNG"), "not a JPEG"),
    "empty": (b"", "not a JPEG"),
    "text": (b"I am not a JPEG", "not a JPEG"),
    "CMYK": (jpeg(BASE.convert("CMYK")), "CMYK"),
    "EXIF orientation 6": (jpeg(BASE, exif=exif(6)), "EXIF-rotated"),
    "EXIF orientation 1": (jpeg(BASE, exif=exif(1)), "gpu"),
    "EXIF big-endian, 6": (with_segment(PLAIN, 0xE1, BIG_ENDIAN_EXIF_6), "EXIF-rotated"),
    "EXIF unreadable": (with_segment(PLAIN, 0xE1, b"Exif\x00\x00XX garbage"), "EXIF-rotated"),
    "XMP orientation 8": (with_segment(PLAIN, 0xE1, XMP.replace(b"{}", b"8")), "EXIF-rotated"),
    "XMP orientation 1": (with_segment(PLAIN, 0xE1, XMP.replace(b"{}", b"1")), "gpu"),
    "12-bit": (patch_sof(PLAIN, precision=12), "12-bit"),
    "arithmetic": (patch_sof(PLAIN, marker=0xC9), "arithmetic coding"),
    "extended sequential": (patch_sof(PLAIN, marker=0xC1), "not baseline or progressive"),
    "lossless": (patch_sof(PLAIN, marker=0xC3), "not baseline or progressive"),
    "RGB-coded": (jpeg(BASE, keep_rgb=True), "RGB-coded"),
    "3x1 luma sampling": (patch_sof(PLAIN, luma_sampling=0x31), "unusual layout"),
    "over MAX_IMAGE_PIXELS": (patch_sof(PLAIN, size=(20000, 20000)), "too large"),
    "truncated": (PLAIN[:len(PLAIN) // 2], "truncated"),
    "truncated, zero-filled": (PLAIN[:len(PLAIN) // 2] + bytes(len(PLAIN) // 2), "truncated"),
    "garbage after SOI": (b"\xff\xd8" + b"\x12" * 100, "corrupt"),
    "corrupt scan, header fine": (corrupt_scan(PLAIN), "corrupt"),
    "restart markers": (jpeg(BASE, restart_marker_blocks=4), "gpu"),
    "progressive, corrupt scan": (corrupt_scan(jpeg(BASE, progressive=True)), "corrupt"),
    "trailing bytes after EOI": (PLAIN + b"junk \xff\xc0 after the end", "gpu"),
    "comment between scans": (jpeg(BASE, progressive=True).replace(b"\xff\xda", b"\xff\xfe\x00\x04hi\xff\xda", 2)
                              .replace(b"\xff\xfe\x00\x04hi", b"", 1), "gpu"),
}


@pytest.mark.parametrize("name", list(ROUTES))
def test_route(name):
    data, expected = ROUTES[name]
    assert route(data) == expected


def cpu_path_error(data: bytes) -> str:
    """What today's CPU path (`ImageFiles` -> `load_rgb`) says about a file, "" if it decodes."""
    return decode.cpu_path(data, RES, _transform(RES))[1]


def test_header_routed_file_that_fails_to_decode_falls_back_to_todays_message():
    bad = ROUTES["corrupt scan, header fine"][0]
    assert decode_jpegs([bad], "cpu") == ["corrupt"]
    assert cpu_path_error(bad) == "cannot decode: broken data stream when reading image file"
    # the truncated file takes the CPU path from its route; PIL says why it fails
    assert cpu_path_error(ROUTES["truncated"][0]).startswith("cannot decode: image file is truncated")


def test_one_corrupt_file_in_a_batch_only_costs_that_file(monkeypatch):
    goods = [jpeg(photo(w, h, i)) for i, (w, h) in enumerate(SIZES[:3])] + [ROUTES["grey"][0]]
    batch = goods[:2] + [ROUTES["corrupt scan, header fine"][0]] + goods[2:]
    calls = []
    real = decode._decode
    monkeypatch.setattr(decode, "_decode", lambda tensors, device: calls.append(len(tensors)) or real(tensors, device))
    out = decode_jpegs(batch, "cpu")
    assert calls == [5, 1, 1, 1, 1, 1]  # the batched call failed, then each file alone
    assert out[2] == "corrupt"
    for good, got in zip(goods, out[:2] + out[3:]):
        assert torch.equal(got, decode_jpegs([good], "cpu")[0])
        assert got.shape[0] == 3  # grey comes back as RGB
    calls.clear()
    assert all(isinstance(t, torch.Tensor) for t in decode_jpegs(goods, "cpu")) and calls == [4]


def test_crop_offsets_round_as_torchvision_centercrop_does():
    """No resize needed (one side is already RES): the result must equal CLIP's exactly,
    including the centre crop's rounding of .5 offsets (37.5 -> 38, 38.5 -> 38)."""
    for w, h in [(299, 224), (301, 224), (224, 300), (224, 224)]:
        img = Image.fromarray(np.random.default_rng(w + h).integers(0, 256, (h, w, 3), dtype=np.uint8))
        tensor = torch.from_numpy(np.array(img)).permute(2, 0, 1)
        assert torch.equal(preprocess_tensor(tensor, RES, MEAN, STD), _transform(RES)(img)), (w, h)
        grey = img.convert("L")
        grey_tensor = torch.from_numpy(np.array(grey))[None]
        assert torch.equal(preprocess_tensor(grey_tensor, RES, MEAN, STD), _transform(RES)(grey.convert("RGB")))
    with pytest.raises(ValueError, match="expected a"):
        preprocess_tensor(torch.zeros(4, 10, 10, dtype=torch.uint8), RES, MEAN, STD)


def centred_features(net, images: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    """L2-normalised features after subtracting `centre` (the mean feature of the reference
    photos): a random net's raw features all point the same way (cosine 0.97 between
    different photos, measured), centred ones tell photos apart."""
    with torch.no_grad():
        f = net(images)
    return F.normalize(f - (f.mean(0, keepdim=True) if centre is None else centre), dim=-1)


def test_preprocessing_matches_clip_transform_on_photos():
    datas = [jpeg(photo(w, h, i)) for i, (w, h) in enumerate(SIZES)]
    assert {route(d) for d in datas} == {"gpu"}
    ours = preprocess_batch(decode_jpegs(datas, "cpu"), RES, MEAN, STD)
    assert torch.equal(ours[5], preprocess_tensor(decode_jpegs([datas[5]], "cpu")[0], RES, MEAN, STD))
    clip_full = torch.stack([_transform(RES)(Image.open(io.BytesIO(d)).convert("RGB")) for d in datas])
    todays = torch.stack([_transform(RES)(load_rgb(io.BytesIO(d), min_side=RES)) for d in datas])

    # Pixels, in normalised units (one 8-bit level is about 0.015). Against CLIP's transform on
    # the same full decode, measured: 0.009% of values differ, by one level (max 0.0150; PIL
    # resizes in fixed point), per-photo mean abs diff at most 0.000004. Against today's CPU
    # path, which decodes large JPEGs at a reduced DCT scale: per-photo mean at most 0.0196
    # (the 1280x720 photo). (One resize pass instead of PIL's two, each rounded to 8 bits,
    # gave per-photo means up to 0.003 and single values off by 0.26.)
    diff_full = (ours - clip_full).abs()
    assert diff_full.mean(dim=(1, 2, 3)).max() < 0.0002 and diff_full.max() < 0.035
    assert (diff_full > 1e-4).float().mean() < 0.001
    assert (ours - todays).abs().mean(dim=(1, 2, 3)).max() < 0.025

    # Features of a fixed random ViT (CLIP's own class). Measured: cosine >= 0.9999998 against
    # CLIP's transform, mean 0.99993 / min 0.9992 against today's path; different photos score
    # 0.90 at most, and the same photos cropped 2 pixels off 0.955 on average.
    torch.manual_seed(0)
    net = VisionTransformer(RES, patch_size=32, width=64, layers=2, heads=2, output_dim=64).eval()
    ref = centred_features(net, clip_full)
    with torch.no_grad():
        centre = net(clip_full).mean(0, keepdim=True)
    for other in (clip_full, todays):
        cos = (centred_features(net, ours, centre) * centred_features(net, other, centre)).sum(-1)
        assert cos.mean() >= 0.995 and cos.min() >= 0.98, cos
    off_diagonal = (ref @ ref.T)[~torch.eye(len(ref), dtype=torch.bool)]
    assert off_diagonal.max() < 0.98  # the bound tells different photos apart ...
    shifted = (centred_features(net, torch.roll(clip_full, 2, dims=-1), centre) * ref).sum(-1)
    assert shifted.mean() < 0.995  # ... and a crop 2 pixels off


def write_folder(tmp_path):
    """Files of every kind, and what `iter_batches` should route each to."""
    files = {
        "a.jpg": (jpeg(photo(320, 240, 1)), "gpu"),
        "b_grey.jpg": (ROUTES["grey"][0], "gpu"),
        "c.png": (jpeg(photo(90, 70, 2), "PNG"), "not a JPEG"),
        "d_cmyk.jpg": (ROUTES["CMYK"][0], "CMYK"),
        "e_rotated.jpg": (ROUTES["EXIF orientation 6"][0], "EXIF-rotated"),
        "f_truncated.jpg": (ROUTES["truncated"][0], "truncated"),
        "g_corrupt.jpg": (ROUTES["corrupt scan, header fine"][0], "corrupt"),
        "h_progressive.jpg": (ROUTES["progressive"][0], "gpu"),
        "i_text.jpg": (b"I am not a JPEG", "not a JPEG"),
        "k_empty.jpg": (b"", "not a JPEG"),
        "l.jpg": (jpeg(photo(640, 480, 3)), "gpu"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / n) for n in files] + [str(tmp_path / "j_missing.jpg")]
    return paths, [r for _, r in files.values()] + ["unreadable"]


@pytest.mark.parametrize("workers", [0, 2])
def test_iter_batches_gives_todays_errors_and_counts_routes(tmp_path, workers):
    paths, expected_routes = write_folder(tmp_path)
    preprocess = _transform(RES)
    batches = list(iter_batches(paths, RES, preprocess, "cpu", batch_size=5, num_workers=workers, mean=MEAN, std=STD))
    assert [len(e) for _, e, _ in batches] == [5, 5, 2]
    images = torch.cat([b[0] for b in batches])
    errors = [e for b in batches for e in b[1]]
    routes = [r for b in batches for r in b[2]]
    assert routes == expected_routes
    today = [ImageFiles(paths, preprocess, RES)[i] for i in range(len(paths))]
    assert errors[:-1] == [e for _, e in today[:-1]]
    assert errors[-1] == "cannot read: No such file or directory"  # ImageFiles: "cannot decode: [Errno 2] ..."
    assert today[-1][1].startswith("cannot decode: [Errno 2]")
    assert [bool(e) for e in errors] == [False] * 5 + [True, True, False, True, True, False, True]
    for i, ((row, error), route_) in enumerate(zip(today, routes)):
        if error or route_ != "gpu":  # the CPU path is today's path: the same numbers
            assert torch.equal(images[i], row), paths[i]
        else:
            assert (images[i] - row).abs().mean() < 0.025, paths[i]  # l.jpg: 0.016 (PIL's draft, above)
    counts = RouteCounts()
    for _, _, r in batches:
        counts.update(r)
    assert counts.describe() == ("gpu 4, cpu 7 (3 not a JPEG, 1 CMYK, 1 EXIF-rotated, 1 corrupt, 1 truncated), "
                                "unreadable 1")


def test_a_file_nvjpeg_refuses_but_pil_reads_is_decoded_on_the_cpu_path(tmp_path, monkeypatch):
    paths, _ = write_folder(tmp_path)
    paths = paths[:2]  # two plain JPEGs routed to the GPU
    refused = Path(paths[1]).read_bytes()
    real = decode._decode

    def nvjpeg(tensors, device):
        if any(bytes(t.numpy()) == refused for t in tensors):
            raise RuntimeError("simulated nvJPEG failure")
        return real(tensors, device)

    monkeypatch.setattr(decode, "_decode", nvjpeg)
    (images, errors, routes), = iter_batches(paths, RES, _transform(RES), "cpu", batch_size=8, mean=MEAN, std=STD)
    assert routes == ["gpu", "corrupt"] and errors == ["", ""]
    assert torch.equal(images[1], ImageFiles(paths, _transform(RES), RES)[1][0])


def test_route_counts_summary():
    counts = RouteCounts(["gpu"] * 770 + ["not a JPEG"] * 3 + ["EXIF-rotated", "CMYK"])
    assert counts.describe() == "gpu 770, cpu 5 (3 not a JPEG, 1 CMYK, 1 EXIF-rotated)"
    assert RouteCounts(["gpu"]).describe() == "gpu 1, cpu 0"
    assert RouteCounts().describe() == "gpu 0, cpu 0"


@pytest.mark.parametrize("setting, device, expected", [
    ("auto", "cpu", "cpu"), ("auto", "cuda", "gpu"), ("auto", torch.device("cuda", 1), "gpu"),
    ("cpu", "cpu", "cpu"), ("cpu", "cuda:0", "cpu"), ("gpu", "cuda", "gpu")])
def test_resolve_decode(setting, device, expected):
    assert resolve_decode(setting, device) == expected


@pytest.mark.parametrize("setting, device, message", [
    ("gpu", "cpu", "^decode='gpu': needs CUDA"), ("gpu", torch.device("cpu"), "^decode='gpu': needs CUDA"),
    ("fast", "cuda", "^decode='fast': one of auto, cpu, gpu")])
def test_resolve_decode_refuses_with_one_line(setting, device, message):
    with pytest.raises(SettingError, match=message) as e:
        resolve_decode(setting, device)
    assert "\n" not in str(e.value) and e.value.setting == "decode"


def test_the_gpu_path_only_takes_backbones_that_resize_as_clip():
    """An open_clip model may resize otherwise (squash, bilinear): auto keeps the CPU path,
    an explicit gpu is refused; the rule is asked for only on CUDA (asking may load the model)."""
    asked = []
    other = lambda: asked.append(1) or "bilinear resize, mode 'squash', to 224"  # noqa: E731
    assert resolve_decode("auto", "cpu", other) == "cpu" and not asked
    assert resolve_decode("auto", "cuda", other) == "cpu" and asked
    with pytest.raises(SettingError, match="not this backbone's .bilinear resize"):
        resolve_decode("gpu", "cuda", other)


def test_the_embed_path_with_gpu_decoding_gives_the_cpu_paths_features(tiny_checkpoint, tmp_path, monkeypatch):
    """`embed.decode` wired through `fewclip.embedding`: the GPU path (its tensor ops, run here on
    CPU tensors) gives the tiny CLIP the same features as today's path, the same errors, and
    counts each file's route."""
    from fewclip.backbone import load_backbone
    from fewclip.embedding import CacheStats, embed_cached, embed_images
    from fewclip.cache import NoCache
    from synthetic import write_image_folder

    root = write_image_folder(tmp_path / "imgs", ["red circle", "blue square"], 6, seed=4)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    Image.open(paths[0]).save(tmp_path / "as.png")
    (tmp_path / "cut.jpg").write_bytes(Path(paths[1]).read_bytes()[:200])
    paths += [str(tmp_path / "as.png"), str(tmp_path / "cut.jpg")]
    bb = load_backbone(str(tiny_checkpoint), device="cpu")
    cpu, cpu_errors = embed_images(bb, paths, batch_size=5, progress=False)
    monkeypatch.setattr("fewclip.embedding.resolve_decode", lambda setting, device, resize=None: "gpu")
    stats = CacheStats()
    gpu, gpu_errors = embed_cached(bb, paths, NoCache(), batch_size=5, progress=False, stats=stats, decode="gpu")
    assert gpu_errors == cpu_errors and cpu_errors[-1] and not any(cpu_errors[:-1])
    ok = [not e for e in cpu_errors]
    cos = (cpu[ok] * gpu[ok]).sum(1)  # both L2-normalised
    assert cos.mean() >= 0.995 and cos.min() >= 0.98, cos
    assert stats.routes["gpu"] == len(paths) - 2 and stats.routes["not a JPEG"] == 1 and stats.routes["truncated"] == 1


def test_prefetch_keeps_order_raises_the_producers_error_and_stops_when_closed():
    import threading

    from fewclip.embedding import prefetch

    assert list(prefetch(iter(range(50)), "cpu")) == list(range(50))

    def failing():
        yield 1
        raise OSError("disk gone")
    got = prefetch(failing(), "cpu")
    assert next(got) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(got)

    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield i
            i += 1
    got = prefetch(endless(), "cpu", depth=2)
    assert [next(got) for _ in range(3)] == [0, 1, 2]
    got.close()  # the consumer stops early: the thread must end, not run on
    assert not any(t.name == "fewclip-prefetch" for t in threading.enumerate())
    assert len(pulled) <= 3 + 2 + 1  # at most `depth` ahead, plus the one being handed over


def test_batches_prepared_ahead_give_the_same_features(tiny_checkpoint, tmp_path):
    """`iter_embed(ahead=True)` (the default on CUDA) gives exactly what the plain loop gives."""
    from fewclip.backbone import load_backbone
    from fewclip.embedding import iter_embed
    from synthetic import write_image_folder

    root = write_image_folder(tmp_path / "imgs", ["red circle", "blue square"], 5, seed=5)
    paths = sorted(str(p) for p in root.rglob("*.jpg")) + [str(tmp_path / "missing.jpg")]
    bb = load_backbone(str(tiny_checkpoint), device="cpu")
    plain = list(iter_embed(bb, paths, batch_size=3, progress=False, ahead=False))
    ahead = list(iter_embed(bb, paths, batch_size=3, progress=False, ahead=True))
    assert [e for _, e in ahead] == [e for _, e in plain] and ahead[-1][1][-1]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(ahead, plain))


def test_switching_the_decode_route_embeds_anew(tiny_checkpoint, tmp_path, monkeypatch):
    """The feature cache as the embed stage keys it (`pixels_identity` of the route): features
    cached by the CPU path are not served to the GPU path (its code run here on CPU tensors),
    which embeds every image itself and gets its own features, and back."""
    from fewclip.backbone import load_backbone
    from fewclip.cache import FeatureCache, NoCache, pixels_identity
    from fewclip.embedding import CacheStats, embed_cached
    from synthetic import write_image_folder

    paths = sorted(str(p) for p in write_image_folder(tmp_path / "imgs", ["red circle", "blue square"], 4,
                                                      seed=6).rglob("*.jpg"))
    bb = load_backbone(str(tiny_checkpoint), device="cpu")

    def run(route):
        stats = CacheStats()
        cache = FeatureCache(tmp_path / "cache", bb.sha256, "float32", pixels_identity(route, "openai"))
        feats, _ = embed_cached(bb, paths, cache, batch_size=4, progress=False, stats=stats, decode=route)
        return feats, stats

    cpu, first = run("cpu")
    monkeypatch.setattr("fewclip.embedding.resolve_decode", lambda setting, device, resize=None: setting)
    gpu, switched = run("gpu")
    assert (first.embedded, switched.embedded, switched.cached) == (len(paths), len(paths), 0)
    fresh, _ = embed_cached(bb, paths, NoCache(), batch_size=4, progress=False, decode="gpu")
    assert np.array_equal(gpu, fresh) and not np.array_equal(gpu, cpu)
    again, back = run("cpu")
    assert back.cached == len(paths) and np.array_equal(again, cpu)

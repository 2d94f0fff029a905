import io
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from fewclip import UserError
from fewclip.data import check_header, scan_folder
from fewclip.pixels import BadImage, load_rgb
from fewclip.splits import make_splits, read_list, stratified_split, write_list
from synthetic import write_image_folder

CLASSES = ["red circle", "green square", "blue triangle"]


def _photo(size=(40, 30), color=(200, 40, 40)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_scan_skips_junk_and_bad_files_and_counts_them(tmp_path):
    car = tmp_path / "car"
    (car / "@eaDir" / "a.jpg").mkdir(parents=True)
    (car / "@eaDir" / "a.jpg" / "SYNO@.fileindexdb").write_bytes(b"x")
    (car / "@eaDir" / "a.jpg@SynoEAStream").write_bytes(b"x")
    _photo().save(car / "a.jpg")
    _photo().save(car / "b.PNG")
    (car / ".DS_Store").write_bytes(b"x")
    (car / "notes.txt").write_text("hi")
    (car / "text.jpg").write_text("I am not a JPEG")
    (car / "empty.jpg").write_bytes(b"")
    (tmp_path / "bus").mkdir()
    _photo().save(tmp_path / "bus" / "c.jpg")
    (tmp_path / "readme.md").write_text("stray file")
    (tmp_path / ".hidden").mkdir()
    _photo().save(tmp_path / ".hidden" / "d.jpg")

    found = scan_folder(tmp_path)
    assert found.classes == ["bus", "car"]
    assert [(p.rsplit("/", 1)[1], c) for p, c in found.samples] == [("c.jpg", "bus"), ("a.jpg", "car"), ("b.PNG", "car")]
    reasons = Counter(s.reason for s in found.skipped)
    assert reasons == {"hidden or system entry": 4, "not an image file (extension)": 1,
                       "not an image (unrecognised file content)": 1, "empty file (0 bytes)": 1,
                       "file outside a class folder": 1}
    summary = found.describe()
    assert "3 images in 2 classes; skipped 8 files" in summary
    assert "text.jpg: not an image" in summary and "empty.jpg: empty file" in summary
    assert "SynoEAStream" not in summary  # junk is counted, not listed


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=r"nowhere: data folder not found"):
        scan_folder(tmp_path / "nowhere")


def test_stratified_split_is_seeded_disjoint_and_keeps_every_class(tmp_path):
    samples = [(f"{c}/{i}.jpg", c) for c, n in (("a", 20), ("b", 5), ("c", 2), ("d", 1)) for i in range(n)]
    tr, va = stratified_split(samples, 0.2, seed=3)
    assert stratified_split(samples, 0.2, seed=3) == (tr, va)
    assert stratified_split(samples, 0.2, seed=4) != (tr, va)
    assert sorted(tr + va) == sorted(samples) and not set(tr) & set(va)
    assert Counter(c for _, c in va) == {"a": 4, "b": 1, "c": 1}
    assert Counter(c for _, c in tr) == {"a": 16, "b": 4, "c": 1, "d": 1}
    with pytest.raises(UserError, match="val_fraction"):
        stratified_split(samples, 1.0, seed=0)


def test_file_lists_round_trip_odd_names(tmp_path):
    rows = [("data/fire engine/Ünïcode, comma.jpg", "fire engine"), ('q"uote.jpg', "x")]
    write_list(tmp_path / "l.csv", rows)
    assert read_list(tmp_path / "l.csv") == rows
    (tmp_path / "bad.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="bad.csv: not a file list"):
        read_list(tmp_path / "bad.csv")


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGB"])
def test_colour_modes_are_converted_to_rgb(tmp_path, mode):
    path = tmp_path / ("img.jpg" if mode in ("L", "CMYK") else "img.png")
    _photo().convert(mode).save(path)
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == (40, 30)
    r, g, b = np.asarray(img, dtype=int)[10, 10]
    if mode == "L":
        assert r == g == b
    else:
        assert r > 150 and g < 100 and b < 100  # still red


def test_transparency_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 5, 10))
    img.save(tmp_path / "a.png")
    arr = np.asarray(load_rgb(tmp_path / "a.png"))
    assert tuple(arr[5, 2]) == (255, 0, 0) and tuple(arr[5, 8]) == (255, 255, 255)


def test_sixteen_bit_images_are_rescaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    arr[:, 4:] = 8192
    Image.fromarray(arr).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = np.asarray(load_rgb(tmp_path / "deep.png"), dtype=int)
    assert abs(out[0, 0, 0] - 128) <= 1 and abs(out[0, 7, 0] - 32) <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = _photo((40, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (20, 40)


def test_truncated_jpeg_raises_bad_image(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(BadImage, match="cannot decode"):
        load_rgb(tmp_path / "cut.jpg")


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch):
    """A small file that claims a huge image: refused from its header, with no memory blow-up."""
    Image.new("L", (4000, 3000)).save(tmp_path / "bomb.png", optimize=True)  # 12 Mpixel, a few kB
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)  # between 1x and 2x: PIL only warns
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000_000)  # over 2x: PIL raises instead
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(tmp_path / "bomb.png")
    assert check_header(tmp_path / "bomb.png").startswith("refused (decompression bomb)")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)
    (tmp_path / "c").mkdir()
    (tmp_path / "bomb.png").rename(tmp_path / "c" / "bomb.png")
    found = scan_folder(tmp_path)
    assert found.samples == [] and found.skipped[0].reason.startswith("refused (decompression bomb)")


def test_symlink_loops_and_broken_links_are_skipped_and_named(tmp_path):
    cls = tmp_path / "car"
    cls.mkdir()
    _photo().save(cls / "ok.jpg")
    (cls / "loop.jpg").symlink_to(cls / "loop.jpg")
    (cls / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (cls / "sub").symlink_to(cls, target_is_directory=True)  # a folder loop: not followed
    found = scan_folder(tmp_path)
    assert [p.rsplit("/", 1)[1] for p, _ in found.samples] == ["ok.jpg"]
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in found.skipped}
    assert set(reasons) == {"gone.jpg", "loop.jpg"}
    assert all(r.startswith("unreadable") for r in reasons.values()), reasons


def test_a_10000_pixel_wide_photo_is_decoded_at_a_reduced_scale(tmp_path):
    rng = np.random.default_rng(1)
    wide = Image.fromarray(rng.integers(0, 255, (600, 10_000, 3), dtype=np.uint8))
    wide.save(tmp_path / "wide.jpg", quality=70)
    wide.save(tmp_path / "wide.png")
    small = load_rgb(tmp_path / "wide.jpg", min_side=224)
    assert small.size == (5000, 300)  # halved in the JPEG decoder: both sides stay >= 224
    assert load_rgb(tmp_path / "wide.jpg").size == (10_000, 600)
    assert load_rgb(tmp_path / "wide.png", min_side=224).size == (10_000, 600)  # PNG: full size, fine


def test_an_unreadable_file_is_named_and_skipped(tmp_path, monkeypatch):
    import builtins
    import os

    cls = tmp_path / "car"
    cls.mkdir()
    _photo().save(cls / "ok.jpg")
    _photo().save(cls / "locked.jpg")
    (cls / "locked.jpg").chmod(0)
    if os.geteuid() == 0:  # root reads mode-000 files anyway: refuse the open as the kernel would
        real_open = builtins.open

        def no_access(file, *args, **kwargs):
            if str(file).endswith("locked.jpg"):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", no_access)
    found = scan_folder(tmp_path)
    assert [p.rsplit("/", 1)[1] for p, _ in found.samples] == ["ok.jpg"]
    assert found.skipped[0].path.endswith("locked.jpg") and "Permission denied" in found.skipped[0].reason
    with pytest.raises(BadImage, match="Permission denied"):
        load_rgb(cls / "locked.jpg")


def layout(tmp_path, train=CLASSES[:3], test=CLASSES[:3], zero=(), novel=()):
    write_image_folder(tmp_path / "train", list(train), 3, seed=0)
    write_image_folder(tmp_path / "test", list(test), 2, seed=1)
    if zero:
        write_image_folder(tmp_path / "zs", zero if isinstance(zero, dict) else list(zero), 2, seed=2)
    warnings, lines = [], []
    splits = make_splits(tmp_path / "train", tmp_path / "test", tmp_path / "zs" if zero else "", list(novel),
                         0.34, 0, info=lines.append, warn=warnings.append)
    return splits, lines, warnings


def test_a_valid_layout_is_split_and_summarised(tmp_path):
    splits, lines, warnings = layout(tmp_path, zero={"bench": "yellow cross"}, novel=["bench"])
    assert splits.classes == ["blue_triangle", "green_square", "red_circle"]
    assert len(splits.train) == 6 and len(splits.val) == 3 and len(splits.test) == 6 and len(splits.zero_shot) == 2
    assert splits.novel == ["bench"] and not warnings and len(lines) == 3
    assert splits.summary()["images"] == {"train": 6, "val": 3, "test": 6, "zero_shot": 2}


@pytest.mark.parametrize("case, message", [
    ("empty class", "train: class folder(s) ['bench'] hold no usable image"),
    ("novel with photos", "novel=['red_circle']: these classes have training folders in"),
    ("zero-shot class not novel", "zs: test class(es) ['purple_circle'] are neither trained"),
])
def test_layout_rules_name_the_folder_and_the_classes(tmp_path, case, message):
    kwargs = {}
    if case == "empty class":
        (tmp_path / "train" / "bench").mkdir(parents=True)
        (tmp_path / "train" / "bench" / "notes.txt").write_text("no photos yet")
    elif case == "novel with photos":
        kwargs["novel"] = ["red_circle"]
        kwargs["train"] = ["red circle", *CLASSES[1:3]]
    else:
        kwargs.update(zero=["yellow cross", "purple circle"], novel=["yellow_cross"])
    with pytest.raises(UserError, match=re.escape(message)):
        layout(tmp_path, **kwargs)


def test_a_test_class_without_images_is_warned_about_not_fatal(tmp_path):
    (tmp_path / "test" / "green_square").mkdir(parents=True)
    splits, _, warnings = layout(tmp_path, test=CLASSES[:1])
    assert any("green_square: no usable test image" in w for w in warnings), warnings

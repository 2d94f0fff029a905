"""What `dvc plots show` draws and what the PNGs show must agree, on hand-made cases."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from fewclip.metrics import classification_metrics
from fewclip.plots import confusion_records, contact_sheet, mistakes
from fewclip.shots import curve_metrics, curve_records
from helpers import ROOT

CLASSES = ["bus", "car", "truck", "airplane"]
# 3 buses (one taken for a car), 4 cars (one for a truck), 2 trucks, no airplane image;
# nothing is ever predicted "airplane".
TRUE = [0, 0, 0, 1, 1, 1, 1, 2, 2]
PRED = [0, 0, 1, 1, 1, 1, 2, 2, 2]


def test_interactive_confusion_matrix_is_the_pngs_matrix():
    proba = np.eye(len(CLASSES))[PRED]
    m = classification_metrics(TRUE, proba, CLASSES)
    records = confusion_records(m["counts"], CLASSES)
    # every class on both axes, airplane included though it is never predicted nor present
    assert [(r["actual"], r["predicted"]) for r in records] == [(a, p) for a in CLASSES for p in CLASSES]
    rates = np.array([r["rate"] for r in records]).reshape(4, 4)
    assert np.allclose(rates, m["confusion"], atol=1e-4)  # what confusion_matrix_png draws
    assert rates[0, 1] == pytest.approx(1 / 3, abs=1e-4)  # one bus of three taken for a car
    assert rates[1, 0] == 0  # not "every car predicted as bus": rows are true classes
    assert np.allclose(rates[:3].sum(1), 1) and rates[3].sum() == 0  # no airplane image: zeros
    assert sum(r["count"] for r in records) == len(TRUE)


def test_dvc_yaml_draws_rows_as_true_classes_with_the_rate_template():
    plots = {next(iter(p)): p[next(iter(p))] for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
             if isinstance(p, dict)}
    for name in ("metrics/evaluate/plots/confusion.json", "metrics/evaluate/plots/gzsl_confusion.json"):
        spec = plots[name]
        assert (spec["template"], spec["x"], spec["y"]) == ("confusion_rows", "predicted", "actual")
        assert "row" in spec["title"] and "sums to 1" in spec["title"]
    template = json.loads((ROOT / ".dvc" / "plots" / "confusion_rows.json").read_text())
    layer = template["spec"]["layer"][0]["encoding"]["color"]
    assert layer["field"] == "rate"  # the stored per-true-class share, not recomputed by Vega
    assert "aggregate" not in json.dumps(template)


def test_shots_curve_records_and_headline_figures():
    summary = {"gda": {"1": {"mean": 0.5, "std": 0.1, "shots": 1.0, "seeds": 5},
                       "16": {"mean": 0.8, "std": 0.0, "shots": 16.0, "seeds": 5},
                       "all": {"mean": 0.9, "std": 0.0, "shots": 23.4, "seeds": 5}},
               "zero-shot": {k: {"mean": 0.7, "std": 0.0, "shots": 0.0, "seeds": 1} for k in ("1", "16", "all")}}
    records = curve_records(summary)
    assert {r["head"] for r in records} == {"gda", "zero-shot"} and len(records) == 6
    assert curve_metrics(records, "gda") == {"k01": 0.5, "k16": 0.8, "k_all": 0.9, "zero_shot": 0.7}
    assert sorted(curve_metrics(records, "gda")) == ["k01", "k16", "k_all", "zero_shot"]  # sorts in shot order
    assert curve_metrics(records, "mlp") == {}


def test_gallery_of_mistakes(tmp_path):
    paths = []
    for i in range(9):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((300, 400, 3), i * 25, dtype=np.uint8)).save(path)
        paths.append(str(path))
    proba = np.full((9, 4), 0.1)
    proba[np.arange(9), PRED] = np.linspace(0.5, 0.7, 9)
    items = mistakes(TRUE, proba, CLASSES, paths, limit=5)
    assert [p for p, _ in items] == [paths[6], paths[2]]  # the two mistakes, most confident first
    assert "true car" in items[0][1] and "predicted truck 65.0%" in items[0][1]
    only_trucks = mistakes(TRUE, proba, CLASSES, paths, only=lambda t, p: p == 2)
    assert [p for p, _ in only_trucks] == [paths[6]]
    sheet = tmp_path / "sheet.jpg"
    (tmp_path / "gone.png").write_bytes(b"not an image")
    contact_sheet(items * 15 + [(str(tmp_path / "gone.png"), "gone")], sheet, "test")
    assert sheet.read_bytes()[:2] == b"\xff\xd8" and sheet.stat().st_size < 400_000
    contact_sheet(items * 3, tmp_path / "row.jpg", "test")  # 6 photos: one row
    big, row = Image.open(sheet).convert("RGB"), Image.open(tmp_path / "row.jpg")
    cell = (big.height - row.height) / 5  # 31 photos in rows of 6: 6 rows
    assert cell == 160 + 8 + 3 * 15 and big.width == row.width  # a thumbnail and 3 caption lines
    top = big.height - 6 * cell - 6
    grey = np.asarray(big)[int(top + 5 * cell + 80), 6 + 6 + 80]  # the last photo, unreadable: a grey tile
    assert np.abs(grey.astype(int) - 200).max() <= 8, grey
    contact_sheet([], tmp_path / "empty.jpg", "nothing")
    assert (tmp_path / "empty.jpg").stat().st_size > 0


def test_a_shot_count_no_class_can_fill_reads_all():
    summary = {"gda": {"1": {"mean": 0.5, "std": 0.1, "shots": 1.0, "seeds": 3},
                       "all": {"mean": 0.9, "std": 0.0, "shots": 6.2, "seeds": 3}},
               "zero-shot": {k: {"mean": 0.7, "std": 0.0, "shots": 0.0, "seeds": 1} for k in ("1", "all")}}
    records = curve_records(summary, beyond=[16])
    assert {"head": "gda", "k": "16", "as": "all"} in records
    assert curve_metrics(records, "gda") == {"k01": 0.5, "k16": "all", "k_all": 0.9, "zero_shot": 0.7}


def test_one_colour_per_head_in_the_png_and_the_interactive_curve():
    from fewclip.heads import HEADS
    from fewclip.plots import HEAD_COLORS

    assert set(HEAD_COLORS) == {*HEADS, "zero-shot"} and len(set(HEAD_COLORS.values())) == len(HEAD_COLORS)
    template = json.loads((ROOT / ".dvc" / "plots" / "shots_curve.json").read_text())
    scales = [layer["encoding"]["color"]["scale"] for layer in template["layer"] if "color" in layer["encoding"]]
    assert len(scales) == 2
    for scale in scales:
        assert dict(zip(scale["domain"], scale["range"])) == HEAD_COLORS


def test_the_png_labels_the_all_point_in_photos_per_class():
    import matplotlib.pyplot as plt

    from fewclip.plots import _shots_axes

    fig, ax = plt.subplots()
    _shots_axes(ax, {"gda": {"1": {"mean": 0.5, "std": 0.1, "shots": 1.0},
                             "all": {"mean": 0.9, "std": 0.0, "shots": 23.4}}}, "t")
    assert [t.get_text() for t in ax.texts] == ["all (23.4 per class)"]
    plt.close(fig)


def test_epoch_plots_tick_whole_epochs():
    plots = [p for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if isinstance(p, dict)]
    epochs = [spec for p in plots for spec in p.values() if spec.get("x") == "step"]
    assert len(epochs) == 2 and all(spec["template"] == "epochs" for spec in epochs)
    axis = json.loads((ROOT / ".dvc" / "plots" / "epochs.json").read_text())["encoding"]["x"]["axis"]
    # whole-number labels, and no more ticks than epochs: Vega's tick count for a domain of
    # [0, 1] (a closed-form head) is 1, so no tick at 0.5
    assert axis == {"format": "d", "tickCount": {"expr": "max(1, min(8, span(domain('x'))))"}}


def test_gallery_titles_count_what_they_show():
    from fewclip.plots import gallery_count

    assert gallery_count(26, 30) == "all 26 mistakes" and gallery_count(95, 30) == "the 30 most confident of 95 mistakes"
    assert gallery_count(1, 30) == "the one mistake" and gallery_count(0, 30) == "no mistakes"


def test_captions_are_drawn_in_a_font_that_has_the_letters_of_class_names(tmp_path):
    """Pillow's default font draws boxes for many letters; the galleries use DejaVu Sans."""
    from matplotlib.ft2font import FT2Font

    from fewclip.plots import FONT

    font = FT2Font(str(FONT))
    for letter in "éüçñøßåæœ\u0301αжł":  # accents, a combining acute (macOS file names), Greek, Cyrillic
        assert font.get_char_index(ord(letter)) != 0, letter
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(img)
    for caption in ("café_table", "cafe_table"):
        contact_sheet([(str(img), caption)], tmp_path / f"{caption}.png", "t")
    assert Image.open(tmp_path / "café_table.png").tobytes() != Image.open(tmp_path / "cafe_table.png").tobytes()


def test_a_contact_sheet_is_written_in_the_format_its_name_says(tmp_path):
    from fewclip.plots import sheet_format

    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(img)
    for name, magic in (("s.png", b"\x89PNG"), ("s.jpg", b"\xff\xd8"), ("s.JPEG", b"\xff\xd8"), ("s.webp", b"RIFF")):
        contact_sheet([(str(img), "x")], tmp_path / name, "t")
        assert (tmp_path / name).read_bytes()[:len(magic)] == magic, name
    with pytest.raises(ValueError, match="s.gif: a contact sheet is a .jpg, .jpeg, .png, .webp file"):
        sheet_format("s.gif")

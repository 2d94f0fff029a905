"""The exported classifier (`python -m fewclip.export`) read back with onnxruntime alone:
numpy, Pillow and onnxruntime, no torch (a deployment needs nothing else).

The file is one ONNX graph from preprocessed pixels to class probabilities:
  input   pixels         float32 (N, 3, R, R), N dynamic: RGB in [0, 1], less `mean`, over `std`
  outputs probabilities  float32 (N, len(classes)): the trained classes, then the novel ones
          features       float32 (N, dim): the image features, L2-normalised
and its metadata (`metadata_props`, read with `session.get_modelmeta().custom_metadata_map`),
each value a JSON text:
  fewclip.format          FORMAT
  fewclip.format_version  FORMAT_VERSION
  classes                 the class names, in the order of the probabilities
  novel                   those scored zero-shot, by name (`classes.novel`, `--add-class`)
  preprocessing           resolution, mean, std (per RGB channel), resize (RESIZE_RULE)
  backbone                model (the `model` param), sha256, family, precision
  head                    name, mode (few or zero), params (plain values)
  classifier              the artefact it was exported from: path, sha256
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from . import UserError
from .pixels import BadImage, cannot_read, load_rgb
from .settings import RESIZE_SHORTER_CENTER_CROP

FORMAT = "fewclip classifier"
FORMAT_VERSION = 1
RESIZE_RULE = RESIZE_SHORTER_CENTER_CROP  # the only rule exported (every family's)
INSTALL = "pip install -e '.[onnx]'"
KEYS = ("fewclip.format", "fewclip.format_version", "classes", "novel", "preprocessing", "backbone", "head",
        "classifier")  # the metadata entries (module docstring)


def clip_preprocess(image: Image.Image, resolution: int, mean, std) -> np.ndarray:
    """(3, resolution, resolution) float32: CLIP's transform of an RGB image, as torchvision
    computes it from a PIL image (the same sizes, rounding and arithmetic, so the same
    numbers): the shorter side resized to `resolution` (PIL bicubic), the centre square cut,
    scaled to [0, 1], less `mean`, over `std`."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    size = (resolution, int(resolution * long / short)) if w <= h else (int(resolution * long / short), resolution)
    image = image.resize(size, Image.BICUBIC)
    left, top = int(round((size[0] - resolution) / 2.0)), int(round((size[1] - resolution) / 2.0))
    image = image.crop((left, top, left + resolution, top + resolution))
    x = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class OnnxClassifier:
    """An exported classifier: `classes`, `metadata`, `preprocess(image)`, `load(path)` and
    `predict_proba(pixels)`. One UserError naming the file when it is not one of ours, is of
    another format version, or onnxruntime is missing."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"--onnx needs onnxruntime, which is not installed: {INSTALL}") from None
        if not self.path.is_file():
            raise UserError(f"{self.path}: ONNX file not found (write one with `python -m fewclip.export`)")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own classes for files it cannot parse
            raise UserError(f"{self.path}: not an ONNX model onnxruntime can load "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
        self.metadata = read_metadata(self.path, self.session.get_modelmeta().custom_metadata_map)
        self.classes = list(self.metadata["classes"])
        self.novel = list(self.metadata["novel"])
        pre = self.metadata["preprocessing"]
        self.resolution, self.mean, self.std = int(pre["resolution"]), pre["mean"], pre["std"]

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return clip_preprocess(image, self.resolution, self.mean, self.std)

    def load(self, path: str) -> tuple[np.ndarray | None, str]:
        """(preprocessed image, "") or (None, why it cannot be read), as `predict` reads files."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return None, cannot_read(e)
        try:
            return self.preprocess(load_rgb(io.BytesIO(data), min_side=self.resolution)), ""
        except BadImage as e:
            return None, str(e) or "cannot decode"

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        """(n, len(classes)) probabilities for a batch of preprocessed images (n, 3, R, R)."""
        return self.session.run(["probabilities"], {"pixels": np.asarray(pixels, np.float32)})[0]


def read_metadata(path: Path, props: dict) -> dict:
    """The file's metadata (module docstring), its values decoded; one UserError when it is
    not ours or of another format version."""
    if props.get("fewclip.format") != json.dumps(FORMAT):
        raise UserError(f"{path}: an ONNX model without fewclip's metadata, not a classifier written by "
                        "`python -m fewclip.export`")
    try:  # other tools' entries (a quantizer's, say) are left alone
        meta = {k: json.loads(v) for k, v in props.items() if k in KEYS}
    except ValueError as e:
        raise UserError(f"{path}: unreadable fewclip metadata ({e})") from None
    if meta.get("fewclip.format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: a fewclip ONNX file of format {meta.get('fewclip.format_version')}, this version "
                        f"of fewclip reads format {FORMAT_VERSION}; export it again with `python -m fewclip.export`")
    if meta.get("preprocessing", {}).get("resize") != RESIZE_RULE:
        raise UserError(f"{path}: preprocessing {meta.get('preprocessing')} is not one this version can do")
    return meta

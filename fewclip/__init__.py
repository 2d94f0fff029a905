"""Few-shot and zero-shot image classification on a frozen CLIP.

One module per concern. The library knows nothing of params.yaml: it raises SettingError with
its own setting names, and the pipeline layer maps params (and predict its flags) onto it.
  pipeline/  the pipeline layer: the params.yaml schema (params), the params stage's whole
             check (check), running a stage or command with one-line errors (runner)
  kinds      the kinds of setting values (positive, a count, a grid, ...) heads declare with
  settings   the allowed values of the library's own settings (decode routes, engines)
  data       image discovery, junk skipping
  pixels     robust decoding of an image file to RGB (EXIF, CMYK, 16-bit, transparency)
  splits     the folder layout rules, the data check (checks: small classes, exact
             duplicates and leaks, ...), the train/val split, file lists
  backbone/  the backbone interface (base: identity, input, output, text side, encoding),
             its families (openai: the `clip` package's names and checkpoint files;
             open_clip: `open_clip:<architecture>:<tag or file>`), loading one by name, lazily
  cache      the per-image (and per-prompt-set) feature cache, keyed by content, backbone
             and the code that turns files into pixels; the shots curve's fit cache
  features   the feature files: one writer and one reader each
  embedding  batched image embedding (CPU or GPU decoding), through the feature cache,
             locally or on a Ray cluster (ray_engine)
  decode     GPU JPEG decoding and preprocessing, with the CPU path as fallback
  routing    which files nvJPEG may decode, and why the others take the CPU path
  prompts    prompt templates and the text (zero-shot) classifier
  heads/     classifiers on features (the estimator contract and the registry in heads/base.py,
             one file per head family, the selection rule in heads/selection.py), saving and loading
  openvocab  trained and novel classes in one classifier; the classifier artefact's writer
             and reader
  training   the train stage's work: the classifier of a mode and head, epoch by epoch
  evaluation the evaluate stage's work: headline figures, report, confusions, galleries
  shots      accuracy versus shots per class, every head, several seeds
  metrics    accuracy and the per-epoch figures (the one place), balanced and per-class
             accuracy, confusion matrix, GZSL figures
  plots      PNG figures, the interactive plots' data; sheets: contact sheets (Pillow alone)
  fetch      obtaining the reference data set and checking it against data.dvc
  predict    classifying new photos with the trained artefact (python -m fewclip.predict),
             or with an exported file (--onnx); inference: what the commands that use a
             trained classifier share (classes added by name, the precision to embed at)
  export     the classifier as one ONNX file, pixels to probabilities (python -m
             fewclip.export); onnx_classifier reads it back with onnxruntime, no torch
  audit/     know your data: out-of-fold suspect labels and outliers (labels), exact, pixel
             and feature duplicates and leaks (duplicates, fingerprint)
  suggest    which photos to label next (label_next); its command (suggest_cli:
             python -m fewclip.suggest)
"""


class UserError(Exception):
    """A problem with the user's input (data, params, model): printed as one line, no traceback."""


class SettingError(UserError):
    """A setting the library cannot use: its name as the library takes it (a function's or a
    class's argument), its value, and what is allowed. The library knows nothing of
    params.yaml or of command-line flags: the pipeline and the commands name their own key
    or flag for it (`fewclip.pipeline.runner.run`)."""

    def __init__(self, setting: str, value, problem: str):
        self.setting, self.value, self.problem = setting, value, problem
        super().__init__(f"{setting}={value!r}: {problem}")

    def named(self, name: str) -> str:
        """The message with `name` (a params key, a flag) for the setting."""
        return f"{name}={self.value!r}: {self.problem}"

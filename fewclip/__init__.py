"""Few-shot and zero-shot image classification on a frozen OpenAI CLIP.

One module per concern:
  data      image discovery, junk skipping, robust decoding, the train/val split, file lists
  backbone  loading the CLIP backbone (name, cache folder or checkpoint file)
  prompts   prompt templates and the text (zero-shot) classifier
  features  the cached feature file format and batched image embedding
  heads     classifiers on features (fit / predict_proba), their sampler, saving and loading
  metrics   accuracy, balanced accuracy, per-class accuracy, confusion matrix
  plots     PNG figures
  fetch     obtaining the reference data set and checking it against data.dvc
  params    reading params.yaml and running a stage with clear errors
"""


class UserError(Exception):
    """A problem with the user's input (data, params, model): printed as one line, no traceback."""

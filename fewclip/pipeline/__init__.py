"""The pipeline layer: what maps `params.yaml` and the command line onto the library.

  params   the params.yaml schema (assembled from the heads' and backbones' declarations),
           checked before any work (`python -m fewclip.pipeline.params`)
  runner   running a stage or command: one-line errors and exit codes, the library's
           setting errors named as params keys or flags
  stages   each stage's work as a function of params and paths, returning its results

The library below it (`fewclip.*`) knows nothing of params.yaml.
"""

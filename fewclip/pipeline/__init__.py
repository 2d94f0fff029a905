"""The pipeline layer: what maps `params.yaml` and the command line onto the library.

  params   the params.yaml schema (the heads' groups assembled from the registered heads'
           signatures), checked by every stage before any work
  check    the `params` stage (`python -m fewclip.pipeline.check`): all of the file, and the
           `model` name against the backbone registry
  runner   running a stage or command: one-line errors and exit codes, the library's setting
           errors named as params keys or flags, the paths a stage's command names

The stages' work is library functions (`fewclip.splits.make_splits`, `fewclip.training`,
`fewclip.evaluation`, `fewclip.shots.shots_curve`, ...); `stages/*.py` read params and paths
and write files. The library below knows nothing of params.yaml.
"""

"""The allowed values of the library's own settings, where the library and the params schema
both need them (torch-free, so the schema imports no torch)."""

DECODE_SETTINGS = ("auto", "cpu", "gpu")  # `fewclip.decode.resolve_decode`
SAMPLERS = ("weighted", "uniform")  # the mlp head's batch samplers (`fewclip.heads.mlp`)
ENGINES = ("local", "ray")  # where images are embedded: this process, or a Ray cluster (`fewclip.embedding`)
# the image encoder's arithmetic (`fewclip.backbone.resolve_precision`): auto is fp16 on CUDA, bf16 on a
# CPU that computes it natively (AVX512_BF16 or AMX), else fp32
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# The rule every backbone family here resizes by: the shorter side to the resolution (bicubic),
# then the centre square (CLIP's own transform; `fewclip.decode` does it on the GPU,
# `fewclip.onnx_classifier` with Pillow and numpy).
RESIZE_SHORTER_CENTER_CROP = "bicubic resize of the shorter side to the resolution, then a centre crop"

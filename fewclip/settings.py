"""The allowed values of the library's own settings, where the library and the params schema
both need them (torch-free, so the schema imports no torch)."""

DECODE_SETTINGS = ("auto", "cpu", "gpu")  # `fewclip.decode.resolve_decode`
SAMPLERS = ("weighted", "uniform")  # the mlp head's batch samplers (`fewclip.heads.mlp`)
ENGINES = ("local", "ray")  # where images are embedded: this process, or a Ray cluster (`fewclip.embedding`)

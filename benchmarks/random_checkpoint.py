"""Write a CLIP checkpoint with random weights and the full architecture of a published model.

For timing and for trying the pipeline on a machine that cannot download OpenAI's weights:
speed and memory do not depend on the weights' values; accuracy does (it is chance).

    python benchmarks/random_checkpoint.py ViT-B/32 /tmp/vit-b-32-random.pt
    python benchmarks/random_checkpoint.py open_clip:ViT-B-16 /tmp/oc-b-16-random.pt

An `open_clip:<architecture>` name writes a state dict of that open_clip architecture, used as
`model: open_clip:<architecture>:<the file>`.
"""

import argparse
import warnings

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.model import CLIP, convert_weights

# (embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
#  context_length, vocab_size, transformer_width, transformer_heads, transformer_layers)
ARCHITECTURES = {
    "ViT-B/32": (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
    "ViT-L/14": (768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12),
}


def random_clip(arch: str, seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    return CLIP(*ARCHITECTURES[arch]).eval()


def save_state_dict(model: CLIP, path) -> str:
    """Save as OpenAI ships weights (fp16), as a plain state dict; returns the path."""
    convert_weights(model)
    torch.save(model.state_dict(), path)
    return str(path)


def random_open_clip(arch: str, path, seed: int = 0) -> torch.nn.Module:
    """An open_clip architecture with random weights, saved as a state dict at `path`."""
    import logging

    import open_clip

    torch.manual_seed(seed)
    logging.disable(logging.WARNING)  # "No pretrained weights loaded": that is the point
    try:
        model = open_clip.create_model(arch, pretrained=None).eval()
    finally:
        logging.disable(logging.NOTSET)
    torch.save(model.state_dict(), path)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", help=f"{', '.join(sorted(ARCHITECTURES))} or open_clip:<architecture>")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.arch.startswith("open_clip:"):
        model = random_open_clip(args.arch.split(":", 1)[1], args.out, args.seed)
    elif args.arch in ARCHITECTURES:
        model = random_clip(args.arch, args.seed)
        save_state_dict(model, args.out)
    else:
        parser.error(f"unknown architecture {args.arch!r}: {', '.join(sorted(ARCHITECTURES))} or open_clip:<name>")
    print(f"wrote {args.out}: random {args.arch}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()

"""Write a CLIP checkpoint with random weights and the full architecture of a published model.

For timing and for trying the pipeline on a machine that cannot download OpenAI's weights:
speed and memory do not depend on the weights' values; accuracy does (it is chance).

    python benchmarks/random_checkpoint.py ViT-B/32 /tmp/vit-b-32-random.pt
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", choices=sorted(ARCHITECTURES))
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = random_clip(args.arch, args.seed)
    save_state_dict(model, args.out)
    print(f"wrote {args.out}: random {args.arch}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    main()

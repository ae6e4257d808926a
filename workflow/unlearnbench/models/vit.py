"""Vision Transformer from timm with configurable size, image size and patch size.

Pretrained weights come only from a local file (`pretrained_path`, safetensors or a plain
state dict loaded with weights_only=True); nothing is downloaded.
"""

from pathlib import Path

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import UserError
from ._registry import register_model


class ViT(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit
        self.head = vit.head
        vit.head = nn.Identity()

    def forward_features(self, x):
        return self.vit(x)


def _load_pretrained(vit, path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise UserError(f"pretrained ViT weights {p} not found; set models.<name>.pretrained_path to a local file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        raise UserError(f"cannot read pretrained weights {p} (not a plain tensor file; pickled objects are refused): "
                        f"{type(e).__name__}: {first[:200]}") from None
    state = {k: v for k, v in state.items() if not k.startswith("head.")}  # new classifier head
    missing, unexpected = vit.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.startswith("head.")]:
        raise UserError(f"pretrained weights {p} do not match this ViT (missing={missing[:3]}, unexpected={unexpected[:3]})")


@register_model
def vit(
    in_channels: int,
    num_classes: int,
    image_size: int,
    patch_size: int = 4,
    embed_dim: int = 192,
    depth: int = 6,
    num_heads: int = 3,
    mlp_ratio: float = 4.0,
    pretrained_path: str | None = None,
):

    if image_size % patch_size:
        raise UserError(f"ViT: image_size {image_size} is not a multiple of patch_size {patch_size}")
    net = VisionTransformer(
        img_size=image_size, patch_size=patch_size, in_chans=in_channels, num_classes=num_classes,
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
    )
    if pretrained_path:
        _load_pretrained(net, pretrained_path)
    return ViT(net)

import pytest
import torch

from unlearnbench.errors import UserError
from unlearnbench.io import load_checkpoint, save_checkpoint
from unlearnbench.models import build_model, list_models

SMALL = {"resnet18": {"width": 8}, "allcnn": {"width": 8}, "vgg16_bn": {"width_mult": 0.125},
         "vit": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2}}


def test_registry_lists_required_models():
    assert {"resnet20", "resnet18", "allcnn", "vgg16_bn", "vit", "smallcnn"} <= set(list_models())


@pytest.mark.parametrize("arch", sorted(list_models()))
@pytest.mark.parametrize("channels,size", [(1, 8), (3, 16)])
def test_model_shapes(arch, channels, size):
    torch.manual_seed(0)
    m = build_model(arch, in_channels=channels, num_classes=7, image_size=size, **SMALL.get(arch, {})).eval()
    x = torch.rand(3, channels, size, size)
    out = m(x)
    assert out.shape == (3, 7)
    feats = m.forward_features(x)
    assert feats.ndim == 2 and feats.shape[1] == m.head.in_features
    assert torch.allclose(m.head(feats), out, atol=1e-5)


def test_normalisation_lives_inside_the_model():
    m = build_model("smallcnn", in_channels=1, num_classes=3, image_size=8, mean=[0.3], std=[0.2]).eval()
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(m(x), m.net.head(m.net.forward_features((x - 0.3) / 0.2)))


def test_unknown_model_and_bad_kwargs():
    with pytest.raises(UserError, match="unknown model"):
        build_model("resnet9000", in_channels=3, num_classes=10, image_size=32)
    with pytest.raises(UserError, match="bad arguments"):
        build_model("resnet20", in_channels=3, num_classes=10, image_size=32, depth=3)


def test_vit_pretrained_only_from_local_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        build_model("vit", in_channels=3, num_classes=10, image_size=16, pretrained_path=str(tmp_path / "x.safetensors"), **{k: v for k, v in SMALL["vit"].items()})
    src = build_model("vit", in_channels=3, num_classes=5, image_size=16, **SMALL["vit"])
    from safetensors.torch import save_file

    state = {k.removeprefix("net.vit."): v.contiguous() for k, v in src.state_dict().items() if k.startswith("net.vit.")}
    save_file(state, str(tmp_path / "w.safetensors"))
    m = build_model("vit", in_channels=3, num_classes=10, image_size=16, pretrained_path=str(tmp_path / "w.safetensors"), **SMALL["vit"])
    assert torch.equal(m.net.vit.patch_embed.proj.weight, src.net.vit.patch_embed.proj.weight)


def test_checkpoint_roundtrip_and_rejections(tmp_path):
    m = build_model("smallcnn", in_channels=1, num_classes=3, image_size=8)
    p = tmp_path / "m.safetensors"
    save_checkpoint(p, m.state_dict(), {"seed": 3})
    state, meta = load_checkpoint(p)
    assert meta == {"seed": 3}
    assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(UserError, match="not written by unlearnbench"):
        load_checkpoint(foreign)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.safetensors", "foreign.safetensors", "m.safetensors"]


def test_allcnn_thesis_layout_has_the_thesis_parameter_count():
    """widen_at 3: the MuGAN thesis's AllCNN (Table 2: 1,620,010 trainable parameters; its reference
    code's conv3 = Conv(96, 192, stride 2)); the default 4 is All-CNN-C (conv3 96 -> 96)."""
    from torch import nn

    from unlearnbench.models import model_arguments

    def build(**kw):
        return build_model("allcnn", in_channels=3, num_classes=10, image_size=32, **kw)

    def trainable(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    thesis, default = build(widen_at=3), build()
    assert trainable(thesis) == 1_620_010 and trainable(default) == 1_370_986
    def convs(m):
        return [(c.in_channels, c.out_channels, c.stride[0]) for c in m.modules() if isinstance(c, nn.Conv2d)]

    assert convs(thesis) == [(3, 96, 1), (96, 96, 1), (96, 192, 2), (192, 192, 1), (192, 192, 1), (192, 192, 2),
                             (192, 192, 1), (192, 192, 1)]
    assert convs(default)[2:4] == [(96, 96, 2), (96, 192, 1)]
    assert "widen_at" in model_arguments("allcnn")  # a config's models entry may set it
    small = build_model("allcnn", in_channels=1, num_classes=7, image_size=8, width=8, widen_at=3).eval()
    assert small(torch.rand(3, 1, 8, 8)).shape == (3, 7)
    with pytest.raises(UserError, match="widen_at must be 3"):
        build(widen_at=5)

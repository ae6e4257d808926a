"""VGG16 with BatchNorm, CIFAR layout (conv stack + one linear head)."""

from torch import nn

from ._registry import register_model

_CFG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, width_mult: float = 1.0):
        super().__init__()
        layers, cin, size = [], in_channels, image_size
        for v in _CFG16:
            if v == "M":
                if size >= 2:  # small inputs (e.g. 8x8 digits) skip the pools they cannot afford
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            cout = max(8, int(v * width_mult))
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x):
        return self.body(x)


@register_model
def vgg16_bn(in_channels: int, num_classes: int, image_size: int, width_mult: float = 1.0):
    return VGG(in_channels, num_classes, image_size, width_mult)

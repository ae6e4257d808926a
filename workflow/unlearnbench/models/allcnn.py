"""All-CNN-C (Springenberg et al. 2015) with BatchNorm, as used by the UNSIR paper."""

from torch import nn

from ._registry import register_model


def _conv(cin, cout, k, stride=1, pad=1):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AllCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 96, dropout: float = 0.0):
        super().__init__()
        w1, w2 = width, 2 * width
        self.body = nn.Sequential(
            *_conv(in_channels, w1, 3), *_conv(w1, w1, 3), *_conv(w1, w1, 3, stride=2),
            nn.Dropout(dropout),
            *_conv(w1, w2, 3), *_conv(w2, w2, 3), *_conv(w2, w2, 3, stride=2),
            nn.Dropout(dropout),
            *_conv(w2, w2, 3), *_conv(w2, w2, 1, pad=0),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(w2, num_classes)

    def forward_features(self, x):
        return self.body(x)


@register_model
def allcnn(in_channels: int, num_classes: int, image_size: int, width: int = 96, dropout: float = 0.0):
    return AllCNN(in_channels, num_classes, width, dropout)

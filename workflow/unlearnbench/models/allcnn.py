"""All-CNN-C (Springenberg et al. 2015) with BatchNorm, as used by the UNSIR paper.

Eight conv blocks (conv -> BatchNorm -> ReLU, no conv bias), global average pooling and a linear
head. `width` (96) is the first stage's channel count, the second stage has twice as many.

`widen_at` (3 or 4): the conv block at which the channels go from `width` to 2 * `width`.
- 4 (default): Springenberg's All-CNN-C, blocks 1-3 at 96 channels (block 3 the stride-2 one) and
  the widening 3x3 conv is block 4: 1,370,986 parameters at CIFAR size (3x32x32, 10 classes).
- 3: the layout of the MuGAN thesis (paper 002, Sec. 4.3, Table 2: "AllCNN 1,620,010" trainable
  parameters), which is the AllCNN of its reference code (DataSystemsGroupUT/zero-shot-machine-
  unlearning, models.py, class AllCNN; the same class as GKT's ayushkumartarun/zero-shot-unlearning,
  models.py): conv3 = Conv(n_filter1, n_filter2, stride=2), i.e. the stride-2 block 3 widens 96 ->
  192, 1,620,010 parameters at CIFAR size. Paper-exact for the thesis's tables: 3.
"""

from torch import nn

from ..errors import UserError
from ._registry import register_model


def _conv(cin, cout, k, stride=1, pad=1):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AllCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 96, dropout: float = 0.0, widen_at: int = 4):
        super().__init__()
        if widen_at not in (3, 4):
            raise UserError(f"model allcnn: widen_at must be 3 (the MuGAN thesis / reference code) or 4 "
                            f"(All-CNN-C), got {widen_at!r}")
        w1, w2 = width, 2 * width
        w3 = w2 if widen_at == 3 else w1  # output channels of block 3 (stride 2)
        self.body = nn.Sequential(
            *_conv(in_channels, w1, 3), *_conv(w1, w1, 3), *_conv(w1, w3, 3, stride=2),
            nn.Dropout(dropout),
            *_conv(w3, w2, 3), *_conv(w2, w2, 3), *_conv(w2, w2, 3, stride=2),
            nn.Dropout(dropout),
            *_conv(w2, w2, 3), *_conv(w2, w2, 1, pad=0),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(w2, num_classes)

    def forward_features(self, x):
        return self.body(x)


@register_model
def allcnn(in_channels: int, num_classes: int, image_size: int, width: int = 96, dropout: float = 0.0,
           widen_at: int = 4):
    return AllCNN(in_channels, num_classes, width, dropout, widen_at)

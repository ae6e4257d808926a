"""A small, fast CNN for tests and quick CPU runs."""

from torch import nn

from ._registry import register_model


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward_features(self, x):
        return self.body(x)


@register_model
def smallcnn(in_channels: int, num_classes: int, image_size: int, width: int = 16):
    return SmallCNN(in_channels, num_classes, width)

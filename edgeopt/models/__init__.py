"""Reference networks in plain torch (ResNet, MobileNetV2, EfficientNet-Lite0), the digits demo model and training."""

from edgeopt.models.digits import DigitsCNN, digits_data, train_digits_cnn
from edgeopt.models.efficientnet_lite import EfficientNetLite, efficientnet_lite0, efficientnet_lite0_factory
from edgeopt.models.mobilenet_v2 import MobileNetV2, mobilenet_v2, mobilenet_v2_factory
from edgeopt.models.resnet import ResNet, cifar_resnet, cifar_resnet20_factory, resnet18, resnet18_factory
from edgeopt.models.train import accuracy, crop_flip, train_classifier

__all__ = [
    "DigitsCNN",
    "EfficientNetLite",
    "MobileNetV2",
    "ResNet",
    "accuracy",
    "cifar_resnet",
    "cifar_resnet20_factory",
    "crop_flip",
    "digits_data",
    "efficientnet_lite0",
    "efficientnet_lite0_factory",
    "mobilenet_v2",
    "mobilenet_v2_factory",
    "resnet18",
    "resnet18_factory",
    "train_classifier",
    "train_digits_cnn",
]

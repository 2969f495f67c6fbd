"""CIFAR-10 (Krizhevsky 2009): the official python archive, md5 as torchvision publishes it."""

from labaug.datasets import register
from labaug.datasets.base import Dataset, SourceFile

CIFAR10 = register(Dataset(
    name="cifar10", title="CIFAR-10", format="cifar", num_classes=10,
    files=(SourceFile("cifar-10-python.tar.gz",
                      "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a",
                      download_md5="c58f30108f718f92721af3b95e74349a"),),
    options={"cifar_layout": "cifar10"},
))

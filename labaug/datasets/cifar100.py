"""CIFAR-100 (Krizhevsky 2009), fine labels: the official python archive, md5 as torchvision
publishes it."""

from labaug.datasets import register
from labaug.datasets.base import Dataset, SourceFile

CIFAR100 = register(Dataset(
    name="cifar100", title="CIFAR-100", format="cifar", num_classes=100,
    files=(SourceFile("cifar-100-python.tar.gz",
                      "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                      "eb9058c3a382ffc7106e4002c42a8d85",
                      download_md5="eb9058c3a382ffc7106e4002c42a8d85"),),
    options={"cifar_layout": "cifar100"},
))

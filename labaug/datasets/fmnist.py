"""Fashion-MNIST (Xiao et al. 2017): four idx files. The sha256s are of the decompressed bytes,
identical upstream and in Debian's dataset-fashion-mnist (which recompressed them, so their gzip
bytes differ); the download md5s are of the upstream gzip files, as torchvision has them."""

from labaug.datasets import register
from labaug.datasets.base import Dataset, SourceFile
from labaug.datasets.formats import IDX_FILES

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DIGESTS = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                                "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                                "25c81989df183df01b3e8a0aad5dffbe"),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                               "bef4ecab320f06d8554ea6380940ec79"),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                               "bb300cfdad3c16e7a12a480ee83cd310"),
}

FMNIST = register(Dataset(
    name="fmnist", title="Fashion-MNIST", format="idx", num_classes=len(CLASSES),
    classes=CLASSES,
    files=tuple(SourceFile(f"{stem}.gz", f"{URL}{stem}.gz", DIGESTS[stem][0], "sha256",
                           decompressed=True, download_md5=DIGESTS[stem][1])
                for stem in IDX_FILES),
    options={"idx_files": tuple(f"{stem}.gz" for stem in IDX_FILES)},
    offline_hint="Debian: apt-get install dataset-fashion-mnist provides them under "
                 "/usr/share/datasets/fashion-mnist",
))

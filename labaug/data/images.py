"""The binary image task of Sec. 4.2: two classes, standardized, with one identifying pixel.

Two classes of a raw dataset (config ``image.pairs``; the paper's first two by default: CIFAR-10
airplane/automobile, CIFAR-100 apple/aquarium_fish, Fashion-MNIST T-shirt/top vs Trouser) become
labels -1/+1. Each channel is
standardized with TRAINING statistics, images are flattened channel-major (C, H, W), and in the
training data only the first coordinate (the R channel of the top-left pixel; the single
channel for Fashion-MNIST) is replaced by the identifying value y * gamma, plus
Uniform[-gamma * low_noise, gamma * low_noise] noise for the low-variance variant (App. B).
Test images are never modified, so a model that relies on the pixel is no better than chance
on it.

A task is standardized once per (dataset, class pair, variance) and written to a task file
(`write_task`, the workflow's ``binary_task`` rule) with the settings of its identifying value
(gamma, variance, noise scale), not with any seed: each sweep job reads it (`read_task`) instead
of rebuilding it from the raw npz, and draws its seed's identifying values from the generator of
(seed, purpose). So adding a seed changes no task file. `TaskFile.for_seed` is exactly
`make_binary` for that seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from labaug.config import Variance
from labaug.data import LinearData
from labaug.data.raw import RawImages
from labaug.errors import CorruptFileError
from labaug.io import atomic_path
from labaug.rng import numpy_rng


def channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 training images (N, C, H, W), in [0, 1] units."""
    x = x_train.astype(np.float64) / 255.0
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Scale uint8 images to [0, 1], then subtract the channel mean and divide by its std."""
    out: np.ndarray = (x.astype(np.float32) / 255.0 - mean[None, :, None, None]) \
        / std[None, :, None, None]
    return out.astype(np.float32)


IDENTIFYING_PIXEL = 0
"""Index of the identifying coordinate in the flattened (C, H, W) feature vector."""


def two_classes(x: np.ndarray, y: np.ndarray,
                pair: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Keep images of the two classes of ``pair``; labels -1 (pair[0]) and +1 (pair[1])."""
    keep = (y == pair[0]) | (y == pair[1])
    return x[keep], np.where(y[keep] == pair[1], 1.0, -1.0).astype(np.float32)


def pair_names(classes: tuple[str, ...], pair: tuple[int, int]) -> str:
    """'name of y = -1 vs name of y = +1', checking the pair against the class list."""
    for c in pair:
        if not 0 <= c < len(classes):
            raise ValueError(f"class index {c} of the pair {list(pair)} (config image.pairs) is "
                             f"outside this dataset's {len(classes)} classes")
    if pair[0] == pair[1]:
        raise ValueError(f"the pair {list(pair)} (config image.pairs) names one class twice")
    return f"{classes[pair[0]]} vs {classes[pair[1]]}"


def binary_task(raw: RawImages, pair: tuple[int, int]) -> LinearData:
    """The two classes of ``pair``, standardized with training statistics, flattened (C, H, W);
    no identifying pixel yet (`make_binary` adds it)."""
    names = pair_names(raw.classes, pair)
    x_train, y_train = two_classes(raw.x_train, raw.y_train, pair)
    x_test, y_test = two_classes(raw.x_test, raw.y_test, pair)
    if len(np.unique(y_train)) != 2:
        raise ValueError(f"the training data must hold both classes of the pair {names}")
    mean, std = channel_stats(x_train)
    std = np.where(std > 0, std, 1.0)  # a constant channel stays at 0 instead of NaN
    f_train = standardize(x_train, mean, std).reshape(len(x_train), -1)
    f_test = standardize(x_test, mean, std).reshape(len(x_test), -1)
    shape = (int(x_train.shape[1]), int(x_train.shape[2]), int(x_train.shape[3]))
    return LinearData(np.ascontiguousarray(f_train), y_train, np.ascontiguousarray(f_test),
                      y_test, image_shape=shape, classes=names)


def identifying_pixel(y: np.ndarray, gamma: float, variance: Variance, low_noise: float,
                      rng: np.random.Generator) -> np.ndarray:
    """The identifying value per example: y * gamma, plus uniform noise when variance is low."""
    value = (y * gamma).astype(np.float64)
    if variance == "low":
        scale = gamma * low_noise
        value = value + rng.uniform(-scale, scale, size=len(y))
    elif variance != "zero":
        raise ValueError(f"unknown variance {variance!r}; expected 'zero' or 'low'")
    return value.astype(np.float32)


def make_binary(raw: RawImages, seed: int, variance: Variance, gamma: float,
                low_noise: float, pair: tuple[int, int] = (0, 1)) -> LinearData:
    """The binary task for one run seed (the seed only draws the low-variance noise), with the
    identifying pixel y * gamma in the training data only."""
    return make_task(raw, pair, variance, gamma, low_noise).for_seed(seed)


@dataclass(frozen=True)
class TaskFile:
    """A standardized binary task and the settings of its identifying value."""

    task: LinearData
    """The standardized task, identifying coordinate not yet set (`binary_task`)."""
    gamma: float
    variance: Variance
    low_noise: float

    def for_seed(self, seed: int) -> LinearData:
        """The task of one run seed (`make_binary`'s result, bit for bit)."""
        x_train = self.task.x_train.copy()
        x_train[:, IDENTIFYING_PIXEL] = identifying_pixel(
            self.task.y_train, self.gamma, self.variance, self.low_noise,
            numpy_rng(seed, "images", "identifying_pixel"))
        return replace(self.task, x_train=x_train)


def make_task(raw: RawImages, pair: tuple[int, int], variance: Variance, gamma: float,
              low_noise: float) -> TaskFile:
    """Standardize the pair's task once (every seed's identifying values come from it)."""
    if variance not in ("zero", "low"):
        raise ValueError(f"unknown variance {variance!r}; expected 'zero' or 'low'")
    return TaskFile(binary_task(raw, pair), float(gamma), variance, float(low_noise))


def write_task(task: TaskFile, path: str | os.PathLike[str]) -> None:
    """Write a task file atomically (uncompressed npz: reading it is one copy per array; the zip
    format checks every member's CRC-32 when it is read)."""
    t = task.task
    assert t.image_shape is not None
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=t.x_train, y_train=t.y_train, x_test=t.x_test, y_test=t.y_test,
                     image_shape=np.array(t.image_shape), classes=np.array(t.classes),
                     gamma=np.float64(task.gamma), variance=np.array(task.variance),
                     low_noise=np.float64(task.low_noise))


def read_task(path: str | os.PathLike[str]) -> TaskFile:
    """Read a task file; an unreadable or altered one raises CorruptFileError naming it."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            shape = tuple(int(v) for v in f["image_shape"])
            task = LinearData(f["x_train"], f["y_train"], f["x_test"], f["y_test"],
                              image_shape=(shape[0], shape[1], shape[2]),
                              classes=str(f["classes"]))
            variance = str(f["variance"])
            if variance not in ("zero", "low"):
                raise ValueError(f"unknown variance {variance!r}")
            return TaskFile(task, float(f["gamma"]), "zero" if variance == "zero" else "low",
                            float(f["low_noise"]))
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged zip fails in many types; all mean unreadable
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from err

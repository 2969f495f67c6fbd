"""The label-augmentation interface (labaug.augment): registry, CutMix, and both trainers.

The linear sweep applies a method to logits where it can and to inputs where it must (CutMix);
here an independent reference trains a plain ``nn.Linear`` on batches whose inputs are mixed
explicitly, with the same random draws, and must end at the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import labaug.train.linear as linear
from labaug import augment
from labaug.augment import EXPERIMENTS, Augmentation
from labaug.augment.cutmix import box_mask, draw_boxes
from labaug.augment.draws import EpochDraws, step_slice
from labaug.augment.mixup import beta_weights
from labaug.config import OptimConfig, defaults
from labaug.data import LinearData
from labaug.data.channels import ClassChannelData, class_channel_data
from labaug.data.raw import RawImages
from labaug.data.synthetic import make_synthetic
from labaug.rng import numpy_rng, torch_rng
from labaug.schema import load_schema
from labaug.train.linear import train_sweep
from labaug.train.resnet import ResNetRun, ResNetTrainer
from tests.conftest import REPO

torch.set_num_threads(1)

NAMES = augment.names()
IMAGE_METHODS = augment.for_experiment(NAMES, "binary_images")
# Every image method, and once more with one draw per batch where it pairs examples.
IMAGE_CASES = [(m, False) for m in IMAGE_METHODS] + [
    (m, True) for m in IMAGE_METHODS if augment.get(m).needs_partner]
IMAGE_IDS = [f"{m}-{'batch' if p else 'example'}" for m, p in IMAGE_CASES]
CLASS_CHANNEL_METHODS = augment.for_experiment(NAMES, "class_channels")
SEED = 4


# --- the registry ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_method_is_complete(name: str) -> None:
    method = augment.get(name)
    assert isinstance(method, Augmentation)
    assert method.name == name and name.isidentifier()
    assert augment.registry()[name] is method
    for attr in ("title", "hp_symbol", "hp_words", "color", "summary"):
        value = getattr(method, attr)
        assert isinstance(value, str) and value.strip(), attr
    assert method.experiments and set(method.experiments) <= set(EXPERIMENTS)
    assert method.hp_symbol in method.hp_label() and method.hp_words in method.hp_label()
    assert method.hp_maximum is None or method.hp_maximum > 0
    # A spatial method has no place on the synthetic vectors, and needs images to mix.
    if method.needs_spatial:
        assert "synthetic" not in method.experiments
    assert method.decay(0.0) == 0.0          # hyperparameter 0 adds no weight decay
    # Its draws cover one epoch: (steps, batch or 1, ...).
    for per_batch in (False, True):
        draws = method.draw(np.random.default_rng(0), 0.5, 3, 5, per_batch, (4, 6))
        for key, value in draws.items():
            assert value.shape[:2] == (3, 1 if per_batch else 5), key


def test_registry_metadata_tells_methods_apart() -> None:
    methods = augment.registry().values()
    assert len({m.title for m in methods}) == len(NAMES)
    assert len({m.color for m in methods}) == len(NAMES)
    assert list(augment.registry()) == list(NAMES)


def test_get_names_every_registered_method_when_asked_for_another() -> None:
    with pytest.raises(KeyError) as info:
        augment.get("dropout")
    assert "dropout" in str(info.value) and all(n in str(info.value) for n in NAMES)


def test_for_experiment_keeps_the_given_order_and_filters() -> None:
    for experiment in EXPERIMENTS:
        order = list(reversed(NAMES))
        assert augment.for_experiment(order, experiment) == [
            n for n in order if experiment in augment.get(n).experiments]
    assert augment.for_experiment([], "synthetic") == []
    # Every method runs somewhere, and every experiment has a method.
    assert all(augment.for_experiment(NAMES, e) for e in EXPERIMENTS)


def _method_class(**attrs: Any) -> type[Augmentation]:
    """A throwaway Augmentation subclass with the given class attributes."""
    base: dict[str, Any] = {"name": "throwaway", "title": "T", "hp_symbol": "t",
                            "hp_words": "t", "color": "k", "summary": "s"}
    return type("Throwaway", (Augmentation,), {**base, **attrs})


@pytest.mark.parametrize(("attrs", "match"), [
    ({"name": NAMES[0]}, "already registered"),
    ({"name": "two words"}, "identifier"),
    ({"name": "1st"}, "identifier"),
    ({"name": 3}, "identifier"),
    ({"title": None}, "title"),
    ({"summary": 1}, "summary"),
    ({"experiments": frozenset({"video"})}, "unknown experiments"),
], ids=["duplicate", "space", "digit", "not_a_string", "no_title", "bad_summary",
        "unknown_experiment"])
def test_register_rejects_bad_methods(attrs: dict[str, Any], match: str) -> None:
    before = augment.registry()
    with pytest.raises(ValueError, match=match):
        augment.register(_method_class(**attrs))
    assert augment.registry() == before


def test_register_rejects_a_same_named_class_from_another_module() -> None:
    name = NAMES[0]
    impostor = type(type(augment.get(name)).__name__, (Augmentation,), {
        "__module__": "someone.else", "name": name, "title": "T", "hp_symbol": "t",
        "hp_words": "t", "color": "k", "summary": "s"})
    before = augment.registry()
    with pytest.raises(ValueError, match="already registered"):
        augment.register(impostor)
    assert augment.registry() == before


def test_a_registered_method_reaches_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    schema_path = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert load_schema(schema_path)["$defs"]["method"]["enum"] == list(NAMES)
    monkeypatch.setattr(augment, "_REGISTRY", dict(augment.registry()))
    augment.register(_method_class(name="throwaway", hp_maximum=0.5))
    assert augment.names() == tuple(sorted((*NAMES, "throwaway")))
    schema = load_schema(schema_path)
    assert schema["$defs"]["method"]["enum"] == sorted((*NAMES, "throwaway"))
    # Every method with a grid to sweep, the new one too; ERM (no hyperparameter) has none.
    assert schema["properties"]["grids"]["required"] == sorted(
        (*(n for n in NAMES if augment.swept(n)), "throwaway"))
    assert "erm" in NAMES and "erm" not in schema["properties"]["grids"]["required"]
    high = schema["properties"]["grids"]["properties"]["throwaway"]["properties"]["high"]
    assert high["exclusiveMaximum"] == 0.5
    monkeypatch.undo()
    assert augment.names() == NAMES


# --- CutMix ------------------------------------------------------------------------------------


class FixedCentres:
    """A stand-in generator whose ``integers`` returns chosen box centres (rows, then cols)."""

    def __init__(self, *centres: np.ndarray) -> None:
        self.centres = list(centres)

    def integers(self, low: int, high: int, size: tuple[int, ...]) -> np.ndarray:
        out = np.asarray(self.centres.pop(0)).reshape(size)
        assert np.all((out >= low) & (out < high))
        return out


def test_draw_boxes_hand_values_with_clipping() -> None:
    # H = W = 10, lam = 0.75: sides round(10 * 0.5) = 5. Centre (5, 5): rows and cols 3..8,
    # area 25. Centre (0, 9): rows clip to 0..3 and cols to 7..10, area 9. lam = 1: empty.
    lam = np.array([0.75, 0.75, 1.0])
    rng = FixedCentres(np.array([5, 0, 4]), np.array([5, 9, 2]))
    boxes, weight = draw_boxes(rng, lam, 10, 10)  # type: ignore[arg-type]
    np.testing.assert_array_equal(boxes, [[3, 8, 3, 8], [0, 3, 7, 10], [4, 4, 2, 2]])
    np.testing.assert_allclose(weight, [1 - 25 / 100, 1 - 9 / 100, 1.0], rtol=0, atol=1e-15)
    # Non-square, H = 4, W = 8, lam = 0: a box the size of the image, which covers it when
    # centred at (2, 4); centred at (3, 0) it keeps rows 1..4 and cols 0..4 (area 12 of 32).
    rng = FixedCentres(np.array([2, 3]), np.array([4, 0]))
    boxes, weight = draw_boxes(rng, np.zeros(2), 4, 8)  # type: ignore[arg-type]
    np.testing.assert_array_equal(boxes, [[0, 4, 0, 8], [1, 4, 0, 4]])
    np.testing.assert_allclose(weight, [0.0, 1 - 12 / 32], rtol=0, atol=1e-15)


def test_box_mask_hand_built_boxes() -> None:
    boxes = torch.tensor([[[0, 2, 1, 3], [1, 1, 0, 4]], [[0, 3, 0, 4], [2, 3, 3, 4]]])
    mask = box_mask(boxes, 3, 4)
    assert mask.shape == (2, 2, 3, 4) and mask.dtype == torch.bool
    expected = torch.zeros(2, 2, 3, 4, dtype=torch.bool)
    expected[0, 0, 0:2, 1:3] = True      # rows 0-1, cols 1-2
    expected[1, 0] = True                # the whole image
    expected[1, 1, 2, 3] = True          # the bottom-right pixel
    torch.testing.assert_close(mask, expected, rtol=0, atol=0)   # [0, 1]: empty


def _distinct_images(b: int, c: int, h: int, w: int) -> Tensor:
    """Images (b, 1, c, h, w) in which every pixel of every image and channel is distinct."""
    return torch.arange(b * c * h * w, dtype=torch.float64).reshape(b, 1, c, h, w) + 0.5


def _onehot_targets(b: int, k: int = 2) -> Tensor:
    return F.one_hot(torch.arange(b) % k, k).to(torch.float64)[:, None, :]


def _step_draws(draws: dict[str, np.ndarray], b: int) -> dict[str, Tensor]:
    """Stack per-model draws (steps, batch or 1, ...) on a model axis, as `EpochDraws` does."""
    return {k: torch.as_tensor(v[0, :b]) for k, v in draws.items()}


@pytest.mark.parametrize("per_batch", [False, True])
def test_cutmix_alpha_zero_is_erm_bitwise(per_batch: bool) -> None:
    cutmix = augment.get("cutmix")
    b, shape = 16, (3, 5, 7)
    x = torch.randn(b, 1, *shape, generator=torch.Generator().manual_seed(0))
    t = _onehot_targets(b).to(torch.float32)
    per_model = cutmix.draw(np.random.default_rng(1), 0.0, 1, b, per_batch, shape[1:])
    np.testing.assert_array_equal(per_model["lam"], 1.0)
    draws = _step_draws({k: v[:, :, None] for k, v in per_model.items()}, b)
    partner = torch.roll(torch.arange(b), 1)
    xa, ta = cutmix.apply(x, t, torch.tensor([0.0]), draws, partner)
    assert torch.equal(xa, x.expand_as(xa)) and torch.equal(ta, t)


@pytest.mark.parametrize("per_batch", [False, True])
def test_cutmix_label_weight_is_the_pasted_area(per_batch: bool) -> None:
    # Three models with their own alpha on one batch of non-square images whose pixels are
    # all distinct, so the pixels taken from the partner are exactly the ones that changed.
    cutmix = augment.get("cutmix")
    b, (c, h, w) = 64, (3, 6, 7)
    alphas = [0.3, 1.0, 4.0]
    per_model = [cutmix.draw(numpy_rng(0, "test", augment.hp_key(a)), a, 1, b, per_batch, (h, w))
                 for a in alphas]
    # the weights lambda each box was sized for: the first draws of the same generators
    asked = [beta_weights(numpy_rng(0, "test", augment.hp_key(a)), a, (1, 1 if per_batch else b))
             for a in alphas]
    draws = _step_draws({k: np.stack([d[k] for d in per_model], axis=2) for k in per_model[0]},
                        b)
    x = _distinct_images(b, c, h, w)
    t = _onehot_targets(b)
    partner = torch.roll(torch.arange(b), 3)      # no example is its own partner
    xa, ta = cutmix.apply(x, t, torch.tensor(alphas), draws, partner)
    assert xa.shape == (b, len(alphas), c, h, w) and ta.shape == (b, len(alphas), 2)
    clipped = 0
    for m in range(len(alphas)):
        for i in range(b):
            j = 0 if per_batch else i
            lam_model = float(draws["lam"][j, m])
            changed = xa[i, m] != x[i, 0]                             # (c, h, w)
            # the box covers every channel, and what changed comes from the partner
            assert torch.equal(changed, changed[:1].expand_as(changed))
            torch.testing.assert_close(xa[i, m][changed], x[partner[i], 0][changed],
                                       rtol=0, atol=0)
            torch.testing.assert_close(xa[i, m][~changed], x[i, 0][~changed], rtol=0, atol=0)
            pasted = changed[0]
            r0, r1, c0, c1 = draws["box"][j, m].tolist()
            assert pasted.sum().item() == (r1 - r0) * (c1 - c0)
            assert 1.0 - pasted.double().mean().item() == pytest.approx(lam_model, abs=1e-12)
            expected_t = lam_model * t[i, 0] + (1 - lam_model) * t[partner[i], 0]
            torch.testing.assert_close(ta[i, m], expected_t, rtol=0, atol=1e-12)
            # a box clipped at the border is smaller than the one its lambda asked for
            side = math.sqrt(1.0 - float(asked[m][0, j]))
            if 0 < (r1 - r0) * (c1 - c0) < round(h * side) * round(w * side):
                clipped += 1
    # not vacuous: boxes were pasted, some of them clipped at the border
    assert (draws["lam"] < 1).sum() >= (2 if per_batch else 150)
    assert clipped >= (1 if per_batch else 10)


def test_cutmix_needs_images() -> None:
    cutmix = augment.get("cutmix")
    with pytest.raises(ValueError, match="spatial"):
        cutmix.draw(np.random.default_rng(0), 1.0, 1, 4, False, None)
    data = make_synthetic(replace(defaults().synthetic, n_train=100, n_test=10), 0, "zero", 0.1)
    for name in NAMES:
        if augment.get(name).needs_spatial:
            with pytest.raises(ValueError, match="needs images"):
                train_sweep(data, name, [1.0], 0, defaults().optim)


# --- the batched linear sweep on images ---------------------------------------------------------


def image_data(n: int = 300, shape: tuple[int, int, int] = (3, 4, 4), seed: int = 0) -> LinearData:
    """Two classes of small random images with a class-dependent pattern, flattened (C, H, W)."""
    rng = np.random.default_rng(seed)
    n_features = math.prod(shape)
    y = np.where(rng.random(n + 100) < 0.5, -1.0, 1.0).astype(np.float32)
    pattern = rng.normal(size=n_features)
    x = (rng.normal(size=(n + 100, n_features)) + 0.5 * y[:, None] * pattern).astype(np.float32)
    return LinearData(x[:n], y[:n], x[n:], y[n:], image_shape=shape)


IMAGE_OPTIM = replace(defaults().optim, batch_size=64, epochs=3, lr=1e-2)


def image_grid(method: str) -> np.ndarray:
    """Four values spread over the method's configured grid (including 0)."""
    return replace(defaults().grids[method], size=4).values()


@pytest.mark.parametrize(("method", "per_batch"), IMAGE_CASES, ids=IMAGE_IDS)
def test_batched_image_sweep_equals_one_model_at_a_time(method: str, per_batch: bool) -> None:
    data = image_data()
    values = image_grid(method)
    batched = train_sweep(data, method, values, SEED, IMAGE_OPTIM, mix_per_batch=per_batch)
    for m, value in enumerate(values):
        alone = train_sweep(data, method, [value], SEED, IMAGE_OPTIM, mix_per_batch=per_batch)
        np.testing.assert_allclose(batched.weights[m], alone.weights[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(batched.train_loss[m], alone.train_loss[0], rtol=1e-5)
    assert np.abs(batched.weights[0] - batched.weights[-1]).max() > 1e-3


@pytest.mark.parametrize("method", [m for m in IMAGE_METHODS if augment.get(m).mixes_inputs])
def test_input_mixing_in_chunks_equals_one_chunk(method: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = image_data()
    values = image_grid(method)
    whole = train_sweep(data, method, values, SEED, IMAGE_OPTIM)
    assert linear.mix_chunk(IMAGE_OPTIM.batch_size, data.n_features, 4) >= len(values)
    one_model = IMAGE_OPTIM.batch_size * data.n_features * 4
    for budget, chunk in ((2 * one_model, 2), (1, 1)):   # 2 chunks of 2; 4 chunks of 1
        monkeypatch.setattr(linear, "MIX_BUDGET_BYTES", budget)
        assert linear.mix_chunk(IMAGE_OPTIM.batch_size, data.n_features, 4) == chunk
        chunked = train_sweep(data, method, values, SEED, IMAGE_OPTIM)
        np.testing.assert_allclose(chunked.weights, whole.weights, rtol=0, atol=1e-6)
        np.testing.assert_allclose(chunked.train_loss, whole.train_loss, rtol=1e-6)
        np.testing.assert_array_equal(chunked.test_error, whole.test_error)


@pytest.mark.parametrize("method", [m for m in NAMES
                                    if type(augment.get(m)).draw is not Augmentation.draw])
def test_each_model_draws_from_its_own_generator(method: str) -> None:
    aug = augment.get(method)
    spatial = (4, 4) if aug.needs_spatial else None
    values = np.array([0.2, 0.7, 1.3])
    many = EpochDraws(aug, SEED, ("linear",), values, False, spatial)
    one = EpochDraws(aug, SEED, ("linear",), values[1:2], False, spatial)
    for _ in range(2):   # epoch after epoch
        draws, partners = many.epoch(37, 8, torch.device("cpu"))    # 5 steps, the last of 5
        alone, alone_partners = one.epoch(37, 8, torch.device("cpu"))
        for key in draws:
            assert draws[key].shape[:3] == (5, 8, 3)
            torch.testing.assert_close(draws[key][:, :, 1], alone[key][:, :, 0], rtol=0, atol=0)
        assert (partners is None) == (not aug.needs_partner)
        if partners is not None and alone_partners is not None:
            # one partner stream, shared by the models
            assert [len(p) for p in partners] == [8, 8, 8, 8, 5]
            assert all(torch.equal(p, q) for p, q in zip(partners, alone_partners, strict=True))


def test_partner_permutation_is_the_argsort_of_the_first_keys() -> None:
    keys = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.0])
    assert augment.partner_permutation(keys, 4).tolist() == [1, 3, 0, 2]
    drawn = augment.draw_partners(np.random.default_rng(0), 3, 7)
    assert drawn.shape == (3, 7)
    perm = augment.partner_permutation(torch.as_tensor(drawn[0]), 5)
    assert sorted(perm.tolist()) == list(range(5))


@pytest.mark.parametrize("n", [21, 20, 3])
def test_epoch_partners_are_each_steps_partner_permutation(n: int) -> None:
    keys = augment.draw_partners(np.random.default_rng(n), 3 if n > 3 else 1, 7)
    perms = augment.epoch_partners(keys, n)
    assert len(perms) == keys.shape[0]
    for step, perm in enumerate(perms):
        b = min(7, n - 7 * step)
        assert torch.equal(perm, augment.partner_permutation(torch.as_tensor(keys[step]), b))


@pytest.mark.parametrize("name", [m for m in NAMES if not augment.get(m).mixes_inputs])
def test_logit_grad_is_the_adjoint_of_apply_on_logits(name: str) -> None:
    # The linear sweep's closed-form backward pass: for every method that acts on logits,
    # logit_grad(g) must equal autograd's vector-Jacobian product of apply's logits.
    aug = augment.get(name)
    rng = np.random.default_rng(0)
    b, values = 9, np.array([0.0, 0.3, 0.9])
    draws = EpochDraws(aug, SEED, ("test",), values, False, None).epoch(b, b, torch.device("cpu"),
                                                                        torch.float64)[0]
    d = step_slice(draws, 0, b)
    partner = torch.as_tensor(rng.permutation(b)) if aug.needs_partner else None
    z = torch.as_tensor(rng.normal(size=(b, 3)), dtype=torch.float64).requires_grad_(True)
    t = torch.zeros(b, 1, 2, dtype=torch.float64)
    t[torch.arange(b), 0, torch.as_tensor(rng.integers(0, 2, b))] = 1.0
    out, _ = aug.apply(z, t, torch.as_tensor(values), d, partner)
    g = torch.as_tensor(rng.normal(size=(b, 3)), dtype=torch.float64)
    (expected,) = torch.autograd.grad(out, z, g)
    torch.testing.assert_close(aug.logit_grad(g, torch.as_tensor(values), d, partner), expected,
                               rtol=1e-12, atol=1e-12)


def test_sweep_adam_is_torch_adam_bit_for_bit() -> None:
    optim = replace(defaults().optim, lr=0.05)
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(4, 6, generator=gen)
    grads = [torch.randn(4, 6, generator=gen) for _ in range(25)]
    ours = start.clone()
    adam = linear.SweepAdam(ours, optim)
    ref = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=optim.lr, betas=optim.betas, eps=optim.eps)
    for grad in grads:
        adam.step(ours, grad)
        ref.grad = grad.clone()
        opt.step()
    assert torch.equal(ours, ref.detach())


@pytest.mark.parametrize("alpha", [0.05, 0.4, 1.0, 3.0])
def test_symmetric_beta_has_the_beta_law(alpha: float) -> None:
    from scipy import stats

    from labaug.augment.mixup import symmetric_beta

    n = 400_000
    drawn = symmetric_beta(np.random.default_rng(1), alpha, (n,))
    assert drawn.dtype == np.float32 and drawn.shape == (n,)
    x = drawn.astype(np.float64)
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    law = stats.beta(alpha, alpha)
    for q in (1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        p = law.cdf(q)
        z = ((x <= q).mean() - p) / math.sqrt(p * (1 - p) / n)
        assert abs(z) < 5, (q, z)
    # the same generator state gives the same draws, in one piece or alone
    one = symmetric_beta(np.random.default_rng(2), alpha, (3, 4))
    assert np.array_equal(one, symmetric_beta(np.random.default_rng(2), alpha, (3, 4)))


# --- an independent reference: explicit input mixing, plain nn.Linear and Adam -----------------


def _smoothing_batch(xb: Tensor, tb: Tensor, value: float, draws: dict[str, np.ndarray],
                     step: int, partner: Tensor | None, shape: tuple[int, int, int]
                     ) -> tuple[Tensor, Tensor]:
    return xb, (1.0 - value) * tb + value / 2.0


def _mixup_batch(xb: Tensor, tb: Tensor, value: float, draws: dict[str, np.ndarray],
                 step: int, partner: Tensor | None, shape: tuple[int, int, int]
                 ) -> tuple[Tensor, Tensor]:
    assert partner is not None
    b = len(xb)
    lam = torch.as_tensor(draws["lam"][step, :b], dtype=xb.dtype).expand(b)   # per batch: (1,)
    return (lam[:, None] * xb + (1.0 - lam[:, None]) * xb[partner],
            lam * tb + (1.0 - lam) * tb[partner])


def _cutmix_batch(xb: Tensor, tb: Tensor, value: float, draws: dict[str, np.ndarray],
                  step: int, partner: Tensor | None, shape: tuple[int, int, int]
                  ) -> tuple[Tensor, Tensor]:
    assert partner is not None
    b = len(xb)
    c, h, w = shape
    boxes = np.broadcast_to(draws["box"][step, :b], (b, 4))
    images = xb.reshape(b, c, h, w).clone()
    lam = torch.empty(b, dtype=xb.dtype)
    for i in range(b):
        r0, r1, c0, c1 = (int(v) for v in boxes[i])
        images[i, :, r0:r1, c0:c1] = xb[partner[i]].reshape(c, h, w)[:, r0:r1, c0:c1]
        lam[i] = 1.0 - (r1 - r0) * (c1 - c0) / (h * w)      # the area actually pasted
    np.testing.assert_allclose(lam.numpy(), np.broadcast_to(draws["lam"][step, :b], (b,)),
                               rtol=0, atol=1e-7)
    return images.reshape(b, -1), lam * tb + (1.0 - lam) * tb[partner]


BatchFn = Callable[[Tensor, Tensor, float, dict[str, np.ndarray], int, Tensor | None,
                    tuple[int, int, int]], tuple[Tensor, Tensor]]

# Each method's augmentation written out on the inputs. Every method that runs on images needs
# one here (a new method comes with its reference); weight decay is Adam's own weight_decay.
REFERENCE_BATCHES: dict[str, BatchFn] = {
    "label_smoothing": _smoothing_batch,
    "mixup": _mixup_batch,
    "cutmix": _cutmix_batch,
}


def reference_linear(data: LinearData, name: str, value: float, seed: int, optim: OptimConfig,
                     per_batch: bool) -> np.ndarray:
    """One model, trained as the paper states it: augmented batches, nn.Linear, torch Adam."""
    aug = augment.get(name)
    assert data.image_shape is not None
    batch_fn = REFERENCE_BATCHES.get(name)
    x = torch.as_tensor(data.x_train)
    t = (torch.as_tensor(data.y_train) + 1.0) / 2.0
    n, n_features = x.shape
    model = torch.nn.Linear(n_features, 1, bias=False)
    init = torch.rand(n_features, generator=torch_rng(seed, "linear", "init"),
                      dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(((2.0 * init - 1.0) / math.sqrt(n_features)).to(torch.float32))
    opt = torch.optim.Adam(model.parameters(), lr=optim.lr, betas=optim.betas, eps=optim.eps,
                           weight_decay=aug.decay(value))
    order_rng = torch_rng(seed, "linear", "order")
    method_rng = numpy_rng(seed, "linear", name, augment.hp_key(value))
    partner_rng = numpy_rng(seed, "linear", "partner")
    steps = math.ceil(n / optim.batch_size)
    spatial = (data.image_shape[1], data.image_shape[2])
    for _ in range(optim.epochs):
        order = torch.randperm(n, generator=order_rng)
        draws = aug.draw(method_rng, value, steps, optim.batch_size, per_batch, spatial)
        keys = (augment.draw_partners(partner_rng, steps, optim.batch_size)
                if aug.needs_partner else None)
        for step in range(steps):
            idx = order[step * optim.batch_size:(step + 1) * optim.batch_size]
            b = len(idx)
            partner = None if keys is None else torch.argsort(torch.as_tensor(keys[step, :b]))
            xb, tb = x[idx], t[idx]
            if batch_fn is not None:
                xb, tb = batch_fn(xb, tb, value, draws, step, partner, data.image_shape)
            loss = F.binary_cross_entropy_with_logits(model(xb)[:, 0], tb)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
    return np.asarray(model.weight.detach().to(torch.float64).numpy()[0], dtype=np.float64)


@pytest.mark.parametrize(("method", "per_batch"), IMAGE_CASES, ids=IMAGE_IDS)
def test_sweep_equals_explicit_input_mixing_with_nn_linear(method: str, per_batch: bool) -> None:
    aug = augment.get(method)
    if method not in REFERENCE_BATCHES:
        assert aug.decay(0.3) > 0 and not aug.needs_partner, (
            f"{method}: write its augmentation out in REFERENCE_BATCHES")
    data = image_data(n=200, shape=(2, 3, 5))
    optim = replace(IMAGE_OPTIM, epochs=2)
    grid = defaults().grids[method]
    values = [grid.low + 0.4 * (grid.high - grid.low), grid.high]
    swept = train_sweep(data, method, values, SEED, optim, mix_per_batch=per_batch)
    for m, value in enumerate(values):
        ref = reference_linear(data, method, value, SEED, optim, per_batch)
        np.testing.assert_allclose(swept.weights[m], ref, rtol=0, atol=1e-5)
    assert np.abs(swept.weights[0] - swept.weights[1]).max() > 1e-4


# --- the ResNet trainer -----------------------------------------------------------------------


def _class_channel_data() -> ClassChannelData:
    rng = np.random.default_rng(1)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n).astype(np.int64)
        x = rng.integers(0, 100, (n, 1, 6, 6)).astype(np.uint8)
        for k in range(3):
            x[y == k, 0, 2 * k:2 * k + 2, :] = 250
        return x, y

    (xtr, ytr), (xte, yte) = make(90), make(30)
    return class_channel_data(RawImages(xtr, ytr, xte, yte, ("a", "b", "c")), "gen", 0)


RESNET_OPTIM = replace(defaults().optim, batch_size=30, epochs=1)
RESNET = replace(defaults().resnet, datasets=("gen",), width=2)


def _one_epoch(data: ClassChannelData, method: str, hp: dict[str, float] | None = None,
               per_batch: bool = False) -> tuple[ResNetTrainer, float]:
    cfg = replace(RESNET, hp={**RESNET.hp, **(hp or {})})
    trainer = ResNetTrainer(data, ResNetRun("gen", method, 0), RESNET_OPTIM, cfg,
                            mix_per_batch=per_batch)
    loss, _ = trainer.train_epoch()
    return trainer, loss


@pytest.mark.parametrize("method", CLASS_CHANNEL_METHODS)
def test_resnet_trainer_runs_every_class_channel_method(method: str) -> None:
    data = _class_channel_data()
    trainer, loss = _one_epoch(data, method)
    assert trainer.value == RESNET.values(method)[0]
    assert trainer.aug is augment.get(method)
    assert math.isfinite(loss) and 0 <= trainer.test_error() <= 1
    for x, t in trainer._batches():
        assert x.shape == (30, 2, 6, 6) and t.shape == (30, 3)
        torch.testing.assert_close(t.sum(dim=1), torch.ones(30))


@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("method", CLASS_CHANNEL_METHODS)
def test_resnet_hyperparameter_zero_is_erm_bitwise(method: str, per_batch: bool) -> None:
    # Mixup and CutMix with alpha = 0, weight decay 0: the same weights, bit for bit, as label
    # smoothing with a = 0 (one-hot targets, untouched inputs) after an epoch on the CPU.
    data = _class_channel_data()
    reference, ref_loss = _one_epoch(data, "label_smoothing", {"label_smoothing": 0.0})
    trainer, loss = _one_epoch(data, method, {method: 0.0}, per_batch)
    assert loss == ref_loss
    ours, theirs = trainer.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # ... and not vacuously: the method's own value does change the weights.
    if RESNET.values(method)[0] > 0:
        moved, _ = _one_epoch(data, method, per_batch=per_batch)
        assert not all(torch.equal(moved.model.state_dict()[k], theirs[k]) for k in theirs
                       if theirs[k].is_floating_point())


"""Exact minimizers of the population losses (Theorems 3.1-3.4, Corollary 3.2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize as scipy_minimize
from scipy.special import expit

from labaug import augment, theory
from labaug.config import Variance, defaults
from labaug.losses import binary_cross_entropy, weight_decay_penalty
from labaug.results import METHOD_DIM

torch.set_num_threads(1)

SYN = defaults().synthetic
LOW_NOISE = 0.1
D = SYN.d
WD_GRID = np.linspace(0.0, 0.1, 20)[1:]
LS_GRID = np.linspace(0.0, 0.1, 20)[1:]
HIGH, LOW = slice(D, 2 * D), slice(0, D)
VARIANTS: tuple[Variance, ...] = ("zero", "low")


def test_sum_of_uniforms_quadrature_is_exact_for_moments() -> None:
    x, w = theory.sum_of_uniforms_quadrature(D, 1.0, 5.0, 8)
    assert w.sum() == pytest.approx(1.0, abs=1e-13)
    assert x @ w == pytest.approx(D * 3.0, rel=1e-13)
    assert (x - 15.0) ** 2 @ w == pytest.approx(D * 16.0 / 12.0, rel=1e-12)
    # fourth central moment of a sum of i.i.d. uniforms: d mu4 + 3 d (d - 1) sigma^4
    mu4, var = 16.0**2 / 80.0, 16.0 / 12.0
    assert (x - 15.0) ** 4 @ w == pytest.approx(D * mu4 + 3 * D * (D - 1) * var**2, rel=1e-12)
    assert np.all(w > 0) and x.min() > 5.0 and x.max() < 25.0


@pytest.mark.parametrize("a", LS_GRID[[0, 9, 18]])
def test_theorem_3_3_label_smoothing_has_no_high_variance_weight(a: float) -> None:
    sol = theory.label_smoothing_minimizer(SYN, "zero", LOW_NOISE, a)
    assert sol.grad_norm <= 1e-8
    assert sol.w_high_norm <= 1e-6
    np.testing.assert_allclose(sol.theta, theory.label_smoothing_closed_form(SYN, a),
                               rtol=1e-9, atol=1e-9)
    # sigma(w . x) = 1 - a/2 on every positive point of an independent sample
    x, y = theory.sample_points(SYN, 2000, 7, "zero", LOW_NOISE)
    prob = expit(x[y > 0] @ sol.weight(D))
    np.testing.assert_allclose(prob, 1.0 - a / 2.0, rtol=0, atol=1e-9)


def test_label_smoothing_low_variance_keeps_little_high_weight() -> None:
    # Appendix B: with a noisy low block the minimizer is no longer exactly zero on the high
    # block, but it stays far below weight decay's.
    for a in LS_GRID[[0, 18]]:
        sol = theory.label_smoothing_minimizer(SYN, "low", LOW_NOISE, a)
        assert sol.grad_norm <= 1e-8
        assert 0 < sol.w_high_norm < 0.05 * sol.w_low_norm


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_theorem_3_1_weight_decay_keeps_high_variance_weight(variance: Variance) -> None:
    for lam in WD_GRID:
        sol = theory.weight_decay_minimizer(SYN, variance, LOW_NOISE, lam, nodes=16)
        assert sol.grad_norm <= 1e-8
        assert sol.w_high_norm > 0.1
        assert sol.w_high_norm > sol.w_low_norm
    # more decay, smaller weights
    small = theory.weight_decay_minimizer(SYN, variance, LOW_NOISE, WD_GRID[0])
    large = theory.weight_decay_minimizer(SYN, variance, LOW_NOISE, WD_GRID[-1])
    assert small.w_high_norm > large.w_high_norm


def _monte_carlo_weight_decay(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Independent check: the full 2d-dim problem on a sample, scipy L-BFGS-B, no symmetry."""
    margin = x * y[:, None]

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        m = margin @ w
        loss = np.logaddexp(0.0, -m).mean() + 0.5 * lam * w @ w
        grad = -(margin * expit(-m)[:, None]).mean(axis=0) + lam * w
        return float(loss), grad

    res = scipy_minimize(fun, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                         options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 1000})
    return np.asarray(res.x)


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_weight_decay_agrees_with_independent_monte_carlo(variance: Variance) -> None:
    x, y = theory.sample_points(SYN, 100_000, 123, variance, LOW_NOISE)
    for lam in WD_GRID[[0, 9, 18]]:
        exact = theory.weight_decay_minimizer(SYN, variance, LOW_NOISE, lam)
        w_mc = _monte_carlo_weight_decay(x, y, lam)
        assert np.linalg.norm(w_mc[HIGH]) == pytest.approx(exact.w_high_norm, rel=0.01)
        assert np.linalg.norm(w_mc[LOW]) == pytest.approx(exact.w_low_norm, rel=0.02)
        assert np.linalg.norm(w_mc - exact.weight(D)) < 0.02 * np.linalg.norm(exact.weight(D))


def _mixup_high_norms(n: int, seeds: range, alphas: tuple[float, ...]) -> np.ndarray:
    out = []
    for seed in seeds:
        x, y = theory.sample_points(SYN, n, seed, "zero", LOW_NOISE)
        sample = theory.mixup_sample(x, y, D, seed, "zero")
        out.append([theory.mixup_minimizer(sample, a).w_high_norm for a in alphas])
    return np.array(out)


def test_theorem_3_4_mixup_high_weight_small_and_shrinking_with_sample() -> None:
    alphas = (0.2, 0.5, 1.0)
    small = _mixup_high_norms(1_000, range(4), alphas)
    large = _mixup_high_norms(100_000, range(4), alphas)
    assert large.max() < 0.03
    assert large.mean() < 0.5 * small.mean()
    # the exact (quadrature) minimizer of the zero-variance Mixup loss: no high-block weight
    for alpha in alphas:
        exact = theory.solve(theory.mixup_quadrature_design(SYN, alpha, 8, 24))
        assert exact.grad_norm <= 1e-8
        assert exact.w_high_norm <= 1e-9
        assert exact.w_low_norm > 1.0


@pytest.mark.parametrize("alpha", [0.0526, 1.0])
def test_mixup_quadrature_agrees_with_sample(alpha: float) -> None:
    exact = theory.solve(theory.mixup_quadrature_design(SYN, alpha, 8, 24))
    x, y = theory.sample_points(SYN, 200_000, 5, "zero", LOW_NOISE)
    mc = theory.mixup_minimizer(theory.mixup_sample(x, y, D, 5, "zero"), alpha)
    assert mc.grad_norm <= 1e-8
    assert mc.w_low_norm == pytest.approx(exact.w_low_norm, rel=0.02)
    assert mc.w_high_norm < 0.03


def test_solution_stable_when_sample_or_nodes_double() -> None:
    for variance in VARIANTS:
        x, y = theory.sample_points(SYN, 100_000, 11, variance, LOW_NOISE)
        x2, y2 = theory.sample_points(SYN, 200_000, 11, variance, LOW_NOISE)
        one = theory.mixup_minimizer(theory.mixup_sample(x, y, D, 11, variance), 0.5)
        two = theory.mixup_minimizer(theory.mixup_sample(x2, y2, D, 11, variance), 0.5)
        # The Monte Carlo spread of theta at 100,000 points is about 0.5% (8 samples), so the
        # two solutions differ by about 0.65% (1 std); 2.5% is about 4 std.
        assert np.linalg.norm(one.theta - two.theta) < 0.025 * np.linalg.norm(two.theta)
        for target in (1.0, 0.95):
            coarse = theory.solve(theory.margin_design(SYN, variance, LOW_NOISE, target, 16),
                                  0.05 if target == 1.0 else 0.0)
            fine = theory.solve(theory.margin_design(SYN, variance, LOW_NOISE, target, 32),
                                0.05 if target == 1.0 else 0.0)
            np.testing.assert_allclose(coarse.theta, fine.theta, rtol=0, atol=1e-10)
    coarse = theory.solve(theory.mixup_quadrature_design(SYN, 0.3, 6, 16))
    fine = theory.solve(theory.mixup_quadrature_design(SYN, 0.3, 12, 32))
    np.testing.assert_allclose(coarse.theta, fine.theta, rtol=0, atol=1e-8)


def test_same_seed_same_numbers() -> None:
    runs = []
    for _ in range(2):
        x, y = theory.sample_points(SYN, 20_000, 9, "low", LOW_NOISE)
        runs.append(theory.mixup_minimizer(theory.mixup_sample(x, y, D, 9, "low"), 0.7).theta)
    np.testing.assert_array_equal(runs[0], runs[1])
    x, y = theory.sample_points(SYN, 20_000, 10, "low", LOW_NOISE)
    other = theory.mixup_minimizer(theory.mixup_sample(x, y, D, 10, "low"), 0.7).theta
    assert not np.array_equal(runs[0], other)


def _symmetrized(x: np.ndarray) -> np.ndarray:
    """Copies of a sample under every cyclic shift of each block's coordinates (d * d copies)."""
    copies = [np.concatenate([np.roll(x[:, LOW], a, axis=1), np.roll(x[:, HIGH], b, axis=1)],
                             axis=1) for a in range(D) for b in range(D)]
    return np.concatenate(copies, axis=0)


def _full_gradient(method: str, hp: float, w: np.ndarray, x: np.ndarray, y: np.ndarray,
                   lam: np.ndarray | None = None, perm: np.ndarray | None = None) -> np.ndarray:
    """The trainer's own loss in 2d dims, differentiated by autograd.

    As in `labaug.train.linear.train_sweep`: the registered method augments the logits (one
    model) and the two-class one-hot targets, and adds its coupled decay as lambda/2 ||w||^2.
    """
    aug = augment.get(method)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    logits = torch.as_tensor(x) @ wt
    t1 = (torch.as_tensor(y) + 1.0) / 2.0
    t = torch.stack([1.0 - t1, t1], dim=1)[:, None]              # (n, 1, 2)
    draws = {} if lam is None else {"lam": torch.as_tensor(lam)[:, None]}
    partner = None if perm is None else torch.as_tensor(perm)
    z, q = aug.apply(logits[:, None], t, torch.tensor([hp], dtype=torch.float64), draws,
                     partner)
    loss = binary_cross_entropy(z[:, 0], q[:, 0, 1]).mean()
    loss = loss + weight_decay_penalty(wt, torch.tensor(aug.decay(hp), dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss, wt)
    return grad.numpy()


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_full_gradient_vanishes_at_reduced_solution(variance: Variance) -> None:
    """Solving in (theta_low, theta_high) solves the full problem on the symmetrized sample."""
    n = 400
    x, y = theory.sample_points(SYN, n, 3, variance, LOW_NOISE)
    xs = _symmetrized(x)
    ys = np.tile(y, D * D)
    points = theory.reduce_points(x, D)
    sample = theory.mixup_sample(x, y, D, 3, variance)
    lam = theory.mixup_weights(sample.uniforms, 0.4)
    perm = np.concatenate([sample.partner + c * n for c in range(D * D)])
    cases = [
        ("weight_decay", 0.02, theory.solve(theory.margin_design_sample(points, y, 1.0), 0.02)),
        ("label_smoothing", 0.05,
         theory.solve(theory.margin_design_sample(points, y, 1.0 - 0.025))),
        ("mixup", 0.4, theory.mixup_minimizer(sample, 0.4)),
    ]
    for method, hp, sol in cases:
        mixes = augment.get(method).needs_partner
        kwargs = {"lam": np.tile(lam, D * D), "perm": perm} if mixes else {}
        grad = _full_gradient(method, hp, sol.weight(D), xs, ys, **kwargs)
        assert sol.grad_norm <= 1e-9
        assert np.linalg.norm(grad) <= 1e-8, method
        assert np.linalg.norm(grad) == pytest.approx(sol.grad_norm, abs=1e-10)
        # not vacuous: away from the solution the same gradient is far from zero
        off = _full_gradient(method, hp, sol.weight(D) * 1.05, xs, ys, **kwargs)
        assert np.linalg.norm(off) > 1e-4, method
        # and on the raw (unsymmetrized) sample it is small but not zero (sampling noise)
        raw = _full_gradient(method, hp, sol.weight(D), x, y,
                             **({"lam": lam, "perm": sample.partner} if mixes else {}))
        assert np.linalg.norm(raw) < 0.05


@pytest.mark.parametrize("variance", ["zero", "low"])
def test_corollary_3_2_max_margin_matches_closed_form(variance: Variance) -> None:
    w = theory.max_margin(SYN, variance, LOW_NOISE)
    closed = theory.max_margin_closed_form(SYN, variance, LOW_NOISE)
    np.testing.assert_allclose(w, closed, rtol=0, atol=1e-8)
    g = SYN.gamma * (1 - LOW_NOISE) if variance == "low" else SYN.gamma
    assert np.linalg.norm(closed[HIGH]) == pytest.approx(1 / (math.sqrt(D) * (1 + g * g)))
    assert np.linalg.norm(closed[LOW]) == pytest.approx(g / (math.sqrt(D) * (1 + g * g)))
    assert np.linalg.norm(w[HIGH]) > np.linalg.norm(w[LOW])
    # feasible with margin exactly 1 on the support; any random support point has margin >= 1
    margins = theory.support_vertices(SYN, variance, LOW_NOISE) @ w
    assert margins.min() == pytest.approx(1.0, abs=1e-9)
    x, y = theory.sample_points(SYN, 5000, 1, variance, LOW_NOISE)
    assert ((x * y[:, None]) @ w).min() >= 1.0 - 1e-9


def test_weight_decay_direction_tends_to_max_margin() -> None:
    mm = theory.max_margin_closed_form(SYN, "zero", LOW_NOISE)
    mm = mm / np.linalg.norm(mm)
    cosines = []
    for lam in (0.1, 0.01, 0.001):
        w = theory.weight_decay_minimizer(SYN, "zero", LOW_NOISE, lam).weight(D)
        cosines.append(float(w @ mm / np.linalg.norm(w)))
    assert cosines[0] < cosines[1] < cosines[2] < 1.0


def test_theory_job_writes_the_result_contract_and_the_figure(tmp_path: Path) -> None:
    from labaug import plots
    from labaug.exact import compare
    from labaug.jobs import aggregate_job, linear_job, theory_job
    from labaug.results import PROVENANCE_KEYS, read_netcdf
    from labaug.schema import validate_config
    from tests.conftest import REPO, merged_config

    config = merged_config("smoke")
    config["seeds"] = [0, 1]
    config["theory"] = {**config.get("theory", {}), "n_samples": 5000}
    validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert merged_config()["theory"]["n_samples"] >= 1_000_000   # the default run
    synthetic = augment.for_experiment(config["methods"], "synthetic")
    solved = [m for m in synthetic if m in theory.SOLVERS]
    unsolved = [m for m in synthetic if m not in theory.SOLVERS]
    n_hp = config["grids"][solved[0]]["size"]
    files = {}
    for variance in VARIANTS:
        out = tmp_path / f"theory_{variance}.nc"
        theory_job(config, variance, out)
        ds = read_netcdf(out)
        assert dict(ds.sizes) == {METHOD_DIM: len(solved), "grid": n_hp, "feature": 2 * D}
        assert list(ds[METHOD_DIM].values) == solved
        assert ds.attrs["methods_without_population_loss"] == (", ".join(unsolved) or "none")
        assert ds["hp_value"].dims == (METHOD_DIM, "grid")
        for key in PROVENANCE_KEYS:
            assert key in ds.attrs, key
        for name in ("w_high_norm", "w_low_norm", "grad_norm"):
            assert ds[name].dims == (METHOD_DIM, "grid")
            assert ds[name].attrs["long_name"]
            assert np.isnan(ds[name].values[:, 0]).all()        # hp 0: no finite minimizer
            assert np.isfinite(ds[name].values[:, 1:]).all()
        assert (ds["grad_norm"].values[:, 1:] <= 1e-8).all()
        wd = ds.sel(augmentation="weight_decay")
        assert (wd["w_high_norm"].values[1:] > wd["w_low_norm"].values[1:]).all()
        ls = ds.sel(augmentation="label_smoothing")["w_high_norm"].values[1:]
        mixup = ds.sel(augmentation="mixup")
        assert (mixup["w_high_norm"].values[1:] < 0.03).all()
        if variance == "zero":
            assert (ls <= 1e-6).all()
            assert "quadrature" in str(mixup["evaluation"].values)
        else:
            assert "5000 points" in str(mixup["evaluation"].values)
        closed = theory.max_margin_closed_form(SYN, variance, LOW_NOISE)
        assert float(ds["max_margin_w_high_norm"]) == pytest.approx(np.linalg.norm(closed[HIGH]))
        assert float(ds["max_margin_closed_form_gap"]) < 1e-8
        # a short trained sweep of every synthetic method, compared and drawn
        seeds = []
        for method in synthetic:
            paths = [tmp_path / f"{variance}_{method}_{seed}.nc" for seed in config["seeds"]]
            linear_job(config, "synthetic", variance, method, config["seeds"], paths)
            seeds += paths
        result = tmp_path / f"linear_{variance}.nc"
        aggregate_job(config, seeds, result, "synthetic")
        assert list(read_netcdf(result)[METHOD_DIM].values) == synthetic
        cmp = compare(read_netcdf(result), ds)
        assert cmp["trained_mean"].dims == (METHOD_DIM, "grid")
        assert list(cmp[METHOD_DIM].values) == solved
        np.testing.assert_allclose(cmp.sel(augmentation="weight_decay")["exact"].values[1:],
                                   wd["w_high_norm"].values[1:])
        assert np.isfinite(cmp["gap"].values[:, 1:]).all()
        files[f"result_{variance}"] = result
        files[f"theory_{variance}"] = out
    pdf = tmp_path / "theory.pdf"
    plots.theory_comparison(pdf, **files)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    fig1 = tmp_path / "fig1.pdf"
    plots.fig1(files["result_zero"], fig1, theory=files["theory_zero"])
    assert fig1.read_bytes()[:5] == b"%PDF-"


def test_solver_table_names_registered_synthetic_methods() -> None:
    assert set(theory.SOLVERS) <= set(augment.for_experiment(augment.names(), "synthetic"))
    problem = theory.Problem(SYN, "zero", LOW_NOISE, defaults().theory)
    for method in theory.SOLVERS:
        sol, design = theory.exact_minimizer(method, problem, 0.05)
        assert sol.grad_norm <= defaults().theory.max_grad_norm, method
        assert design.evaluation
    unknown = next((m for m in augment.names() if m not in theory.SOLVERS), "no_such_method")
    with pytest.raises(theory.NoPopulationLoss, match=unknown):
        theory.exact_minimizer(unknown, problem, 0.5)


def test_schema_rejects_bad_theory_settings() -> None:
    from labaug.schema import ConfigError, validate_config
    from tests.conftest import REPO, merged_config

    for bad in ({"n_samples": 10}, {"tol": 0}, {"quadrature": 32}):
        config = merged_config()
        config["theory"] = bad
        with pytest.raises(ConfigError, match="theory"):
            validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")

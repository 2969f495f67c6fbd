"""Exact minimizers as result Datasets, and trained sweeps compared with them.

The solvers are `labaug.theory`; this module turns them into the theory result files
(`results/theory/synthetic_{variance}.nc`) and compares a trained sweep with them. A method
without a population loss in `labaug.theory.SOLVERS` is left out of the theory file, said so by
name in the log and in the file's attributes, so figures draw no exact line for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from labaug import augment
from labaug.config import GridConfig, SyntheticConfig, TheoryConfig, Variance
from labaug.results import GRID_DIM, HP_VALUE_LONG_NAME, METHOD_DIM, methods_of
from labaug.theory import (
    SOLVERS,
    Problem,
    exact_minimizer,
    max_margin,
    max_margin_closed_form,
)

log = logging.getLogger(__name__)


def solvable(methods: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """(methods with a population loss, methods without one), among synthetic-data methods."""
    synthetic = augment.for_experiment(list(methods), "synthetic")
    return [m for m in synthetic if m in SOLVERS], [m for m in synthetic if m not in SOLVERS]


def theory_dataset(syn: SyntheticConfig, configured: Sequence[str],
                   method_grids: Mapping[str, GridConfig], low_noise: float, variance: Variance,
                   tcfg: TheoryConfig) -> xr.Dataset:
    """Exact minimizers for every solvable method and hyperparameter > 0 of its grid
    (``configured``: the configured methods, in order; ``method_grids``: their grids)."""
    d = syn.d
    methods, unsolved = solvable(list(configured))
    for name in unsolved:
        log.info("no population loss for %s in labaug.theory: no exact minimizer is drawn "
                 "for it", name)
    if not methods:
        raise ValueError(f"none of the configured methods ({', '.join(configured)}) has a "
                         f"population loss in labaug.theory ({', '.join(SOLVERS)})")
    grids = {m: method_grids[m].values() for m in methods}
    n_hp = max(len(g) for g in grids.values())
    shape = (len(methods), n_hp)
    hp_value = np.full(shape, np.nan)
    out = {k: np.full(shape, np.nan) for k in ("w_high_norm", "w_low_norm", "grad_norm",
                                                 "iterations")}
    weight = np.full((*shape, 2 * d), np.nan)
    evaluation: list[str] = []
    n_points = np.zeros(len(methods), dtype=np.int64)
    problem = Problem(syn, variance, low_noise, tcfg)

    for i, method in enumerate(methods):
        grid = grids[method]
        hp_value[i, :len(grid)] = grid
        description = ""
        for h, value in enumerate(grid):
            if value <= 0:
                continue                      # no finite minimizer: plain ERM
            start = time.perf_counter()
            sol, design = exact_minimizer(method, problem, float(value))
            description = design.evaluation
            n_points[i] = len(design.weights)
            if sol.grad_norm > tcfg.max_grad_norm:
                raise RuntimeError(f"{method} {value:g}: gradient norm {sol.grad_norm:.3g} "
                                   f"above {tcfg.max_grad_norm:g}")
            out["w_high_norm"][i, h] = sol.w_high_norm
            out["w_low_norm"][i, h] = sol.w_low_norm
            out["grad_norm"][i, h] = sol.grad_norm
            out["iterations"][i, h] = sol.iterations
            weight[i, h] = sol.weight(d)
            log.info("%s %s=%.4g: |w_high| %.6g |w_low| %.6g grad %.2e (%d it, %.2f s)",
                     variance, method, value, sol.w_high_norm, sol.w_low_norm, sol.grad_norm,
                     sol.iterations, time.perf_counter() - start)
        evaluation.append(description)

    mm = max_margin(syn, variance, low_noise)
    mm_closed = max_margin_closed_form(syn, variance, low_noise)
    lo, hi = slice(0, d), slice(d, 2 * d)
    long = {
        "w_high_norm": "norm of the exact minimizer's weights on the high-variance block",
        "w_low_norm": "norm of the exact minimizer's weights on the low-variance block "
                      "(minimum-norm minimizer where the low block is not identified)",
        "grad_norm": "norm of the full 2d-dim gradient of the population loss at the solution",
        "iterations": "Newton iterations",
    }
    data_vars: dict[str, Any] = {
        k: ((METHOD_DIM, GRID_DIM), v, {"long_name": long[k]}) for k, v in out.items()
    }
    data_vars["weight"] = ((METHOD_DIM, GRID_DIM, "feature"), weight,
                           {"long_name": "the exact minimizer's weight vector w"})
    data_vars["evaluation"] = ((METHOD_DIM,), np.array(evaluation, dtype=object),
                               {"long_name": "how the expectation over the data was evaluated"})
    data_vars["n_points"] = ((METHOD_DIM,), n_points,
                             {"long_name": "quadrature nodes or sample points per expectation"})
    data_vars["max_margin_w_high_norm"] = ((), float(np.linalg.norm(mm[hi])), {
        "long_name": "high-variance block norm of the max-margin solution (Def. 2.2, margin 1)"})
    data_vars["max_margin_w_low_norm"] = ((), float(np.linalg.norm(mm[lo])), {
        "long_name": "low-variance block norm of the max-margin solution (Def. 2.2, margin 1)"})
    data_vars["max_margin_closed_form_gap"] = ((), float(np.abs(mm - mm_closed).max()), {
        "long_name": "max |w_QP - w_closed_form| over coordinates of the max-margin solution"})
    data_vars["max_margin_weight"] = (("feature",), mm, {
        "long_name": "max-margin solution (Def. 2.2) from the QP over the support's vertices"})
    return xr.Dataset(
        data_vars,
        coords={
            METHOD_DIM: methods,
            GRID_DIM: np.arange(n_hp),
            "feature": np.arange(2 * d),
            "hp_value": ((METHOD_DIM, GRID_DIM), hp_value, {"long_name": HP_VALUE_LONG_NAME}),
        },
        attrs={
            "variance": variance,
            "theory_seed": tcfg.seed,
            "n_samples": tcfg.n_samples,
            "quadrature_nodes_per_piece": tcfg.quadrature_nodes,
            "solver": f"Newton with backtracking, float64, stop at gradient norm <= {tcfg.tol:g}",
            "note": "hp_value 0 has no finite minimizer (plain logistic loss) and is NaN",
            "methods_without_population_loss": ", ".join(unsolved) or "none",
        },
    )


def compare(trained: xr.Dataset, exact: xr.Dataset) -> xr.Dataset:
    """Trained w_high_norm (mean, std over seeds) beside the exact minimizer's, and the gaps.

    ``gap`` is (trained mean - exact) / ||w*||, the whole exact minimizer's norm, which stays
    meaningful where the exact w_high_norm is 0; ``rel_gap`` is relative to the exact
    w_high_norm itself (NaN where that is below 1e-6); ``weight_distance`` is the mean over
    seeds of ||w - w*|| / ||w*|| for the whole weight vector. Only methods in both files count.
    """
    methods = [m for m in methods_of(trained) if m in methods_of(exact)]
    # Grids of other methods may pad either file's grid axis with NaN: compare the common part.
    n_hp = min(trained.sizes[GRID_DIM], exact.sizes[GRID_DIM])
    tr = trained.sel({METHOD_DIM: methods}).isel({GRID_DIM: slice(0, n_hp)})
    ex = exact.sel({METHOD_DIM: methods}).isel({GRID_DIM: slice(0, n_hp)})
    if not np.allclose(tr["hp_value"].values, ex["hp_value"].values, equal_nan=True):
        raise ValueError("trained and exact results use different hyperparameter grids")
    high = tr["w_high_norm"]
    exact_high = ex["w_high_norm"].drop_vars("hp_value")
    exact_norm = ((ex["w_high_norm"] ** 2 + ex["w_low_norm"] ** 2) ** 0.5).drop_vars("hp_value")
    mean = high.mean("seed")
    out = xr.Dataset({
        "trained_mean": mean.assign_attrs(long_name="trained w_high_norm, mean over seeds"),
        "trained_std": high.std("seed").assign_attrs(
            long_name="trained w_high_norm, std over seeds"),
        "exact": exact_high.assign_attrs(long_name="exact minimizer's w_high_norm"),
        "gap": ((mean - exact_high) / exact_norm).assign_attrs(
            long_name="(trained mean - exact w_high_norm) / ||w*||"),
        "rel_gap": ((mean - exact_high) / exact_high.where(exact_high > 1e-6)).assign_attrs(
            long_name="(trained mean - exact) / exact w_high_norm"),
    })
    if "weight" in tr:
        dist = ((tr["weight"] - ex["weight"].drop_vars("hp_value")) ** 2).sum("feature") ** 0.5
        out["weight_distance"] = (dist / exact_norm).mean("seed").assign_attrs(
            long_name="mean over seeds of ||w - w*|| / ||w*||")
    return out

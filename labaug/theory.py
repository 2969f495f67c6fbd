"""Exact minimizers of the population losses on the synthetic data (Theorems 3.1-3.4, Cor. 3.2).

The synthetic distribution (Def. 4.1) is symmetric in two ways that make its population losses
small problems:

* Label symmetry. (x, y) and (-x, -y) are equally likely, so y * x has the same law for both
  labels. Weight decay and label smoothing depend on w only through the margin m = y w . x.
* Within-block exchangeability. The d low-variance coordinates are exchangeable, and so are the
  d high-variance ones. Each loss is convex and invariant under these permutations, so it has a
  minimizer of the form w = theta_low e_low + theta_high e_high with e_low = 1_d / sqrt(d) on
  the low block and e_high likewise on the high block (for weight decay, and for every loss in
  the low-variance variant, the minimizer is unique, so it *is* this point; in the zero-variance
  variant label smoothing and Mixup cannot see low-block directions orthogonal to e_low, and this
  point is their minimum-norm minimizer). Then ||w_low|| = |theta_low|, ||w_high|| = |theta_high|,
  and x enters only through p = x_low . e_low and q = x_high . e_high, i.e. through the block
  sums. At such a point the full 2d-dimensional gradient is constant on each block, so its norm
  equals the norm of the 2-dim gradient in theta.

Expectations are evaluated as follows.

* Weight decay and label smoothing: by quadrature. y * p and y * q are independent scaled sums of
  d i.i.d. uniforms (Irwin-Hall laws; y * p is the constant sqrt(d) gamma in the zero-variance
  variant). The Irwin-Hall density is a polynomial of degree d - 1 between consecutive integers,
  so Gauss-Legendre on each polynomial piece integrates the (analytic) loss to rounding error.
* Mixup, zero variance: by quadrature too. A mixed pair depends only on the two labels, the
  mixing weight lam and the two high-block sums; Gauss-Jacobi handles the Beta(alpha, alpha)
  weight exactly and Gauss-Legendre the Irwin-Hall pieces, and the integrand is analytic in
  each, so the rule converges geometrically (doubling the nodes changes nothing at 1e-9).
* Mixup, low variance (and as an independent check): by a fixed sample of points, partners (a
  random permutation) and mixing weights (Beta(alpha, alpha) from two uniforms per point drawn
  once and shared by every alpha, by the sweeps' own transform `labaug.augment.mixup.devroye_beta`),
  all drawn from ``labaug.rng``. Reducing to theta is exactly
  solving the full problem on the sample symmetrized over within-block coordinate
  permutations.

Every reduced problem is sum_k omega_k [softplus(theta . F_k) - tau_k theta . F_k]
+ l2 / 2 ||theta||^2, the logistic loss with soft target tau_k at logit theta . F_k (the same
loss as ``labaug.losses.binary_cross_entropy``; l2 / 2 ||w||^2 is the trainer's coupled weight
decay). It is solved in float64 by Newton's method with a backtracking line search.

The max-margin solution (Def. 2.2) is a QP whose constraints y w . x >= 1 range over the
support, a product of intervals; a linear function attains its minimum over that box at a
vertex, so the vertex constraints are exactly the support constraints.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize as scipy_minimize
from scipy.special import expit, roots_jacobi

from labaug.config import SyntheticConfig, TheoryConfig, Variance

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Design:
    """A reduced objective: nodes F (K, 2) in (e_low, e_high) coordinates, weights, soft targets."""

    features: np.ndarray
    weights: np.ndarray
    targets: np.ndarray
    evaluation: str


@dataclass(frozen=True)
class Minimizer:
    """The solution theta = (theta_low, theta_high) and the gradient norm it reached."""

    theta: np.ndarray
    grad_norm: float
    iterations: int

    @property
    def w_low_norm(self) -> float:
        """Norm of the weights on the low-variance block."""
        return float(abs(self.theta[0]))

    @property
    def w_high_norm(self) -> float:
        """Norm of the weights on the high-variance block."""
        return float(abs(self.theta[1]))

    def weight(self, d: int) -> np.ndarray:
        """The full weight vector (2d,) that theta stands for."""
        return embed(self.theta, d)


def embed(theta: np.ndarray, d: int) -> np.ndarray:
    """theta_low e_low + theta_high e_high as a (2d,) weight vector."""
    return np.concatenate([np.full(d, theta[0]), np.full(d, theta[1])]) / math.sqrt(d)


def low_noise_scale(cfg: SyntheticConfig, variance: Variance, low_noise: float) -> float:
    """Half-width of the uniform noise on each low-variance coordinate (0 for zero variance)."""
    return cfg.gamma * low_noise if variance == "low" else 0.0


# --------------------------------------------------------------------------- expectations


def sum_of_uniforms_quadrature(n: int, low: float, high: float,
                               nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights integrating f(U_1 + ... + U_n), U_i ~ U[low, high] i.i.d.

    The density of the sum is the Irwin-Hall density, a polynomial of degree n - 1 on each of
    the n unit pieces of the standardized variable; Gauss-Legendre with ``nodes`` points per
    piece is exact for polynomials of degree < 2 * nodes - n + 1 times that density.
    """
    t, gw = np.polynomial.legendre.leggauss(nodes)
    xs, ws = [], []
    for j in range(n):
        x = j + 0.5 * (t + 1.0)
        k = np.arange(j + 1)
        terms = ((-1.0) ** k)[:, None] * np.array([math.comb(n, int(i)) for i in k])[:, None] \
            * (x[None, :] - k[:, None]) ** (n - 1)
        density = terms.sum(axis=0) / math.factorial(n - 1)
        xs.append(x)
        ws.append(0.5 * gw * density)
    x_all = np.concatenate(xs)
    return n * low + (high - low) * x_all, np.concatenate(ws)


def margin_quadrature(cfg: SyntheticConfig, variance: Variance, low_noise: float,
                      nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (K, 2) of (y p, y q) and their probability weights (K,), exact for this law."""
    d = cfg.d
    scale = low_noise_scale(cfg, variance, low_noise)
    if scale > 0:
        e_sum, e_w = sum_of_uniforms_quadrature(d, -scale, scale, nodes)
        p, p_w = (d * cfg.gamma + e_sum) / math.sqrt(d), e_w
    else:
        p, p_w = np.array([math.sqrt(d) * cfg.gamma]), np.array([1.0])
    s, s_w = sum_of_uniforms_quadrature(d, cfg.u_low, cfg.u_high, nodes)
    q = s / math.sqrt(d)
    pp, qq = np.meshgrid(p, q, indexing="ij")
    ww = np.outer(p_w, s_w)
    return np.stack([pp.ravel(), qq.ravel()], axis=1), ww.ravel()


def sample_points(cfg: SyntheticConfig, n: int, seed: int, variance: Variance,
                  low_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """A float64 sample (x (n, 2d), y (n,)) of Definition 4.1 drawn from ``labaug.rng``."""
    from labaug.rng import numpy_rng

    rng = numpy_rng(seed, "theory", variance, "points", n)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    scale = low_noise_scale(cfg, variance, low_noise)
    low = cfg.gamma * y[:, None] + (rng.uniform(-scale, scale, size=(n, cfg.d)) if scale > 0
                                    else np.zeros((n, cfg.d)))
    high = rng.uniform(cfg.u_low, cfg.u_high, size=(n, cfg.d)) * y[:, None]
    return np.concatenate([low, high], axis=1), y


def reduce_points(x: np.ndarray, d: int) -> np.ndarray:
    """Coordinates (x_low . e_low, x_high . e_high) of each point, shape (n, 2)."""
    return np.stack([x[:, :d].sum(axis=1), x[:, d:].sum(axis=1)], axis=1) / math.sqrt(d)


@dataclass(frozen=True)
class MixupSample:
    """A fixed Mixup sample: reduced points, labels, partners and mixing uniforms."""

    points: np.ndarray
    y: np.ndarray
    partner: np.ndarray
    uniforms: np.ndarray
    """Two uniforms per point (2, n), the mixing weights' source for every alpha."""


def mixup_sample(x: np.ndarray, y: np.ndarray, d: int, seed: int, tag: str) -> MixupSample:
    """Draw the partner permutation and the mixing uniforms once for a sample of points."""
    from labaug.rng import numpy_rng

    n = len(y)
    rng = numpy_rng(seed, "theory", tag, "mixup", n)
    return MixupSample(points=reduce_points(x, d), y=y, partner=rng.permutation(n),
                       uniforms=rng.random((2, n)))


def mixup_weights(uniforms: np.ndarray, alpha: float) -> np.ndarray:
    """Beta(alpha, alpha) mixing weights (float64) from the sample's uniforms (2, n), the same
    uniforms for every alpha (`labaug.augment.mixup.devroye_beta`)."""
    import torch

    from labaug.augment.mixup import devroye_beta

    u = torch.from_numpy(uniforms.copy())
    return np.asarray(devroye_beta(u[0], u[1], alpha).numpy(), dtype=np.float64)


# --------------------------------------------------------------------------- designs


def margin_design(cfg: SyntheticConfig, variance: Variance, low_noise: float, target: float,
                  nodes: int) -> Design:
    """Weight decay (target 1) or label smoothing (target 1 - a/2) in margin form, by quadrature."""
    feats, weights = margin_quadrature(cfg, variance, low_noise, nodes)
    return Design(feats, weights, np.full(len(weights), target),
                  f"Gauss-Legendre quadrature, {len(weights)} nodes")


def margin_design_sample(points: np.ndarray, y: np.ndarray, target: float) -> Design:
    """The same margin-form objective over a sample (reduced points, labels)."""
    n = len(y)
    return Design(points * y[:, None], np.full(n, 1.0 / n), np.full(n, target),
                  f"fixed sample, {n} points")


def mixup_design(sample: MixupSample, alpha: float) -> Design:
    """Mixup over a fixed sample: logit lam z_i + (1 - lam) z_j, target lam t_i + (1 - lam) t_j."""
    lam = mixup_weights(sample.uniforms, alpha)
    j = sample.partner
    z = sample.points                                   # logit z_i = theta . point_i
    feats = lam[:, None] * z + (1.0 - lam)[:, None] * z[j]
    t = 0.5 * (sample.y + 1.0)
    n = len(t)
    return Design(feats, np.full(n, 1.0 / n), lam * t + (1.0 - lam) * t[j],
                  f"fixed sample, {n} points, partners and Beta weights drawn once")


# --------------------------------------------------------------------------- solver


def objective(design: Design, l2: float, theta: np.ndarray) -> float:
    """The reduced population loss at theta."""
    z = design.features @ theta
    data = design.weights @ (np.logaddexp(0.0, z) - design.targets * z)
    return float(data + 0.5 * l2 * theta @ theta)


def gradient(design: Design, l2: float, theta: np.ndarray) -> np.ndarray:
    """Gradient of the reduced loss; its norm is the full 2d-dim gradient norm."""
    z = design.features @ theta
    r = design.weights * (expit(z) - design.targets)
    return np.asarray(design.features.T @ r + l2 * theta, dtype=np.float64)


def solve(design: Design, l2: float = 0.0, tol: float = 1e-10,
          max_iter: int = 200) -> Minimizer:
    """Newton's method with backtracking (the loss is convex); stops at gradient norm <= tol."""
    theta = np.zeros(design.features.shape[1])
    f = objective(design, l2, theta)
    grad_norm = math.inf
    for it in range(max_iter + 1):
        z = design.features @ theta
        s = expit(z)
        g = design.features.T @ (design.weights * (s - design.targets)) + l2 * theta
        grad_norm = float(np.linalg.norm(g))
        if grad_norm <= tol or it == max_iter:
            return Minimizer(theta, grad_norm, it)
        curv = design.weights * s * (1.0 - s)
        hess = (design.features * curv[:, None]).T @ design.features + l2 * np.eye(len(theta))
        step = np.linalg.solve(hess, g)
        decrement = float(g @ step)
        t = 1.0
        while True:
            trial = theta - t * step
            f_trial = objective(design, l2, trial)
            # Near the optimum the loss change drops below rounding; Newton's full step is
            # then inside its quadratic-convergence region and is taken as is.
            if f_trial <= f - 1e-4 * t * decrement or decrement < 1e-14 or t < 1e-12:
                break
            t *= 0.5
        theta, f = trial, f_trial
    raise AssertionError("unreachable")


def weight_decay_minimizer(cfg: SyntheticConfig, variance: Variance, low_noise: float,
                           lam: float, nodes: int = 32, tol: float = 1e-10) -> Minimizer:
    """Theorem 3.1: argmin E[log(1 + exp(-y w . x))] + lam/2 ||w||^2 (quadrature)."""
    return solve(margin_design(cfg, variance, low_noise, 1.0, nodes), lam, tol)


def label_smoothing_minimizer(cfg: SyntheticConfig, variance: Variance, low_noise: float,
                              a: float, nodes: int = 32, tol: float = 1e-10) -> Minimizer:
    """Theorem 3.3: argmin of the binary label-smoothed loss, targets (1 - a) t + a/2."""
    return solve(margin_design(cfg, variance, low_noise, 1.0 - 0.5 * a, nodes), 0.0, tol)


def label_smoothing_closed_form(cfg: SyntheticConfig, a: float) -> np.ndarray:
    """Sec. A.2 for zero variance: w_high = 0 and gamma * sum(w_low) = logit(1 - a/2)."""
    theta_low = math.log((1.0 - 0.5 * a) / (0.5 * a)) / (cfg.gamma * math.sqrt(cfg.d))
    return np.array([theta_low, 0.0])


def beta_quadrature(alpha: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes and weights for lam ~ Beta(alpha, alpha) (exact for polynomials)."""
    x, w = roots_jacobi(nodes, alpha - 1.0, alpha - 1.0)
    return 0.5 * (x + 1.0), w / w.sum()


def mixup_quadrature_design(cfg: SyntheticConfig, alpha: float, nodes: int,
                            lam_nodes: int = 48) -> Design:
    """Mixup in the zero-variance variant by quadrature over (y_i, y_j, lam, q_i, q_j).

    p = y sqrt(d) gamma is constant given y, so a mixed pair depends only on the two labels,
    lam and the two high-block sums. Flipping every sign changes nothing, so y_i = +1 with
    y_j = +1 or -1 (probability 1/2 each) covers all pairs exactly.
    """
    d = cfg.d
    s, s_w = sum_of_uniforms_quadrature(d, cfg.u_low, cfg.u_high, nodes)
    q = s / math.sqrt(d)
    lam, lam_w = beta_quadrature(alpha, lam_nodes)
    p0 = math.sqrt(d) * cfg.gamma
    feats, weights, targets = [], [], []
    for y_j in (1.0, -1.0):
        ll, qi, qj = np.meshgrid(lam, q, q, indexing="ij")
        ww = np.einsum("a,b,c->abc", lam_w, s_w, s_w) * 0.5
        mixed_y = ll + (1.0 - ll) * y_j
        feats.append(np.stack([(p0 * mixed_y).ravel(), (ll * qi + (1.0 - ll) * y_j * qj).ravel()],
                              axis=1))
        weights.append(ww.ravel())
        targets.append((ll + (1.0 - ll) * 0.5 * (y_j + 1.0)).ravel())
    w = np.concatenate(weights)
    return Design(np.concatenate(feats), w, np.concatenate(targets),
                  f"Gauss-Legendre x Gauss-Jacobi quadrature, {len(w)} nodes")


def mixup_minimizer(sample: MixupSample, alpha: float, tol: float = 1e-10) -> Minimizer:
    """Theorem 3.4: argmin of the Mixup loss with Beta(alpha, alpha) weights on a fixed sample."""
    return solve(mixup_design(sample, alpha), 0.0, tol)


# --------------------------------------------------------------------------- max margin


def support_vertices(cfg: SyntheticConfig, variance: Variance, low_noise: float) -> np.ndarray:
    """Vertices of the support of y * x (a product of intervals), shape (V, 2d)."""
    scale = low_noise_scale(cfg, variance, low_noise)
    low_values = sorted({cfg.gamma - scale, cfg.gamma + scale})
    high_values = [cfg.u_low, cfg.u_high]
    lows = np.array(list(itertools.product(low_values, repeat=cfg.d)))
    highs = np.array(list(itertools.product(high_values, repeat=cfg.d)))
    return np.array([np.concatenate([lo, hi]) for lo in lows for hi in highs])


def max_margin(cfg: SyntheticConfig, variance: Variance, low_noise: float) -> np.ndarray:
    """Definition 2.2: argmin ||w||^2 s.t. y w . x >= 1 on the support, solved as a QP (SLSQP)."""
    v = support_vertices(cfg, variance, low_noise)
    w0 = np.ones(v.shape[1]) / float(v.sum(axis=1).min())   # feasible start
    res = scipy_minimize(
        lambda w: 0.5 * float(w @ w), w0, jac=lambda w: w, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda w: v @ w - 1.0, "jac": lambda w: v}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    if not res.success:
        raise RuntimeError(f"max-margin QP failed: {res.message}")
    return np.asarray(res.x, dtype=np.float64)


def max_margin_closed_form(cfg: SyntheticConfig, variance: Variance,
                           low_noise: float) -> np.ndarray:
    """The QP's closed form: w = (g 1_d, u_low 1_d) / (d (g^2 + u_low^2)), g = gamma - s.

    The smallest margin over the box is g sum(w_low) + u_low sum(w_high) for w >= 0, so the
    minimum-norm w with that margin equal to 1 is proportional to (g 1_d, u_low 1_d).
    """
    g = cfg.gamma - low_noise_scale(cfg, variance, low_noise)
    c = cfg.u_low
    if g <= 0:
        raise ValueError(f"low_noise {low_noise} >= 1 leaves the low block unseparated")
    return np.concatenate([np.full(cfg.d, g), np.full(cfg.d, c)]) / (cfg.d * (g * g + c * c))


# --------------------------------------------------------------------------- solver table


@dataclass
class Problem:
    """One synthetic variant's population: what every solver needs, the Mixup sample made once."""

    syn: SyntheticConfig
    variance: Variance
    low_noise: float
    tcfg: TheoryConfig
    _sample: MixupSample | None = None

    def mixup_sample(self) -> MixupSample:
        """The fixed sample of points, partners and weights (low variance), drawn on first use."""
        if self._sample is None:
            x, y = sample_points(self.syn, self.tcfg.n_samples, self.tcfg.seed, self.variance,
                                 self.low_noise)
            self._sample = mixup_sample(x, y, self.syn.d, self.tcfg.seed, self.variance)
        return self._sample


def _weight_decay(p: Problem, value: float) -> tuple[Design, float]:
    """Logistic loss plus lambda/2 ||w||^2 (Theorem 3.1)."""
    return margin_design(p.syn, p.variance, p.low_noise, 1.0, p.tcfg.quadrature_nodes), value


def _label_smoothing(p: Problem, value: float) -> tuple[Design, float]:
    """Logistic loss with target 1 - a/2 on the margin (Theorem 3.3)."""
    return margin_design(p.syn, p.variance, p.low_noise, 1.0 - 0.5 * value,
                         p.tcfg.quadrature_nodes), 0.0


def _mixup(p: Problem, value: float) -> tuple[Design, float]:
    """The Mixup loss (Theorem 3.4): quadrature for zero variance, the fixed sample otherwise."""
    if p.variance == "zero":
        return mixup_quadrature_design(p.syn, value, p.tcfg.mixup_quadrature_nodes,
                                       p.tcfg.beta_nodes), 0.0
    return mixup_design(p.mixup_sample(), value), 0.0


SOLVERS: dict[str, Callable[[Problem, float], tuple[Design, float]]] = {
    "weight_decay": _weight_decay,
    "label_smoothing": _label_smoothing,
    "mixup": _mixup,
}
"""The methods whose population loss this module knows: each maps (problem, hyperparameter) to
its reduced objective and L2 coefficient. Other methods have no exact minimizer here."""


class NoPopulationLoss(KeyError):
    """A method has no population loss in `SOLVERS`; the message names it."""


def exact_minimizer(method: str, problem: Problem, value: float) -> tuple[Minimizer, Design]:
    """The exact minimizer of ``method``'s population loss at hyperparameter ``value`` > 0."""
    if method not in SOLVERS:
        raise NoPopulationLoss(f"labaug.theory has no population loss for {method!r}; "
                               f"it solves {', '.join(SOLVERS)}")
    design, l2 = SOLVERS[method](problem, float(value))
    return solve(design, l2, problem.tcfg.tol), design

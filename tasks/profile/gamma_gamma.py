"""The Gamma-Gamma spend model (Fader & Hardie 2013): likelihood, fit, and expected order value.

A customer's purchase amounts are ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` across customers, independent
of the purchase process. ``tasks.profile.clv`` is the entry point: the customer summary, the value, and the
whole fit.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from scipy import special

from tasks.profile.mle import MIN_REPEAT_CUSTOMERS, ClvFitError, FloatArray, _as_float, _minimise


class GammaGammaParams(BaseModel):
    """Fitted Gamma-Gamma parameters: spend per purchase ``Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p: float
    q: float
    gamma: float
    log_likelihood: float

    @property
    def population_mean(self) -> float:
        """Mean spend per purchase across customers, ``p * gamma / (q - 1)``: a first-time buyer's estimate."""
        return self.p * self.gamma / (self.q - 1.0)


class _GammaGammaData:
    """What the Gamma-Gamma likelihood needs of the data, computed once per fit.

    The gamma-function terms depend on a customer only through ``x`` (a whole number of purchases, a few dozen
    distinct values), so they are evaluated per distinct ``x`` and weighted by its count; what depends on ``m``
    is summed once here, and each evaluation has one ``log`` and one division per customer.
    """

    def __init__(self, x: FloatArray, m: FloatArray) -> None:
        self.x, self.m, self.n = x, m, float(x.size)
        self.distinct_x, counts = np.unique(x, return_counts=True)
        self.counts = counts.astype(np.float64)
        log_m, log_x = np.log(m), np.log(x)
        self.sum_log_m = float(log_m.sum())
        self.sum_x_log_m_x = float(np.dot(x, log_m + log_x))  # sum of x (ln m + ln x)

    def neg_loglik(self, log_params: FloatArray) -> tuple[float, FloatArray]:
        """Negative Gamma-Gamma log-likelihood of mean repeat spends ``m`` over ``x`` purchases, with gradient.

        Per customer (Fader & Hardie 2013): ``ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln m
        + px ln x - (px+q) ln(gamma + x m)``.
        """
        p, q, gamma = np.exp(log_params)
        x, xs, w, n = self.x, self.distinct_x, self.counts, self.n
        pxs = p * xs
        gamma_terms = np.dot(w, special.gammaln(pxs + q) - special.gammaln(pxs))
        log_gxm = np.log(gamma + x * self.m)
        sum_log_gxm, sum_x_log_gxm = float(log_gxm.sum()), float(np.dot(x, log_gxm))
        loglik = (
            gamma_terms
            - n * float(special.gammaln(q))
            + n * q * math.log(gamma)
            + p * self.sum_x_log_m_x
            - self.sum_log_m
            - p * sum_x_log_gxm
            - q * sum_log_gxm
        )
        psi_pxq = special.digamma(pxs + q)
        grad_p = np.dot(w * xs, psi_pxq - special.digamma(pxs)) + self.sum_x_log_m_x - sum_x_log_gxm
        grad_q = np.dot(w, psi_pxq) - sum_log_gxm + n * (math.log(gamma) - float(special.digamma(q)))
        grad_gamma = n * q / gamma - float(np.sum((p * x + q) / (gamma + x * self.m)))
        gradient = np.array([grad_p * p, grad_q * q, grad_gamma * gamma])
        return -float(loglik), -gradient


def fit_gamma_gamma(frequency: npt.ArrayLike, monetary_value: npt.ArrayLike) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model on the repeat buyers (``frequency > 0``) by maximum likelihood.

    ``monetary_value`` is each customer's mean repeat-purchase amount. Customers with a mean of 0 or less
    (refunds netted out) cannot come from a Gamma and are left out. Amounts are rescaled by their mean for
    the search; ``gamma`` and the log-likelihood are reported in the caller's currency. A fit with
    ``q <= 1`` (spend so heavy-tailed that its population mean is infinite) is refused.
    """
    x_all, m_all = _as_float(frequency), _as_float(monetary_value)
    if x_all.shape != m_all.shape or x_all.ndim != 1:
        raise ClvFitError("frequency and monetary_value must be one-dimensional arrays of the same length")
    keep = (x_all > 0) & np.isfinite(m_all) & (m_all > 0)
    x, m = x_all[keep], m_all[keep]
    if x.size < MIN_REPEAT_CUSTOMERS:
        raise ClvFitError(f"Gamma-Gamma needs at least {MIN_REPEAT_CUSTOMERS} repeat buyers, found {x.size}")
    scale = float(m.mean())
    scaled = m / scale
    n = float(x.size)

    data = _GammaGammaData(x, scaled)

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        neg, grad = data.neg_loglik(log_params)
        return neg / n, grad / n

    log_params = _minimise(objective, np.log([1.0, 2.0, 1.0]), "Gamma-Gamma")
    p, q, gamma = np.exp(log_params)
    if q <= 1.0:
        raise ClvFitError(f"Gamma-Gamma fit has q = {q:.3f} <= 1: spend is too heavy-tailed for a finite mean")
    loglik = -objective(log_params)[0] * n - n * math.log(scale)  # density of m, not of m / scale
    return GammaGammaParams(p=float(p), q=float(q), gamma=float(gamma * scale), log_likelihood=loglik)


def expected_order_value(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """Expected spend per future purchase of each customer: ``p (gamma + x m) / (p x + q - 1)``.

    The Gamma-Gamma posterior mean shrinks a customer's observed mean ``m`` towards the population mean
    ``p gamma / (q - 1)``, more so the fewer purchases ``x`` it rests on; for ``x == 0`` it is that mean.
    """
    x, m = _as_float(frequency), _as_float(monetary_value)
    m = np.where(x > 0, m, 0.0)
    return np.asarray(params.p * (params.gamma + x * m) / (params.p * x + params.q - 1.0), dtype=np.float64)

"""Maximum likelihood for the CLV models: L-BFGS-B on bounded log-parameters, with restarts and checks.

Shared by the BG/NBD (``tasks.profile.bgnbd``) and Gamma-Gamma (``tasks.profile.gamma_gamma``) fits: the
error they raise, the minimum data they need, and the optimiser that refuses a failed or degenerate fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize

FloatArray = npt.NDArray[np.float64]

# Log-parameters live in [-LOG_BOUND, LOG_BOUND] (about 1e-9 .. 1e9 after rescaling): a fit that ends on
# the edge is degenerate (e.g. "nobody ever drops out") and is reported as such rather than returned.
LOG_BOUND = 20.0
# At least this many repeat buyers: with fewer the dropout and spend parameters are not identified.
MIN_REPEAT_CUSTOMERS = 2
# L-BFGS-B restarts after a line-search stop, and the per-customer gradient that still counts as converged.
RESTARTS = 2
GRADIENT_TOLERANCE = 1e-4


class ClvFitError(ValueError):
    """A model could not be fitted: too little data, or the optimiser failed. Never names a customer."""


def _as_float(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _minimise(objective: Any, start: FloatArray, model: str) -> FloatArray:
    """L-BFGS-B on log-parameters within bounds; a failure or an edge solution is a ClvFitError.

    On a flat ridge (e.g. dropout parameters drifting together towards infinity) L-BFGS-B can stop with a
    line-search failure at what is the optimum to rounding: it is restarted from there with a fresh memory,
    and a stop with a per-customer gradient below ``GRADIENT_TOLERANCE`` counts as converged.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * start.size
    options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
    with np.errstate(over="ignore", under="ignore"):  # trial points far out in the line search may overflow
        result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
        for _ in range(RESTARTS):
            if result.success or not np.all(np.isfinite(result.x)):
                break
            result = optimize.minimize(objective, result.x, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    solution = np.asarray(result.x, dtype=np.float64)
    if not np.all(np.isfinite(solution)) or not np.isfinite(result.fun):
        raise ClvFitError(f"{model} fit failed: the likelihood is not finite")
    if not result.success and np.max(np.abs(result.jac)) > GRADIENT_TOLERANCE:
        raise ClvFitError(f"{model} fit did not converge: {result.message}")
    if np.any(np.abs(solution) >= LOG_BOUND - 1e-6):
        raise ClvFitError(f"{model} fit is degenerate (a parameter ran to 0 or infinity): too little or too even data")
    return solution

"""A training script in the seed's shape (Azure's train-on-local): sweep ridge alphas, log the error.

Run it on its own (it logs offline, to the spool) or submit it:
``python examples/submit.py`` / ``fleetlog submit examples/train.py``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

import fleetlog

run = fleetlog.Run.get_context()

rng = np.random.default_rng(0)
X = rng.standard_normal((400, 10))
y = X @ rng.standard_normal(10) + 0.3 * rng.standard_normal(400)
X_train, X_test, y_train, y_test = X[:300], X[300:], y[:300], y[300:]

os.makedirs("outputs", exist_ok=True)
for alpha in np.arange(0.0, 1.0, 0.05):
    # ridge regression, closed form
    w = np.linalg.solve(X_train.T @ X_train + alpha * np.eye(10), X_train.T @ y_train)
    mse = float(np.mean((X_test @ w - y_test) ** 2))
    run.log("alpha", float(alpha))
    run.log("mse", mse)
    print(f"alpha is {alpha:.2f}, and mse is {mse:.4f}")
    with open(f"outputs/ridge_{alpha:.2f}.pkl", "wb") as fh:  # kept with the run when it completes
        pickle.dump(w, fh)

"""The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) for keypoint coordinates.

A first-order low-pass filter whose cutoff frequency rises with the signal's speed: at
rest a low cutoff removes jitter, in fast motion a high cutoff keeps the lag small. For a
sample ``x`` arriving ``dt`` seconds after the previous one (the paper's equations)::

    alpha(f)  = r / (r + 1)  with  r = 2 pi f dt        (an exponential smoother at cutoff f)
    dx        = (x - x_hat_prev) / dt
    dx_hat    = alpha(d_cutoff) dx + (1 - alpha(d_cutoff)) dx_hat_prev
    cutoff    = min_cutoff + beta |dx_hat|
    x_hat     = alpha(cutoff) x + (1 - alpha(cutoff)) x_hat_prev

Every coordinate is its own filter; one ``OneEuroFilter`` holds the arrays of one track
(``(K, 2)`` keypoints), so a frame costs a few NumPy operations per track. Time comes
from the video's frame rate (``dt = frames elapsed / fps``), not the wall clock, so the
result does not depend on how fast the machine runs.

Defaults (``OneEuroParams``): ``min_cutoff`` 1.0 Hz, ``beta`` 0.007, ``d_cutoff``
1.0 Hz, the values of the 1-Euro filter's reference demo, which mmdeploy's
``PoseTracker`` also uses for keypoints (``smooth_params = {0.007, 1., 1.}``, i.e.
beta, min_cutoff, d_cutoff). The tuning rule of the paper: lower ``min_cutoff`` until
a still person does not jitter, then raise ``beta`` until fast motion does not lag.
``beta`` multiplies a speed in pixels per second, so large (close) people moving fast
may want a larger one.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class OneEuroParams:
    """The One-Euro filter's parameters.

    Args:
        min_cutoff: float > 0, the cutoff frequency (Hz) at rest: lower removes more jitter
            and lags more. Default 1.0.
        beta: float >= 0, how fast the cutoff rises with speed (Hz per pixel/s): higher
            lags less in fast motion. Default 0.007.
        d_cutoff: float > 0, the cutoff frequency (Hz) of the speed estimate. Default 1.0.
    """

    min_cutoff: float = 1.0
    beta: float = 0.007
    d_cutoff: float = 1.0

    def __post_init__(self):
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"One-Euro {name} must be a positive number of Hz, "
                                 f"got {value!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"One-Euro beta must be >= 0, got {self.beta!r}")


def _alpha(cutoff, dt):
    r = 2.0 * math.pi * cutoff * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """One-Euro filters of an array of coordinates (any shape), all in step.

    Args:
        x0: array, the first sample (returned unchanged by the constructor's state).
        params: ``OneEuroParams``; None takes the defaults.

    Example:
        >>> f = OneEuroFilter(keypoints0)          # (K, 2)
        >>> smooth = f(keypoints1, dt=1 / 30)      # the next frame of a 30 fps video
    """

    def __init__(self, x0, params=None):
        self.params = params if params is not None else OneEuroParams()
        self.x_hat = np.array(x0, np.float64)
        self.dx_hat = np.zeros_like(self.x_hat)

    def __call__(self, x, dt):
        """The filtered value of sample ``x`` taken ``dt`` seconds after the previous one."""
        x = np.asarray(x, np.float64)
        if x.shape != self.x_hat.shape:
            raise ValueError(f"sample of shape {x.shape}, the filter holds {self.x_hat.shape}")
        if not dt > 0:
            raise ValueError(f"dt must be > 0 seconds, got {dt!r}")
        p = self.params
        dx = (x - self.x_hat) / dt
        a_d = _alpha(p.d_cutoff, dt)
        self.dx_hat = a_d * dx + (1.0 - a_d) * self.dx_hat
        cutoff = p.min_cutoff + p.beta * np.abs(self.dx_hat)
        a = _alpha(cutoff, dt)  # per coordinate
        self.x_hat = a * x + (1.0 - a) * self.x_hat
        return self.x_hat.copy()

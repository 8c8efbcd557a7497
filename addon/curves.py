"""Curve post-processing before keys are written (numpy only: Blender ships numpy, not scipy)."""

import numpy as np

from ..model_runtime.channels import HEAD_NAMES

# Regions the artist scales separately (the panel's intensity sliders).
REGIONS = ("mouth", "brows", "eyes", "head")


def region_of(name):
    if name in HEAD_NAMES:
        return "head"
    if name.startswith("brow"):
        return "brows"
    if name.startswith("eye"):
        return "eyes"
    return "mouth"  # jaw, mouth, cheek, nose, tongue


def apply_intensity(weights, names, intensity):
    """Scale each region's channels; intensity is {region: factor}, missing regions stay at 1."""
    w = np.array(weights, dtype=np.float32, copy=True)
    for j, n in enumerate(names):
        f = intensity.get(region_of(n), 1.0)
        if f != 1.0:
            w[:, j] *= f
    return w


def smooth(weights, sigma_frames):
    """Gaussian smoothing along time; edges are padded with the end values so they do not sag."""
    w = np.asarray(weights, dtype=np.float32)
    if sigma_frames <= 0 or len(w) < 3:
        return w.copy()
    r = max(1, int(round(3 * sigma_frames)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_frames) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(w[:1], r, 0), w, np.repeat(w[-1:], r, 0)])
    out = np.empty_like(w)
    for j in range(w.shape[1]):
        out[:, j] = np.convolve(pad[:, j], k, mode="valid")
    return out


def reduce_keys(values, tolerance):
    """Indices of the fewest keys whose linear interpolation stays within `tolerance` of `values`.

    Ramer-Douglas-Peucker on one curve, vectorised per segment: cost is about T log T in numpy.
    The first and last frames are always kept.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n <= 2 or tolerance <= 0:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        t = np.arange(a + 1, b)
        line = v[a] + (v[b] - v[a]) * (t - a) / (b - a)
        err = np.abs(v[a + 1:b] - line)
        i = int(np.argmax(err))
        if err[i] > tolerance:
            m = a + 1 + i
            keep[m] = True
            stack.append((a, m))
            stack.append((m, b))
    return np.flatnonzero(keep)

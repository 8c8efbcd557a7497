import numpy as np
import pytest

from model_runtime.timebase import frame_count, resample_curves


@pytest.mark.parametrize("duration,fps,frames", [(10.0, 23.976, 240), (10.0, 24, 240), (10.0, 25, 250),
                                                 (10.0, 30000 / 1001, 300), (10.0, 29.97, 300),
                                                 (10.0, 30, 300), (10.0, 60, 600), (4.0, 25, 100),
                                                 (0.01, 24, 1), (12.3, 24, 296)])
def test_frame_counts(duration, fps, frames):
    assert frame_count(duration, fps) == frames


def test_linear_curves_resample_exactly():
    src = np.stack([np.arange(250) / 25.0, np.full(250, 0.5)], axis=1)  # time itself, a constant
    out = resample_curves(src, 25.0, 60.0, 597)
    np.testing.assert_allclose(out[:, 0], np.arange(597) / 60.0, atol=1e-5)
    np.testing.assert_allclose(out[:, 1], 0.5)

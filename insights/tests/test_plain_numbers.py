"""What the web process draws is plain Python: the outlier ranking's statistics agree with
numpy's (that nothing there loads numpy: usage_platform/tests/test_lean_imports.py)."""

import numpy as np
import pytest

from insights.detectors import outliers


@pytest.mark.parametrize("seed", range(6))
def test_percentile_and_histogram_match_numpy(seed):
    rng = np.random.default_rng(seed)
    values = list(rng.gamma(2.0, 1.5, int(rng.integers(1, 60))))
    if seed == 0:
        values = [2.5] * 7  # one value: numpy spans it by ±0.5
    if seed == 1:
        values = [0.0, 1.0, 2.0, 3.0, 4.0]  # values on the bin edges
    for q in (0, 10, 50, 90, 100):
        assert outliers.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    counts, edges = np.histogram(values, bins=10)
    ours = outliers.histogram(values, 10)
    assert [c for _, _, c in ours] == list(counts)
    assert [lo for lo, _, _ in ours] + [ours[-1][1]] == pytest.approx(list(edges))


def test_scores_match_the_population_zscore():
    rng = np.random.default_rng(7)
    vectors = {fid: tuple(float(v) for v in rng.uniform(1, 500, 3)) for fid in range(25)}
    vectors[3] = (5.0, vectors[3][1], vectors[3][2])
    matrix = np.array(list(vectors.values()))
    z = (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)
    scores = outliers.outlier_scores(vectors)
    assert [x for s in scores.values() for x in s.z] == pytest.approx(list(z.ravel()))
    assert [s.norm for s in scores.values()] == pytest.approx(list(np.linalg.norm(z, axis=1)))

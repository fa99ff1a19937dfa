import numpy as np

from regennet_jax.evaluation import metrics


def test_accuracy():
  logits = np.array([[0.1, 0.9], [2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
  assert metrics.accuracy(logits, np.array([1, 0, 0, 0])) == 0.75


def test_fid_closed_form_for_diagonal_gaussians():
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  # For commuting (diagonal) covariances tr sqrt(S1 S2) = sum sqrt(v1 v2).
  expected = np.sum((mu1 - mu2)**2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
  got = metrics.fid_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
  np.testing.assert_allclose(got, expected, rtol=1e-6)  # = 5 + (1 + 1 + 4) = 11


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift():
  feats = np.random.default_rng(0).normal(size=(500, 8))
  assert abs(metrics.fid(feats, feats)) < 1e-6
  np.testing.assert_allclose(metrics.fid(feats, feats + 2.0), 8 * 4.0, rtol=1e-6)


def test_diversity_of_two_points():
  d = 3.0
  feats = np.array([[0.0, 0.0], [d, 0.0]])
  # Pairs are drawn with replacement: half of them join the two distinct points.
  got = metrics.diversity(feats, np.random.default_rng(0), num_pairs=40000)
  np.testing.assert_allclose(got, d / 2, rtol=0.02)
  assert metrics.diversity(np.ones((10, 4)), np.random.default_rng(0)) == 0.0


def test_multimodality_divides_by_all_labels():
  # Label 0: two points 2 apart; label 1: identical points; label 2 absent.
  feats = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [5.0, 5.0]])
  labels = np.array([0, 0, 1, 1])
  got = metrics.multimodality(feats,
                              labels,
                              num_labels=3,
                              rng=np.random.default_rng(0),
                              per_label=20000)
  # label 0 contributes ~ 20000 * (2 * 1/2); label 1 contributes 0; divided by 20000 * 3.
  np.testing.assert_allclose(got, 1.0 / 3.0, rtol=0.03)


def test_kid_known_values():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
  same = metrics.kid(x, y, np.random.default_rng(1), num_subsets=10)
  shifted = metrics.kid(x, y + 0.5, np.random.default_rng(1), num_subsets=10)
  assert abs(same) < 0.01 and shifted > 100 * abs(same)  # unbiased: ~0 for equal distributions
  # Tiny hand-computed case: 1-D points, kernel (xy + 1)^3.
  a, b = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
  k = lambda u, v: (u * v + 1)**3
  expected = (2 * k(0, 1)) / 2 + (2 * k(2, 3)) / 2 - 2 * np.mean(
      [k(0, 2), k(0, 3), k(1, 2), k(1, 3)])
  np.testing.assert_allclose(metrics.kid(a, b, np.random.default_rng(0), num_subsets=3), expected)


def test_precision_recall():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(200, 3))
  assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
  p, r = metrics.precision_recall(real, real + 100.0)
  assert p == 0.0 and r == 0.0
  # Fakes collapsed onto one real point: fully precise, poor recall.
  p, r = metrics.precision_recall(real, np.repeat(real[:1], 200, 0) + 1e-9)
  assert p == 1.0 and r < 0.1


def test_summarize_intervals():
  s = metrics.summarize([1.0, 2.0, 3.0, 4.0])
  assert s['mean'] == 2.5 and s['n'] == 4
  np.testing.assert_allclose(s['paper_interval'], 1.96 * 1.25)  # 1.96 x population variance
  np.testing.assert_allclose(s['ci95'], 1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)


def _released_loop(num_available, num_samples, batch_size):
  """The released evaluation's batching, step by step (docs/architecture.md, Evaluation)."""
  batches = [batch_size] * (num_available // batch_size)  # drop_last
  kept = []
  for b in batches:
    if len(kept) * batch_size > num_samples:
      break
    kept.append(b)
  if kept:
    kept[-1] = num_samples % batch_size
  return sum(kept)


def test_original_sample_count_matches_the_released_batching():
  from regennet_jax.evaluation.protocol import original_sample_count
  assert original_sample_count(3845, 1000, 64) == 1000  # NTU test
  assert original_sample_count(74, 1000, 64) == 40  # Chi3D test: the paper's quirk
  assert original_sample_count(300, 1000, 64) == 232  # Chi3D train
  for available in (64, 70, 130, 500, 1100, 4000):
    for num in (10, 64, 100, 1000):
      for batch in (4, 16, 64):
        assert original_sample_count(available, num, batch) == _released_loop(available, num, batch)
  assert original_sample_count(10, 1000, 64) == 10  # less than one batch: all of it

"""Evaluation metrics on recognizer features [N, D], as the paper's evaluator computes them.

FID, diversity and multimodality follow ReGenNet/MDM's action-to-motion code; KID and precision/recall
follow the unconstrained evaluator it ships (polynomial-kernel MMD; k-NN manifolds, k = 3).
"""

import numpy as np
from scipy import linalg


def accuracy(logits, labels):
  return float(np.mean(np.argmax(logits, axis=-1) == labels))


def feature_stats(features):
  features = np.asarray(features, np.float64)
  return features.mean(0), np.cov(features, rowvar=False)


def fid_from_stats(mu1, sigma1, mu2, sigma2, eps=1e-6):
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), with the reference code's safeguards."""
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f'FID: imaginary component {np.max(np.abs(covmean.imag))} is too large')
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features1, features2):
  return fid_from_stats(*feature_stats(features1), *feature_stats(features2))


def diversity(features, rng, num_pairs=200):
  """Mean distance between `num_pairs` uniformly drawn index pairs (with replacement, i may be j)."""
  features = np.asarray(features, np.float64)
  i = rng.integers(0, len(features), num_pairs)
  j = rng.integers(0, len(features), num_pairs)
  return float(np.linalg.norm(features[i] - features[j], axis=1).mean())


def multimodality(features, labels, num_labels, rng, per_label=20):
  """Mean distance of same-label pairs: up to `per_label` pairs per present label, summed and divided
  by per_label * num_labels (as the original, even when some labels are absent)."""
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels)
  total = 0.0
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    i = rng.choice(members, per_label)
    j = rng.choice(members, per_label)
    total += np.linalg.norm(features[i] - features[j], axis=1).sum()
  return float(total / (per_label * num_labels))


def _poly_kernel(x, y):
  return (x @ y.T / x.shape[1] + 1.0)**3


def kid(features1, features2, rng, num_subsets=100, subset_size=1000):
  """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 averaged over random subsets."""
  x = np.asarray(features1, np.float64)
  y = np.asarray(features2, np.float64)
  m = min(len(x), len(y), subset_size)
  values = []
  for _ in range(num_subsets):
    a = x[rng.choice(len(x), m, replace=False)]
    b = y[rng.choice(len(y), m, replace=False)]
    kxx, kyy, kxy = _poly_kernel(a, a), _poly_kernel(b, b), _poly_kernel(a, b)
    values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) /
                  (m * (m - 1)) - 2 * kxy.mean())
  return float(np.mean(values))


def _knn_radii(features, k):
  d = np.linalg.norm(features[:, None] - features[None], axis=-1)
  return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real, fake, k=3):
  """Improved precision/recall (Kynkaanniemi et al.): the share of fake samples inside the real
  k-NN manifold, and of real samples inside the fake one."""
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  real_r, fake_r = _knn_radii(real, k), _knn_radii(fake, k)
  d = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # [fake, real]
  precision = np.mean(np.any(d <= real_r[None], axis=1))
  recall = np.mean(np.any(d.T <= fake_r[None], axis=1))
  return float(precision), float(recall)


def summarize(values):
  """Mean over seeds with the paper's '+-' (1.96 x variance, as its easy_table.py prints) and a
  proper 95% confidence half-width of the mean (1.96 x std / sqrt(n))."""
  v = np.asarray(values, np.float64)
  n = len(v)
  return {
      'mean': float(v.mean()),
      'paper_interval': float(1.96 * v.var()),
      'ci95': float(1.96 * v.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
      'n': n
  }

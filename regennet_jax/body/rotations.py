"""Rotation conversions: rot6d, rotation matrices, axis-angle and quaternions.

All functions are pure, batched over any leading axes, jittable, and written so that values *and*
gradients stay finite at the identity (angle 0) and at half turns (angle pi). Conventions follow
PyTorch3D, which the original ReGenNet uses:

- rot6d is the first two ROWS of the rotation matrix, flattened: [R00 R01 R02 R10 R11 R12].
- Quaternions are real-first (w, x, y, z).
- Axis-angle is a 3-vector whose norm is the angle in radians.

Numpy arrays in, numpy arrays out (float64 stays float64): the input pipeline converts on the
host with the same functions that training differentiates.
"""

import jax.numpy as jnp
import numpy as np

# PyTorch's F.normalize epsilon, used by the original rot6d -> matrix Gram-Schmidt.
_NORMALIZE_EPS = 1e-12
_SMALL_ANGLE = 1e-6


def _xp(x):
  """The array namespace of `x`: numpy for numpy arrays, jax.numpy for everything else."""
  return np if isinstance(x, np.ndarray) else jnp


def safe_norm(x, axis=-1, keepdims=False):
  """Euclidean norm whose gradient is 0 (not NaN) at the zero vector."""
  xp = _xp(x)
  sq = xp.sum(x * x, axis=axis, keepdims=keepdims)
  positive = sq > 0
  return xp.where(positive, xp.sqrt(xp.where(positive, sq, 1.0)), 0.0)


def _safe_sqrt(x):
  """sqrt(max(x, 0)) with a finite gradient everywhere."""
  xp = _xp(x)
  positive = x > 0
  return xp.where(positive, xp.sqrt(xp.where(positive, x, 1.0)), 0.0)


def _normalize(v):
  xp = _xp(v)
  return v / xp.maximum(safe_norm(v, keepdims=True), _NORMALIZE_EPS)


def matmul3(a, b):
  """Batched [..., 3, 3] @ [..., 3, 3] (or [..., 3, 3] @ [..., 3, 1]) as broadcast multiply-sum.

  For 3x3 blocks this is faster than a batched dot_general on CPU and keeps the HLO simple.
  """
  xp = _xp(a)
  return xp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def rot6d_to_matrix(d6):
  """[..., 6] -> [..., 3, 3] by Gram-Schmidt on the two rows (the matrix's rows b1, b2, b1 x b2)."""
  xp = _xp(d6)
  a1, a2 = d6[..., :3], d6[..., 3:]
  b1 = _normalize(a1)
  b2 = _normalize(a2 - xp.sum(b1 * a2, axis=-1, keepdims=True) * b1)
  b3 = xp.cross(b1, b2)
  return xp.stack([b1, b2, b3], axis=-2)


def rot6d_to_matrix_soa(d6):
  """The same Gram-Schmidt with components first: [6, ...] -> [3 (row), 3 (column), ...].

  Every operation then runs over the long trailing batch axes, which is several times faster on
  a CPU than 3-element minor axes (forward kinematics keeps this layout throughout).
  """
  xp = _xp(d6)
  a1, a2 = d6[0:3], d6[3:6]
  norm = lambda v: xp.maximum(_safe_sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), _NORMALIZE_EPS)
  b1 = a1 / norm(a1)
  u = a2 - (b1[0] * a2[0] + b1[1] * a2[1] + b1[2] * a2[2]) * b1
  b2 = u / norm(u)
  b3 = xp.stack(
      [b1[1] * b2[2] - b1[2] * b2[1], b1[2] * b2[0] - b1[0] * b2[2], b1[0] * b2[1] - b1[1] * b2[0]])
  return xp.stack([b1, b2, b3])


def matmul3_soa(a, b):
  """[3, 3, ...] @ [3, 3, ...] (or @ [3, ...]) with components first, batched over the rest."""
  xp = _xp(a)
  # Components taken apart once (9 + 9 slices, not 54 index expressions): tracing those was a
  # fifth of a small run's start-up, and their backward was a sum of 54 padded arrays.
  vector = b.ndim == a.ndim - 1
  a = [xp.unstack(row) for row in xp.unstack(a)]
  if vector:
    v = xp.unstack(b)
    return xp.stack([a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] for i in range(3)])
  b = [xp.unstack(row) for row in xp.unstack(b)]
  return xp.stack([
      xp.stack([a[i][0] * b[0][k] + a[i][1] * b[1][k] + a[i][2] * b[2][k]
                for k in range(3)])
      for i in range(3)
  ])


def matrix_to_rot6d(matrix):
  """[..., 3, 3] -> [..., 6]: the first two rows, flattened."""
  return matrix[..., :2, :].reshape(matrix.shape[:-2] + (6,))


def quaternion_to_matrix(quat):
  """[..., 4] (w, x, y, z; need not be unit) -> [..., 3, 3]."""
  xp = _xp(quat)
  r, i, j, k = xp.moveaxis(quat, -1, 0)
  two_s = 2.0 / xp.sum(quat * quat, axis=-1)
  m = xp.stack([
      1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r), two_s *
      (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r), two_s *
      (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
  ],
               axis=-1)
  return m.reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrix):
  """[..., 3, 3] -> unit quaternion [..., 4] with w >= 0.

  Builds the four algebraically equivalent candidates and keeps the best-conditioned one (the one
  dividing by the largest |q_i|), which is what keeps half-turns exact.
  """
  xp = _xp(matrix)
  m = matrix
  m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
  q_abs = _safe_sqrt(
      xp.stack([
          1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22,
          1.0 - m00 - m11 + m22,
      ],
               axis=-1))
  candidates = xp.stack([
      xp.stack([q_abs[..., 0]**2, m21 - m12, m02 - m20, m10 - m01], axis=-1),
      xp.stack([m21 - m12, q_abs[..., 1]**2, m10 + m01, m02 + m20], axis=-1),
      xp.stack([m02 - m20, m10 + m01, q_abs[..., 2]**2, m12 + m21], axis=-1),
      xp.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3]**2], axis=-1),
  ],
                        axis=-2)
  candidates = candidates / (2.0 * xp.maximum(q_abs[..., None], 0.1))
  best = xp.argmax(q_abs, axis=-1)
  quat = xp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
  return xp.where(quat[..., :1] < 0, -quat, quat)


def _sin_half_over_angle(angle):
  """sin(angle / 2) / angle, with its Taylor series near 0."""
  xp = _xp(angle)
  small = xp.abs(angle) < _SMALL_ANGLE
  safe_angle = xp.where(small, 1.0, angle)
  return xp.where(small, 0.5 - angle * angle / 48.0, xp.sin(0.5 * safe_angle) / safe_angle)


def axis_angle_to_quaternion(axis_angle):
  """[..., 3] -> [..., 4] (w, x, y, z)."""
  xp = _xp(axis_angle)
  angle = safe_norm(axis_angle, keepdims=True)
  return xp.concatenate([xp.cos(0.5 * angle), axis_angle * _sin_half_over_angle(angle)], axis=-1)


def quaternion_to_axis_angle(quat):
  """[..., 4] (w, x, y, z) -> [..., 3]; the angle is 2 atan2(|xyz|, w)."""
  xp = _xp(quat)
  xyz_norm = safe_norm(quat[..., 1:], keepdims=True)
  angle = 2.0 * xp.arctan2(xyz_norm, quat[..., :1])
  return quat[..., 1:] / _sin_half_over_angle(angle)


def axis_angle_to_matrix(axis_angle):
  """[..., 3] -> [..., 3, 3]."""
  return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_axis_angle(matrix):
  """[..., 3, 3] -> [..., 3], angle in [0, pi]."""
  return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_angle(matrix):
  """[..., 3, 3] -> [...]: the rotation angle in [0, pi].

  Takes the quaternion route (2 atan2(|q_xyz|, q_w)) like PyTorch3D's matrix_to_axis_angle + norm,
  which is what the original orientation loss differentiates; arccos of the trace would have an
  infinite gradient at 0 and pi.
  """
  xp = _xp(matrix)
  quat = matrix_to_quaternion(matrix)
  return 2.0 * xp.arctan2(safe_norm(quat[..., 1:]), quat[..., 0])


def axis_angle_to_rot6d(axis_angle):
  """[..., 3] -> [..., 6]."""
  return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(d6):
  """[..., 6] -> [..., 3]."""
  return matrix_to_axis_angle(rot6d_to_matrix(d6))

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from regennet_jax.body import rotations as rot


def _random_rotvecs(n, seed=0):
  rng = np.random.default_rng(seed)
  axis = rng.normal(size=(n, 3))
  axis /= np.linalg.norm(axis, axis=1, keepdims=True)
  return axis * rng.uniform(0, np.pi, (n, 1))


# Angles at the delicate ends: identity, tiny, and (nearly) half turns.
EDGE_ANGLES = [0.0, 1e-9, 1e-6, 1e-3, np.pi - 1e-3, np.pi - 1e-6, np.pi]


def _edge_rotvecs():
  axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 2, -3]], np.float64)
  axes /= np.linalg.norm(axes, axis=1, keepdims=True)
  return np.array([a * ang for a in axes for ang in EDGE_ANGLES])


def test_axis_angle_to_matrix_matches_scipy():
  vecs = np.concatenate([_random_rotvecs(200), _edge_rotvecs()]).astype(np.float32)
  ours = np.asarray(rot.axis_angle_to_matrix(jnp.asarray(vecs)))
  np.testing.assert_allclose(ours, Rotation.from_rotvec(vecs).as_matrix(), atol=2e-6)


def test_quaternion_matrix_round_trip_matches_scipy():
  vecs = np.concatenate([_random_rotvecs(200, 1), _edge_rotvecs()])
  mats = Rotation.from_rotvec(vecs).as_matrix().astype(np.float32)
  quat = np.asarray(rot.matrix_to_quaternion(jnp.asarray(mats)))
  ref = Rotation.from_matrix(mats).as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
  ref *= np.where(ref[:, :1] < 0, -1, 1)
  # At exactly pi, q and -q both have w = 0; compare up to sign there.
  sign = np.sign(np.sum(quat * ref, axis=1, keepdims=True))
  np.testing.assert_allclose(quat * sign, ref, atol=2e-6)
  assert np.all(quat[:, 0] >= 0)
  np.testing.assert_allclose(np.asarray(rot.quaternion_to_matrix(jnp.asarray(quat))),
                             mats,
                             atol=2e-6)


def test_matrix_to_axis_angle_round_trip_including_edges():
  vecs = np.concatenate([_random_rotvecs(300, 2), _edge_rotvecs()]).astype(np.float32)
  back = np.asarray(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(jnp.asarray(vecs))))
  angles = np.linalg.norm(vecs, axis=1)
  interior = angles < np.pi - 1e-2
  np.testing.assert_allclose(back[interior], vecs[interior], atol=1e-5)
  # Near pi the axis-angle is only defined up to sign; the rotation must agree.
  np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(),
                             Rotation.from_rotvec(vecs).as_matrix(),
                             atol=1e-4)


def test_rotation_angle_is_axis_angle_norm():
  vecs = np.concatenate([_random_rotvecs(300, 3), _edge_rotvecs()]).astype(np.float32)
  angles = np.asarray(rot.rotation_angle(rot.axis_angle_to_matrix(jnp.asarray(vecs))))
  np.testing.assert_allclose(angles, np.linalg.norm(vecs, axis=1), atol=1e-5)


def test_rot6d_round_trip_and_gram_schmidt():
  mats = Rotation.from_rotvec(_random_rotvecs(100, 4)).as_matrix().astype(np.float32)
  d6 = np.asarray(rot.matrix_to_rot6d(jnp.asarray(mats)))
  np.testing.assert_array_equal(d6, mats[:, :2, :].reshape(-1, 6))  # first two ROWS
  np.testing.assert_allclose(np.asarray(rot.rot6d_to_matrix(jnp.asarray(d6))), mats, atol=1e-6)
  # Arbitrary 6-vectors map to proper rotations whose first row is the normalised first triple.
  raw = np.random.default_rng(5).normal(size=(100, 6)).astype(np.float32)
  out = np.asarray(rot.rot6d_to_matrix(jnp.asarray(raw)))
  np.testing.assert_allclose(out @ out.transpose(0, 2, 1),
                             np.broadcast_to(np.eye(3), out.shape),
                             atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(out), 1.0, atol=1e-5)
  np.testing.assert_allclose(out[:, 0],
                             raw[:, :3] / np.linalg.norm(raw[:, :3], axis=1, keepdims=True),
                             atol=1e-6)


def test_batched_and_jitted_shapes():
  x = jnp.zeros((2, 7, 55, 3))
  m = jax.jit(rot.axis_angle_to_matrix)(x)
  assert m.shape == (2, 7, 55, 3, 3)
  assert jax.jit(rot.matrix_to_rot6d)(m).shape == (2, 7, 55, 6)
  assert jax.jit(rot.rotation_angle)(m).shape == (2, 7, 55)
  assert jax.jit(rot.rot6d_to_axis_angle)(rot.axis_angle_to_rot6d(x)).shape == (2, 7, 55, 3)


@pytest.mark.parametrize('angle', EDGE_ANGLES)
def test_gradients_finite_at_edges(angle):
  vec = jnp.array([0.0, 0.0, 1.0]) * angle + jnp.array([0.0, 0.0, 0.0])
  fns = {
      'aa->R->angle':
          lambda v: rot.rotation_angle(rot.axis_angle_to_matrix(v)),
      'aa->R->aa':
          lambda v: jnp.sum(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(v))),
      'aa->6d->R':
          lambda v: jnp.sum(
              rot.rot6d_to_matrix(rot.axis_angle_to_rot6d(v))**2 * 0.5 + rot.rot6d_to_matrix(
                  rot.axis_angle_to_rot6d(v))),
  }
  for name, fn in fns.items():
    g = jax.grad(fn)(vec)
    assert np.all(np.isfinite(np.asarray(g))), (name, angle, g)
  # The relative-angle loss differentiates the angle w.r.t. the matrix directly.
  mat = rot.axis_angle_to_matrix(vec)
  g = jax.grad(rot.rotation_angle)(mat)
  assert np.all(np.isfinite(np.asarray(g))), (angle, g)
  g6 = jax.grad(lambda d: rot.rotation_angle(rot.rot6d_to_matrix(d)))(rot.matrix_to_rot6d(mat))
  assert np.all(np.isfinite(np.asarray(g6))), (angle, g6)


def test_angle_gradient_is_correct_away_from_edges():
  # d angle / d theta along the axis is 1 for an axis-angle vector of length theta.
  for theta in (0.3, 1.5, 2.9):
    g = jax.grad(lambda t: rot.rotation_angle(rot.axis_angle_to_matrix(jnp.array([0.0, t, 0.0]))))(
        theta)
    np.testing.assert_allclose(float(g), 1.0, atol=1e-4)


def test_components_first_products_match_matmul_with_gradients():
  # [3, 3, joints, N] @ [3, 3, joints, N] and @ [3, joints, N], as forward kinematics calls them.
  rng = np.random.default_rng(5)
  a, b, v = (rng.normal(size=s) for s in ((3, 3, 4, 7), (3, 3, 4, 7), (3, 4, 7)))
  to_last = lambda m: np.moveaxis(m, (0, 1), (-2, -1))  # [3, 3, ...] -> [..., 3, 3]
  want_mm = np.moveaxis(to_last(a) @ to_last(b), (-2, -1), (0, 1))
  want_mv = np.moveaxis(np.einsum('...ij,...j->...i', to_last(a), np.moveaxis(v, 0, -1)), -1, 0)
  np.testing.assert_allclose(rot.matmul3_soa(a, b), want_mm, rtol=1e-12)  # numpy in, numpy out
  np.testing.assert_allclose(rot.matmul3_soa(a, v), want_mv, rtol=1e-12)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(jax.jit(rot.matmul3_soa)(f32(a), f32(b)), want_mm, atol=1e-5)
  np.testing.assert_allclose(jax.jit(rot.matmul3_soa)(f32(a), f32(v)), want_mv, atol=1e-5)
  # Gradients of a weighted sum against the same product written as an einsum.
  w = f32(rng.normal(size=(3, 3, 4, 7)))
  loss = lambda fn: lambda x, y: jnp.sum(w * fn(x, y))
  einsum = lambda x, y: jnp.einsum('ij...,jk...->ik...', x, y)
  ours = jax.grad(loss(rot.matmul3_soa), argnums=(0, 1))(f32(a), f32(b))
  ref = jax.grad(loss(einsum), argnums=(0, 1))(f32(a), f32(b))
  for o, r in zip(ours, ref):
    np.testing.assert_allclose(o, r, atol=1e-5)

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from regennet_jax import diffusion
from regennet_jax import losses
from regennet_jax.body import kinematics
from regennet_jax.body import rotations
from regennet_jax.body import skeleton
from regennet_jax.model import Denoiser
from tests.helpers import lag1_correlation

REST = skeleton.builtin_rest_joints()


def _motion(rng, b, t, angle=0.5):
  aa = rng.normal(0, angle, (b, t, 55, 3))
  d6 = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix()[:, :2].reshape(b, t, 55, 6)
  tr = np.zeros((b, t, 1, 6))
  tr[..., 0, :3] = rng.normal(0, 1, (b, t, 3))
  return np.concatenate([d6, tr], axis=2).astype(np.float32)


def _original_masked_l2(a, b, mask):
  """The original's masked_l2 in its own layout: sum((a-b)^2 m) / (sum(m) * a.shape[1] * a.shape[2])."""
  loss = ((a - b)**2 * mask).reshape(a.shape[0], -1).sum(1)
  return loss / (mask.reshape(a.shape[0], -1).sum(1) * a.shape[1] * a.shape[2])


def _to_original_layout(m):  # [B, T, 56, 6] -> [B, 56, 6, T]
  return np.transpose(m, (0, 2, 3, 1))


def test_masked_l2_known_values():
  u = jnp.ones((2, 4, 3))
  v = jnp.zeros((2, 4, 3))
  full = jnp.ones((2, 4))
  np.testing.assert_allclose(losses.masked_l2(u, v, full), [1.0, 1.0])
  half = jnp.array([[1, 1, 0, 0], [1, 0, 0, 0]])
  u2 = u.at[:, 2:].set(10.0)  # errors in masked-out frames do not count
  np.testing.assert_allclose(losses.masked_l2(u2, v, half), [1.0, 1.0])
  np.testing.assert_allclose(losses.masked_l2(u * 3, v, full), [9.0, 9.0])


@pytest.mark.parametrize('normalization', ['code', 'paper'])
def test_interaction_losses_match_original_formulas(normalization):
  rng = np.random.default_rng(0)
  b, t = 3, 9
  actor, x0, pred = (_motion(rng, b, t) for _ in range(3))
  mask = np.ones((b, t), np.float32)
  terms = losses.loss_terms(jnp.asarray(actor), jnp.asarray(x0),
                            jnp.asarray(pred), jnp.asarray(mask), REST,
                            losses.LossWeights(normalization=normalization))
  A, X, P = map(_to_original_layout, (actor, x0, pred))
  m3 = mask[:, None, :]  # the original's y['mask'].squeeze(1): [B, 1, T]
  # The original's 3-D masked_l2 divides by T once more (T^2 in all); the paper's form by T.
  extra = 1.0 if normalization == 'code' else float(t)

  def rel_angle(a, x):
    ra = Rotation.from_matrix(
        rotations.rot6d_to_matrix(jnp.asarray(a[:, 0].transpose(0, 2, 1))).reshape(-1, 3,
                                                                                   3).__array__())
    rx = Rotation.from_matrix(
        np.asarray(rotations.rot6d_to_matrix(jnp.asarray(x[:, 0].transpose(0, 2,
                                                                           1)))).reshape(-1, 3, 3))
    return (ra.inv() * rx).magnitude().reshape(b, 1, t)

  orient = _original_masked_l2(rel_angle(A, X), rel_angle(A, P), m3) * extra
  np.testing.assert_allclose(terms['orient'], orient, rtol=1e-4)

  tr = lambda m: m[:, 55, 0:3]  # [B, 3, T]
  transl = _original_masked_l2(
      np.linalg.norm(tr(A) - tr(X), axis=1)[:, None],
      np.linalg.norm(tr(A) - tr(P), axis=1)[:, None], m3) * extra
  np.testing.assert_allclose(terms['transl'], transl, rtol=1e-4)

  joints = lambda m: np.transpose(np.asarray(kinematics.motion_to_joints(jnp.asarray(m), REST)),
                                  (0, 2, 3, 1))  # [B, 55, 3, T], root-relative, no translation
  ja, jx, jp = joints(actor), joints(x0), joints(pred)
  body = _original_masked_l2(np.linalg.norm(ja - jx, axis=2), np.linalg.norm(ja - jp, axis=2),
                             m3) * extra
  np.testing.assert_allclose(terms['body'], body, rtol=1e-4)

  rot_mse = _original_masked_l2(X, P, mask[:, None, None, :])
  np.testing.assert_allclose(terms['rot_mse'], rot_mse, rtol=1e-5)


def test_orientation_loss_hand_computed():
  # Actor faces forward, GT reactor turned 90 deg, prediction turned 30 deg: delta = 60 deg each frame.
  b, t = 1, 4

  def turned(deg):
    m = np.zeros((b, t, 56, 6), np.float32)
    m[..., :55, :] = [1, 0, 0, 0, 1, 0]
    m[..., 0, :] = Rotation.from_euler('y', deg, degrees=True).as_matrix()[:2].reshape(6)
    return jnp.asarray(m)

  mask = jnp.ones((b, t))
  delta2 = np.deg2rad(60)**2
  code = losses.orientation_loss(turned(0), turned(90), turned(30), mask, 'code')
  paper = losses.orientation_loss(turned(0), turned(90), turned(30), mask, 'paper')
  np.testing.assert_allclose(code, [t * delta2 / t**2], rtol=1e-5)
  np.testing.assert_allclose(paper, [delta2], rtol=1e-5)


def test_joint_distance_loss_hand_computed():
  # Same pose for everyone; prediction's root turned 180 deg about y: its root-relative joints are
  # the rest joints mirrored in x and z, so each distance is |J - mirror(J)|.
  ident = np.zeros((1, 2, 56, 6), np.float32)
  ident[..., :55, :] = [1, 0, 0, 0, 1, 0]
  pred = ident.copy()
  pred[..., 0, :] = Rotation.from_euler('y', 180, degrees=True).as_matrix()[:2].reshape(6)
  joints = lambda m: kinematics.motion_to_joints(jnp.asarray(m), REST)
  rel = REST - REST[0]
  dist = np.linalg.norm(rel - rel * [-1, 1, -1], axis=1)
  got = losses.joint_distance_loss(joints(ident), joints(ident), joints(pred), jnp.ones((1, 2)),
                                   'paper')
  np.testing.assert_allclose(got, [np.mean(dist**2)], rtol=1e-4)


def test_velocity_and_foot_contact_losses():
  t = 5
  still = np.zeros((1, t, 56, 6), np.float32)
  still[..., :55, :] = [1, 0, 0, 0, 1, 0]
  sliding = still.copy()
  sliding[0, :, 55, 0] = 0.1 * np.arange(t)  # whole body slides 0.1 m per frame in x
  mask = jnp.ones((1, t))
  # Rotations are equal: no velocity error (translation row is excluded from vel).
  np.testing.assert_allclose(losses.velocity_loss(jnp.asarray(still), jnp.asarray(sliding), mask),
                             [0])
  wobble = still.copy()
  wobble[0, 1::2, :55, 0] += 1.0
  np.testing.assert_allclose(losses.velocity_loss(jnp.asarray(still), jnp.asarray(wobble), mask),
                             [1.0 / 6.0])  # one of six features changes by 1 every frame
  world = lambda m: kinematics.motion_to_joints(jnp.asarray(m), REST, with_translation=True)
  # GT feet are still (contact), predicted feet slide 0.1 m/frame in x: 1 of 3 coords is 0.1.
  fc = losses.foot_contact_loss(world(still), world(sliding), mask, threshold=0.01)
  np.testing.assert_allclose(fc, [0.01 / 3], rtol=1e-4)
  # A fast-moving GT has no contact, so nothing is penalised.
  fc = losses.foot_contact_loss(world(sliding), world(still), mask, threshold=0.01)
  np.testing.assert_allclose(fc, [0.0])


def test_world_velocity_loss_sees_jitter_that_the_position_error_does_not():
  t = 6
  still = np.zeros((1, t, 56, 6), np.float32)
  still[..., :55, :] = [1, 0, 0, 0, 1, 0]
  offset, jitter = still.copy(), still.copy()
  offset[0, :, 55, 0] = 0.01  # the whole body 1 cm off in x, steadily
  jitter[0, :, 55, 0] = 0.01 * (-1)**np.arange(t)  # 1 cm off, alternating sides every frame
  mask = jnp.ones((1, t))
  world = lambda m: kinematics.motion_to_joints(jnp.asarray(m), REST, with_translation=True)
  terms = lambda pred: losses.loss_terms(jnp.asarray(still), jnp.asarray(still), jnp.asarray(
      pred), mask, REST, losses.LossWeights(world_joints=1.0, world_vel=1.0))
  steady, shaking = terms(offset), terms(jitter)
  # Same position error (1 of 3 coordinates off by 1 cm) ...
  np.testing.assert_allclose(steady['world_joints'], [1e-4 / 3], rtol=1e-4)
  np.testing.assert_allclose(shaking['world_joints'], [1e-4 / 3], rtol=1e-4)
  # ... but only the jittering one moves: 2 cm per frame in x, every frame step.
  np.testing.assert_allclose(steady['world_vel'], [0.0], atol=1e-9)
  np.testing.assert_allclose(shaking['world_vel'], [4e-4 / 3], rtol=1e-4)
  # Frame steps into padding do not count.
  half = jnp.asarray([[1, 1, 1, 0, 0, 0]], jnp.float32)
  np.testing.assert_allclose(losses.world_velocity_loss(world(still), world(jitter), half),
                             [4e-4 / 3],
                             rtol=1e-4)
  jitter[0, 3:, 55, 0] = 5.0  # garbage in the padded frames changes nothing
  np.testing.assert_allclose(losses.world_velocity_loss(world(still), world(jitter), half),
                             [4e-4 / 3],
                             rtol=1e-4)


def test_gradients_flow_through_forward_kinematics():
  rng = np.random.default_rng(1)
  actor, x0, pred = (jnp.asarray(_motion(rng, 2, 6)) for _ in range(3))
  mask = jnp.ones((2, 6))

  def body(p):
    joints = kinematics.motion_to_joints(jnp.stack([actor, x0, p]), REST)
    return jnp.sum(losses.joint_distance_loss(joints[0], joints[1], joints[2], mask))

  g = np.asarray(jax.jit(jax.grad(body))(pred))
  assert np.all(np.isfinite(g))
  assert np.abs(g[..., 1:22, :]).sum() > 0  # body joint rotations receive gradient through FK
  weights = losses.LossWeights(rcxyz=1.0, vel=1.0, fc=1.0)
  total = lambda p: jnp.sum(
      losses.total_loss(losses.loss_terms(actor, x0, p, mask, REST, weights), weights))
  g = np.asarray(jax.jit(
      jax.grad(total))(x0))  # at pred == GT several terms have zero-distance kinks
  assert np.all(np.isfinite(g))


def test_total_loss_weights_terms():
  terms = {'rot_mse': jnp.array([1.0]), 'orient': jnp.array([2.0]), 'body': jnp.array([3.0])}
  w = losses.LossWeights(orient=0.5, body=2.0)
  np.testing.assert_allclose(losses.total_loss(terms, w), [1.0 + 1.0 + 6.0])
  with pytest.raises(ValueError, match='normalization'):
    losses.LossWeights(normalization='mean')


def test_diffusion_loss_trains_a_tiny_model():
  rng = np.random.default_rng(2)
  batch = {
      'actor': jnp.asarray(_motion(rng, 4, 8)),
      'reactor': jnp.asarray(_motion(rng, 4, 8)),
      'mask': jnp.ones((4, 8))
  }
  model = Denoiser(num_layers=1, latent_dim=32, ff_size=64, num_heads=4, dropout=0.0)
  params = model.init(jax.random.PRNGKey(0), batch['reactor'], jnp.zeros((4,), jnp.int32),
                      batch['actor'])
  sched = diffusion.make_schedule('cosine', 1000)
  weights = losses.LossWeights()

  def loss_fn(p, key):
    fn = lambda x, t: model.apply(p, x, t, batch['actor'])
    return losses.diffusion_loss(fn, sched, batch, key, REST, weights)

  (loss, terms), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params,
                                                                            jax.random.PRNGKey(1))
  assert np.isfinite(float(loss))
  assert set(terms) >= {'rot_mse', 'orient', 'body', 'transl', 'loss', 't'}
  np.testing.assert_allclose(float(loss), float(terms['loss'].mean()), rtol=1e-6)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  # A few plain gradient steps on a fixed key lower the loss.
  step = jax.jit(
      lambda p: jax.tree_util.tree_map(lambda w, g: w - 0.05 * g, p,
                                       jax.grad(lambda q: loss_fn(q, jax.random.PRNGKey(1))[0])(p)))
  p = params
  for _ in range(10):
    p = step(p)
  assert float(jax.jit(loss_fn)(p, jax.random.PRNGKey(1))[0]) < float(loss)


def _zero_reactor_batch(seed):
  """256 windows of 24 frames whose reactor is 0: a noised reactor is then its noise alone."""
  return {
      'actor': jnp.asarray(_motion(np.random.default_rng(seed), 256, 24)),
      'reactor': jnp.zeros((256, 24, 56, 6)),
      'mask': jnp.ones((256, 24))
  }


@pytest.mark.parametrize('rho', [0.0, 0.95])
def test_training_noises_with_the_schedules_noise(rho):
  # The noise training adds is correlated over frames exactly as the schedule's samplers draw it.
  seen = {}

  def spy(x_t, t):
    seen['x_t'] = x_t
    return x_t

  sched = diffusion.make_schedule('cosine', 1000, noise_correlation=rho)
  losses.diffusion_loss(spy, sched, _zero_reactor_batch(4), jax.random.PRNGKey(0), REST,
                        losses.LossWeights())
  # x_t = sqrt(1 - abar_t) noise, since x0 = 0
  np.testing.assert_allclose(lag1_correlation(seen['x_t']), rho, atol=0.02)


@pytest.mark.parametrize('rho', [0.0, 0.9])
def test_a_students_x_T_has_the_teachers_noise(rho):
  seen = {}

  def student(x_T):
    seen['x_T'] = x_T
    return x_T

  losses.distillation_loss(student, lambda x_T: x_T, _zero_reactor_batch(5), jax.random.PRNGKey(1),
                           REST, losses.LossWeights(), rho)
  np.testing.assert_allclose(lag1_correlation(seen['x_T']), rho, atol=0.02)


def test_min_snr_weighting_counts_nearly_clean_steps_more():
  sched = diffusion.make_schedule('cosine', 1000)
  weight = np.asarray(losses.timestep_weights(sched, 5.0))
  abar = np.asarray(sched.alphas_cumprod, np.float64)
  snr = abar / (1 - abar)
  capped = snr >= 5.0
  assert 0.1 < capped.mean() < 0.5  # the cosine schedule crosses SNR 5 early on
  np.testing.assert_allclose(weight.mean(), 1.0, rtol=1e-5)  # the learning rate keeps its scale
  np.testing.assert_allclose(weight[capped], weight[capped][0], rtol=1e-5)  # the cap: all alike
  # Below the cap a step counts as much as its signal-to-noise ratio, down to ~0 at pure noise.
  np.testing.assert_allclose(weight[~capped] / snr[~capped], weight[capped][0] / 5.0, rtol=1e-3)
  assert np.all(np.diff(weight) <= 1e-6) and weight[-1] < 1e-3 * weight[0]
  # In the loss: every sample's total counts its step's weight times; the terms are unchanged.
  rng = np.random.default_rng(0)
  batch = {
      'actor': jnp.asarray(_motion(rng, 16, 10)),
      'reactor': jnp.asarray(_motion(rng, 16, 10, angle=0.3)),
      'mask': jnp.ones((16, 10))
  }
  denoise = lambda x_t, t: 0.5 * x_t
  key = jax.random.PRNGKey(3)
  _, plain = losses.diffusion_loss(denoise, sched, batch, key, REST, losses.LossWeights())
  mean, weighted = losses.diffusion_loss(denoise, sched, batch, key, REST,
                                         losses.LossWeights(min_snr_gamma=5.0))
  np.testing.assert_array_equal(weighted['t'], plain['t'])
  np.testing.assert_allclose(weighted['rot_mse'], plain['rot_mse'], rtol=1e-6)
  np.testing.assert_allclose(weighted['loss'],
                             plain['loss'] * weight[np.asarray(plain['t'])],
                             rtol=1e-5)
  np.testing.assert_allclose(mean, np.mean(weighted['loss']), rtol=1e-6)

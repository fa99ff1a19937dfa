"""The actor's heading frame: what it does to a pair, its inverse, and equivariant sampling."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial.transform import Rotation

from regennet_jax import diffusion
from regennet_jax import pair_frame
from regennet_jax import sample
from regennet_jax import streaming
from regennet_jax.body import rotations
from regennet_jax.data import pipeline
from regennet_jax.data import synthetic
from regennet_jax.model import Denoiser


def _pairs(count=4, frames=12):
  src = synthetic.generate_split(3, count, min_frames=frames, max_frames=frames + 8)
  batch = pipeline.stack_windows(src, range(count), pipeline.Windowing(frames, 'start'),
                                 np.random.default_rng(0))
  return jnp.asarray(batch['actor']), jnp.asarray(batch['reactor'])


def _turn_world(motion, degrees):
  """Rotates whole people [B, T, 56, 6] about the vertical by `degrees` (an independent route)."""
  q = Rotation.from_euler('y', degrees, degrees=True)
  m = np.array(motion)
  root = Rotation.from_matrix(
      np.asarray(rotations.rot6d_to_matrix(jnp.asarray(m[..., 0, :]))).reshape(-1, 3, 3))
  m[..., 0, :] = (q * root).as_matrix()[:, :2].reshape(m.shape[:2] + (6,))
  m[..., 55, :3] = q.apply(m[..., 55, :3].reshape(-1, 3)).reshape(m.shape[:2] + (3,))
  return jnp.asarray(m)


def test_the_actor_faces_forward_and_the_pair_keeps_its_geometry():
  actor, reactor = _pairs()
  a, r, rotation = pair_frame.to_actor_frame(actor, reactor)
  facing = rotations.rot6d_to_matrix(a[:, 0, 0])[..., :, 2]  # the body's +z axis
  np.testing.assert_allclose(facing[:, 0], 0, atol=1e-5)
  assert np.all(facing[:, 2] > 0.9)
  np.testing.assert_allclose(rotation[:, 1], [[0, 1, 0]] * len(actor), atol=1e-6)  # about y only
  # Distances between the two roots and every non-root joint rotation are unchanged.
  dist = lambda x, y: jnp.linalg.norm(x[..., 55, :3] - y[..., 55, :3], axis=-1)
  np.testing.assert_allclose(dist(a, r), dist(actor, reactor), atol=1e-5)
  np.testing.assert_array_equal(a[:, :, 1:55], actor[:, :, 1:55])
  np.testing.assert_allclose(pair_frame.from_actor_frame(r, rotation), reactor, atol=1e-5)
  # Turning the world first changes nothing in the actor's frame.
  a2, r2, _ = pair_frame.to_actor_frame(_turn_world(actor, 70), _turn_world(reactor, 70))
  np.testing.assert_allclose(a2, a, atol=1e-5)
  np.testing.assert_allclose(r2, r, atol=1e-5)


def test_samplers_in_the_actor_frame_turn_with_the_world():
  actor, _ = _pairs(frames=8)
  model = Denoiser(num_layers=1, latent_dim=32, ff_size=64, num_heads=4)
  params = model.init(jax.random.PRNGKey(0), actor[:1], jnp.zeros((1,), jnp.int32),
                      actor[:1])['params']
  schedule = diffusion.make_schedule('cosine', 1000, 'ddim5')
  label = jnp.zeros((len(actor),), jnp.int32)
  key = jax.random.PRNGKey(2)
  run = lambda a, frame: np.asarray(
      jax.jit(sample.make_sampler(model, schedule, actor_frame=frame))(params, a, label, key))
  here, turned = run(actor, True), run(_turn_world(actor, -110), True)
  np.testing.assert_allclose(turned, _turn_world(here, -110), atol=2e-4)
  # Without the actor frame the network sees a different input when the world turns.
  assert np.abs(run(_turn_world(actor, -110), False) -
                _turn_world(run(actor, False), -110)).max() > 1e-2
  # Frame by frame, the stream reproduces the whole-sequence sampler in the actor frame too.
  stream = streaming.ReactionStream(model,
                                    params,
                                    schedule,
                                    key,
                                    batch_size=len(actor),
                                    max_frames=8,
                                    actor_frame=True)
  streamed = np.stack([stream.push(actor[:, f]) for f in range(actor.shape[1])], axis=1)
  np.testing.assert_allclose(streamed, here, atol=2e-4)

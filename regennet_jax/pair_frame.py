"""The actor's heading frame: both people of a pair expressed as seen from the actor at frame 0.

The released ReGenNet moves a window so the actor's root starts at the origin but keeps the world's
orientation, so the network must learn every interaction at every facing direction. Rotating both
people about the vertical (y) axis so that the actor faces +z at the first frame (InterGen does the
same) removes that nuisance: a handshake is always "reach forward". The rotation is read from the
actor's first frame only, so it is available online, before any later actor frame is seen.

Motions are [B, T, 56, 6]: row 0 is the root's rot6d (the first two rows of its rotation matrix)
and row 55 the translation [tx, ty, tz, 0, 0, 0]; a vertical rotation changes those two rows only.
Pure functions; `to_actor_frame` and `from_actor_frame` are exact inverses on rotations.
"""

import jax.numpy as jnp

from regennet_jax.body import rotations
from regennet_jax.body import skeleton


def heading(actor_frame):
  """[B, 3, 3] rotations about +y that turn the actor's facing at `actor_frame` [B, 56, 6] to +z."""
  root = rotations.rot6d_to_matrix(actor_frame[:, 0])
  facing = root[..., :, 2]  # the body's +z axis in the world
  yaw = jnp.arctan2(facing[..., 0], facing[..., 2])
  c, s = jnp.cos(-yaw), jnp.sin(-yaw)
  zero, one = jnp.zeros_like(c), jnp.ones_like(c)
  return jnp.stack(
      [jnp.stack([c, zero, s], -1),
       jnp.stack([zero, one, zero], -1),
       jnp.stack([-s, zero, c], -1)], -2)


def rotate(motion, rotation):
  """Turns a whole person [B, T, 56, 6] by world rotations [B, 3, 3] (root and translation)."""
  q = rotation[:, None]  # [B, 1, 3, 3] over frames
  root = rotations.matrix_to_rot6d(
      rotations.matmul3(q, rotations.rot6d_to_matrix(motion[..., 0, :])))
  trans = jnp.einsum('btij,btj->bti', jnp.broadcast_to(q, motion.shape[:2] + (3, 3)),
                     motion[..., skeleton.TRANSLATION_ROW, :3])
  trans = jnp.concatenate([trans, motion[..., skeleton.TRANSLATION_ROW, 3:]], axis=-1)
  # Concatenation rather than scatter (.at[].set): SPMD partitioning of the scatter over a
  # model-parallel mesh changed results at the 1e-3 level.
  assert skeleton.TRANSLATION_ROW == motion.shape[-2] - 1
  return jnp.concatenate([root[..., None, :], motion[..., 1:-1, :], trans[..., None, :]], axis=-2)


def to_actor_frame(actor, *others):
  """(actor, *others) in the actor's first-frame heading frame, plus the rotation used [B, 3, 3]."""
  rotation = heading(actor[:, 0])
  return (rotate(actor, rotation),) + tuple(rotate(m, rotation) for m in others) + (rotation,)


def from_actor_frame(motion, rotation):
  """Back to the world: the inverse of `to_actor_frame` for one person [B, T, 56, 6]."""
  return rotate(motion, jnp.swapaxes(rotation, -1, -2))

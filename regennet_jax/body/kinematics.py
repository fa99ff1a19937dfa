"""Joints-only SMPL-X forward kinematics (no mesh, no blend shapes).

With zero pose-dependent correctives the SMPL-X joints are plain rigid-body FK over the 55-joint tree
from a constant rest skeleton, which the original matches to 5e-7 while spending ~97% of its time on
the 10,475-vertex mesh. The chain is evaluated level by level (all joints at one tree depth in one
batched matmul), 12 steps instead of 55.
"""

import numpy as np
import jax.numpy as jnp

from regennet_jax.body import rotations
from regennet_jax.body import skeleton


def _levels(parents):
  """Joints grouped by depth: [(joint indices, parent positions within the previous level)]."""
  depth = [0] * len(parents)
  for j, p in enumerate(parents):
    depth[j] = 0 if p < 0 else depth[p] + 1
  levels = []
  for d in range(max(depth) + 1):
    joints = [j for j in range(len(parents)) if depth[j] == d]
    prev = levels[-1][0] if levels else []
    levels.append((joints, [prev.index(parents[j]) for j in joints] if d else []))
  order = [j for joints, _ in levels for j in joints]
  return levels, np.argsort(order)


_LEVELS, _INVERSE_ORDER = _levels(skeleton.PARENTS)


def forward_kinematics(rotmats, rest_joints):
  """Posed joint positions (root at its rest position) from local joint rotations.

  Args:
    rotmats: [..., 55, 3, 3] local rotation of each joint relative to its parent. A numpy array
      gives a numpy result (for data generation on the host), anything else runs in JAX.
    rest_joints: [55, 3] rest-pose joint positions.
  Returns:
    (global_rotations [..., 55, 3, 3], joints [..., 55, 3]).
  """
  xp, matmul3 = (np, np.matmul) if isinstance(rotmats, np.ndarray) else (jnp, rotations.matmul3)
  rest = xp.asarray(rest_joints, rotmats.dtype)
  parents = np.array(skeleton.PARENTS)
  offsets = rest - rest[np.maximum(parents, 0)] * (parents >= 0)[:, None]
  root_joints, _ = _LEVELS[0]
  rot = rotmats[..., root_joints, :, :]
  pos = xp.broadcast_to(offsets[np.array(root_joints)], rot.shape[:-1])
  all_rot, all_pos = [rot], [pos]
  for joints, parent_slots in _LEVELS[1:]:
    joints, parent_slots = np.array(joints), np.array(parent_slots)
    parent_rot = rot[..., parent_slots, :, :]
    pos = pos[..., parent_slots, :] + xp.sum(parent_rot * offsets[joints][:, None, :], axis=-1)
    rot = matmul3(parent_rot, rotmats[..., joints, :, :])
    all_rot.append(rot)
    all_pos.append(pos)
  global_rot = xp.concatenate(all_rot, axis=-3)[..., _INVERSE_ORDER, :, :]
  joints = xp.concatenate(all_pos, axis=-2)[..., _INVERSE_ORDER, :]
  return global_rot, joints


def motion_to_joints(motion, rest_joints, with_translation=False):
  """SMPL-X joints of a motion, relative to the root joint (plus root translation if asked).

  Args:
    motion: [..., 56, 6]: 55 rot6d joint rotations, then the row [tx, ty, tz, 0, 0, 0].
    rest_joints: [55, 3].
    with_translation: add the translation row (the original's `vertstrans`; False in the losses).
  Returns:
    [..., 55, 3] joint positions.
  """
  rotmats = rotations.rot6d_to_matrix(motion[..., :skeleton.NUM_JOINTS, :])
  _, joints = forward_kinematics(rotmats, rest_joints)
  joints = joints - joints[..., :1, :]
  if with_translation:
    joints = joints + motion[..., skeleton.TRANSLATION_ROW, None, :3]
  return joints

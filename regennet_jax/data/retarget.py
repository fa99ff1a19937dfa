"""Joint positions -> SMPL-X joint rotations (for sources that only give positions: Kinect, InterHuman).

Inverse kinematics by segment alignment, parent to child: the pelvis and the chest get full
rotations from two directions each (spine up + hip line, neck + shoulder line); every other body
joint gets the smallest rotation that points its rest segment along the observed one. Joints with no
observed segment (hands, face, fingers unless given) stay at rest. With the same rest skeleton this
reproduces the body joints exactly (tested by an FK round trip); twist about a limb's own axis is not
observable from positions and is left at zero.
"""

import numpy as np
from scipy.spatial.transform import Rotation

from regennet_jax.body import skeleton

# joint -> candidate (from, to) segments, first whose both ends are observed wins.
_AIMS = {
    1: [(1, 4)],
    2: [(2, 5)],
    4: [(4, 7)],
    5: [(5, 8)],
    7: [(7, 10)],
    8: [(8, 11)],
    3: [(3, 6), (0, 6), (0, 9)],
    6: [(6, 9), (6, 12), (3, 12)],
    12: [(12, 15)],
    13: [(13, 16), (9, 16)],
    14: [(14, 17), (9, 17)],
    16: [(16, 18)],
    17: [(17, 19)],
    18: [(18, 20)],
    19: [(19, 21)],
    20: [(20, 28), (20, 25)],
    21: [(21, 43), (21, 40)],
}
# Joints solved as full frames: joint -> (up candidates, side candidates as (right, left)).
_FRAMES = {
    0: ([(0, 3), (0, 6), (0, 9), (0, 12)], [(2, 1)]),  # its own children first: exact
    9: ([(9, 12), (9, 15)], [(14, 13), (17, 16)]),  # collars are its own children: exact
}
_ORDER = [j for j in range(skeleton.NUM_JOINTS)]  # PARENTS are topologically sorted


def _unit(v):
  n = np.linalg.norm(v, axis=-1, keepdims=True)
  return v / np.maximum(n, 1e-9)


def _frame(up, side):
  """Columns (x=side, y=up orthogonalised, z=x cross y) of a right-handed frame; [..., 3, 3]."""
  x = _unit(side)
  y = _unit(up - np.sum(up * x, -1, keepdims=True) * x)
  return np.stack([x, y, np.cross(x, y)], axis=-1)


def _swing(a, b):
  """Smallest rotations taking unit vectors a to b, [..., 3, 3] (any 180-degree axis if opposite)."""
  cross = np.cross(a, b)
  sin = np.linalg.norm(cross, axis=-1, keepdims=True)
  cos = np.sum(a * b, axis=-1, keepdims=True)
  axis = np.where(sin > 1e-8, cross / np.maximum(sin, 1e-12), 0.0)
  opposite = (sin[..., 0] <= 1e-8) & (cos[..., 0] < 0)
  if np.any(opposite):  # any axis perpendicular to a
    helper = np.where(np.abs(a[..., :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    axis = np.where(opposite[..., None], _unit(np.cross(a, helper)), axis)
  angle = np.arctan2(sin, cos)
  return Rotation.from_rotvec((axis * angle).reshape(-1, 3)).as_matrix().reshape(a.shape + (3,))


def _pick(candidates, known):
  for f, c in candidates:
    if known[f] and known[c]:
      return f, c
  return None


def positions_to_rotations(positions, known, rest_joints):
  """SMPL-X local rotations and root translation from observed joint positions.

  Args:
    positions: [T, 55, 3] joint positions in SMPL-X joint order (metres, y up); rows of unobserved
      joints are ignored.
    known: [55] bool, which joints are observed. Pelvis and both hips are required.
    rest_joints: [55, 3] the rest skeleton the rotations will be played on.
  Returns:
    [T, 56, 3]: axis-angle rotations of the 55 joints + the pelvis position as translation row.
  """
  known = np.asarray(known, bool)
  if not (known[0] and known[1] and known[2]):
    raise ValueError('retargeting needs the pelvis and both hips')
  frames = positions.shape[0]
  glob = np.zeros((frames, skeleton.NUM_JOINTS, 3, 3))
  local = np.broadcast_to(np.eye(3), glob.shape).copy()
  for j in _ORDER:
    parent = skeleton.PARENTS[j]
    parent_rot = np.broadcast_to(np.eye(3), (frames, 3, 3)) if parent < 0 else glob[:, parent]
    if j in _FRAMES:
      ups, sides = _FRAMES[j]
      up, side = _pick(ups, known), _pick(sides, known)
      if up is not None and side is not None:
        rest_frame = _frame(rest_joints[up[1]] - rest_joints[up[0]],
                            rest_joints[side[1]] - rest_joints[side[0]])
        obs_frame = _frame(positions[:, up[1]] - positions[:, up[0]],
                           positions[:, side[1]] - positions[:, side[0]])
        glob[:, j] = obs_frame @ rest_frame.T
        local[:, j] = np.swapaxes(parent_rot, -1, -2) @ glob[:, j]
        continue
    aim = _pick(_AIMS.get(j, []), known) if j not in _FRAMES else _pick(_FRAMES[j][0], known)
    if aim is None:
      glob[:, j] = parent_rot
      continue
    rest_dir = _unit(np.einsum('tij,j->ti', parent_rot, rest_joints[aim[1]] - rest_joints[aim[0]]))
    obs_dir = _unit(positions[:, aim[1]] - positions[:, aim[0]])
    glob[:, j] = _swing(rest_dir, obs_dir) @ parent_rot
    local[:, j] = np.swapaxes(parent_rot, -1, -2) @ glob[:, j]
  out = np.zeros((frames, 56, 3), np.float32)
  out[:, :skeleton.NUM_JOINTS] = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(
      frames, skeleton.NUM_JOINTS, 3)
  out[:, skeleton.TRANSLATION_ROW] = positions[:, 0]
  return out

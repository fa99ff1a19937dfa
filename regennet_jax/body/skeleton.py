"""The SMPL-X 55-joint skeleton: tree, joint names, and rest-pose joints.

Rest joints come either from a real SMPL-X model file (npz as released by its authors) via
`load_smplx_rest_joints`, or from `builtin_rest_joints`, a hand-made skeleton with the same tree and
plausible adult proportions, so that nothing licensed is needed to train or test.

Coordinates follow SMPL-X: metres, y up, the body faces +z, the person's left is +x.
"""

import os

import numpy as np
from regennet_jax import errors

NUM_JOINTS = 55
# One person's motion is [T, MOTION_ROWS, MOTION_CHANNELS]: the rot6d of each of the 55 joints
# (the first two rows of its rotation matrix), then the row [tx, ty, tz, 0, 0, 0] of the root
# translation. A pair, as the evaluator reads it, puts actor and reactor side by side in channels.
MOTION_ROWS = NUM_JOINTS + 1
MOTION_CHANNELS = 6
PAIR_CHANNELS = 2 * MOTION_CHANNELS
TRANSLATION_ROW = NUM_JOINTS

JOINT_NAMES = ('pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2',
               'left_ankle', 'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck',
               'left_collar', 'right_collar', 'head', 'left_shoulder', 'right_shoulder',
               'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'jaw', 'left_eye',
               'right_eye', 'left_index1', 'left_index2', 'left_index3', 'left_middle1',
               'left_middle2', 'left_middle3', 'left_pinky1', 'left_pinky2', 'left_pinky3',
               'left_ring1', 'left_ring2', 'left_ring3', 'left_thumb1', 'left_thumb2',
               'left_thumb3', 'right_index1', 'right_index2', 'right_index3', 'right_middle1',
               'right_middle2', 'right_middle3', 'right_pinky1', 'right_pinky2', 'right_pinky3',
               'right_ring1', 'right_ring2', 'right_ring3', 'right_thumb1', 'right_thumb2',
               'right_thumb3',
              )

PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15, 20,
           25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46,
           47, 21, 49, 50, 21, 52, 53,
          )

# Joints whose speed decides foot contact: left ankle, left foot, right ankle, right foot.
FOOT_JOINTS = (7, 10, 8, 11)

# Undirected bones (child, parent), e.g. for drawing skeletons and for graph networks.
BONES = tuple((j, p) for j, p in enumerate(PARENTS) if p >= 0)

# Body joints 0..21 of a neutral adult, absolute rest positions (metres). Values are rounded from the
# typical SMPL neutral template so that limb lengths and joint placement look human.
_BODY_REST = np.array([
    [0.000, 0.000, 0.000],  # pelvis
    [0.070, -0.090, -0.005],  # left_hip
    [-0.068, -0.092, -0.007],  # right_hip
    [-0.002, 0.115, -0.025],  # spine1
    [0.105, -0.455, -0.012],  # left_knee
    [-0.105, -0.458, -0.012],  # right_knee
    [0.005, 0.250, 0.003],  # spine2
    [0.090, -0.870, -0.055],  # left_ankle
    [-0.090, -0.870, -0.054],  # right_ankle
    [0.002, 0.300, 0.001],  # spine3
    [0.120, -0.925, 0.062],  # left_foot
    [-0.118, -0.922, 0.066],  # right_foot
    [-0.008, 0.515, -0.051],  # neck
    [0.079, 0.420, -0.037],  # left_collar
    [-0.082, 0.418, -0.040],  # right_collar
    [0.004, 0.605, -0.003],  # head
    [0.174, 0.447, -0.050],  # left_shoulder
    [-0.176, 0.447, -0.051],  # right_shoulder
    [0.435, 0.437, -0.074],  # left_elbow
    [-0.435, 0.435, -0.076],  # right_elbow
    [0.685, 0.444, -0.075],  # left_wrist
    [-0.688, 0.446, -0.075],  # right_wrist
])

# Face joints as offsets from the head joint.
_FACE_FROM_HEAD = np.array([
    [0.000, -0.015, 0.040],  # jaw
    [0.032, 0.085, 0.070],  # left_eye
    [-0.032, 0.085, 0.070],  # right_eye
])

# Left-hand finger chains, as offsets: first knuckle from the wrist, then each phalanx from the last.
# Order matches SMPL-X: index, middle, pinky, ring, thumb.
_LEFT_FINGERS = [
    [[0.088, -0.006, 0.025], [0.034, -0.002, 0.000], [0.022, -0.002, 0.000]],  # index
    [[0.095, -0.004, 0.003], [0.037, -0.002, -0.001], [0.025, -0.002, 0.000]],  # middle
    [[0.075, -0.012, -0.038], [0.022, -0.002, -0.004], [0.017, -0.002, -0.002]],  # pinky
    [[0.087, -0.008, -0.018], [0.032, -0.002, -0.003], [0.023, -0.002, -0.001]],  # ring
    [[0.025, -0.015, 0.025], [0.022, -0.008, 0.020], [0.022, -0.005, 0.020]],  # thumb
]


def builtin_rest_joints(scale=1.0):
  """A [55, 3] float32 rest skeleton with the SMPL-X tree and adult proportions.

  `scale` multiplies every bone length (1.0 is about 1.70 m tall).
  """
  joints = np.zeros((NUM_JOINTS, 3))
  joints[:22] = _BODY_REST
  joints[22:25] = joints[15] + _FACE_FROM_HEAD
  for wrist, first, mirror in ((20, 25, 1.0), (21, 40, -1.0)):
    j = first
    for chain in _LEFT_FINGERS:
      prev = wrist
      for offset in chain:
        joints[j] = joints[prev] + np.array(offset) * np.array([mirror, 1.0, 1.0])
        prev = j
        j += 1
  return (joints * scale).astype(np.float32)


def smplx_field(data, path, name):
  """Array `name` of an opened SMPL-X model npz (errors.DataError naming the file and field)."""
  if name not in data.files:
    raise errors.DataError(f'{path}: field {name!r} is missing (found: {sorted(data.files)}); '
                           'expected an SMPL-X model npz as released (e.g. SMPLX_NEUTRAL.npz).')
  try:
    return np.asarray(data[name])
  except ValueError as e:  # pickled object array
    raise errors.DataError(
        f'{path}: field {name!r} could not be read as a numeric array: {e}') from e


def open_smplx_model(path):
  """The opened npz of a released SMPL-X model file (use it as a context manager)."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise errors.DataError(f'{path}: SMPL-X model file not found.')
  if not path.endswith('.npz'):
    raise errors.DataError(f'{path}: expected the SMPL-X .npz release (e.g. SMPLX_NEUTRAL.npz); '
                           'other formats are not supported.')
  try:
    return np.load(path, allow_pickle=False)
  except Exception as e:  # zip errors, truncated files, ...
    raise errors.DataError(f'{path}: not a readable npz file ({type(e).__name__}: {e}).') from e


def smplx_shape(data, path, betas=None):
  """(rest vertices [V, 3], rest joints [55, 3]), float64, of an opened SMPL-X model npz shaped by
  `betas`, after checking the fields they need.

  J = J_regressor @ (v_template + shapedirs[..., :len(betas)] @ betas), which is exactly what SMPL-X
  does before posing.
  """
  v_template = smplx_field(data, path, 'v_template')
  if v_template.ndim != 2 or v_template.shape[1] != 3:
    raise errors.DataError(
        f'{path}: field v_template has shape {v_template.shape}, expected [V, 3].')
  num_verts = v_template.shape[0]
  regressor = smplx_field(data, path, 'J_regressor')
  if regressor.shape != (NUM_JOINTS, num_verts):
    raise errors.DataError(
        f'{path}: field J_regressor has shape {regressor.shape}, expected '
        f'({NUM_JOINTS}, {num_verts}) for an SMPL-X model with {num_verts} vertices.')
  kintree = smplx_field(data, path, 'kintree_table')
  if kintree.shape != (2, NUM_JOINTS):
    raise errors.DataError(f'{path}: field kintree_table has shape {kintree.shape}, '
                           f'expected (2, {NUM_JOINTS}).')
  parents = kintree[0].astype(np.int64)
  parents[0] = -1  # the release stores the root's parent as 2**32 - 1
  if tuple(parents.tolist()) != PARENTS:
    raise errors.DataError(
        f'{path}: field kintree_table does not describe the SMPL-X 55-joint tree.')
  v_shaped = v_template.astype(np.float64)
  if betas is not None:
    betas = np.asarray(betas, np.float64).reshape(-1)
    shapedirs = smplx_field(data, path, 'shapedirs')
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_verts, 3):
      raise errors.DataError(f'{path}: field shapedirs has shape {shapedirs.shape}, '
                             f'expected ({num_verts}, 3, K).')
    if len(betas) > shapedirs.shape[2]:
      raise errors.DataError(f'{path}: {len(betas)} betas given but shapedirs has only '
                             f'{shapedirs.shape[2]} components.')
    v_shaped = v_shaped + shapedirs[:, :, :len(betas)].astype(np.float64) @ betas
  joints = regressor.astype(np.float64) @ v_shaped
  if not np.all(np.isfinite(joints)):
    raise errors.DataError(f'{path}: rest joints are not finite (NaN/Inf in v_template, shapedirs '
                           'or J_regressor).')
  return v_shaped, joints


def load_smplx_rest_joints(path, betas=None):
  """Rest joints [55, 3] float32 of a released SMPL-X model npz, optionally shaped by `betas`
  (see smplx_shape); since the losses use zero betas this is one constant per body model."""
  with open_smplx_model(path) as data:
    _, joints = smplx_shape(data, os.fspath(path), betas)
  return joints.astype(np.float32)


def rest_joints_from_config(model_path=None, betas=None, scale=1.0):
  """The rest skeleton a run uses: the SMPL-X file if given, else the built-in one."""
  if model_path:
    return load_smplx_rest_joints(model_path, betas)
  return builtin_rest_joints(scale)

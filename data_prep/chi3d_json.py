"""Raw CHI3D SMPL-X fits (json) -> regennet_jax dataset (Chi3D-AS).

  python -m data_prep.chi3d_json --root=chi3d/ --out=data/chi3d_as

Reads every `<root>/**/smplx/<Action> <n>.json` (the CHI3D release layout, e.g.
train/s02/smplx/Hug 5.json). Each file holds both people: transl [2, T, 3] and rotations
global_orient [2, T, 1, 3, 3], body_pose [2, T, 21, 3, 3], and optionally left/right_hand_pose
[2, T, 15, 3, 3], jaw/leye/reye_pose [2, T, 1, 3, 3] (rotation matrices; axis-angle [.., 3] is also
accepted). The paper splits the sequences randomly 4:1; --test_fraction and --seed set that split.
--order is a JSON object {"<subject>/<Action n>": 0 or 1} (1 = the second person is the actor);
without it person 0 is the actor. Frames stay at CHI3D's native 50 fps.
"""

import argparse
import glob
import json
import os

import numpy as np
from scipy.spatial.transform import Rotation

from data_prep import common
from regennet_jax import errors
from regennet_jax.data import classes

# field -> (first joint row, number of joints); rows follow the SMPL-X joint order.
FIELDS = {
    'global_orient': (0, 1),
    'body_pose': (1, 21),
    'jaw_pose': (22, 1),
    'leye_pose': (23, 1),
    'reye_pose': (24, 1),
    'left_hand_pose': (25, 15),
    'right_hand_pose': (40, 15)
}
REQUIRED = ('transl', 'global_orient', 'body_pose')
UP_AXES = {
    'y': np.eye(3),
    'z': np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    '-y': np.diag([1.0, -1.0, -1.0])
}


def _field(data, path, key, frames=None, joints=None):
  try:
    arr = np.asarray(data[key], np.float64)
  except (ValueError, TypeError) as e:
    raise errors.DataError(f'{path}: field {key!r} is not a numeric array ({e}).') from None
  if key == 'transl':
    ok = arr.ndim == 3 and arr.shape[0] == 2 and arr.shape[2] == 3
    expected = '[2, T, 3]'
  else:
    ok = (arr.ndim == 5 and arr.shape[-2:] == (3, 3) or arr.ndim == 4 and arr.shape[-1] == 3) and \
        arr.shape[0] == 2 and arr.shape[2] == joints
    expected = f'[2, T, {joints}, 3, 3] (or [2, T, {joints}, 3] axis-angle)'
  if not ok or (frames is not None and arr.shape[1] != frames):
    raise errors.DataError(f'{path}: field {key!r} has shape {list(arr.shape)}, expected '
                           f'{expected}' + (f' with T={frames}' if frames else '') + '.')
  if not np.all(np.isfinite(arr)):
    raise errors.DataError(f'{path}: field {key!r} contains NaN/Inf.')
  return arr


def read_sequence(path, up_axis='y'):
  """[2, T, 56, 3] axis-angle + translation of both people in one CHI3D json."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise errors.DataError(f'{path}: not valid JSON ({e}); the file may be truncated.') from None
  if not isinstance(data, dict):
    raise errors.DataError(f'{path}: expected a JSON object of SMPL-X fields.')
  for key in REQUIRED:
    if key not in data:
      raise errors.DataError(f'{path}: field {key!r} is missing (has {sorted(data)}).')
  transl = _field(data, path, 'transl')
  frames = transl.shape[1]
  if frames < 1:
    raise errors.DataError(f"{path}: field 'transl' has no frames.")
  out = np.zeros((2, frames, 56, 3))
  up = UP_AXES[up_axis]
  for key, (row, joints) in FIELDS.items():
    if key not in data:
      continue  # optional fields (hands, face) stay at rest
    arr = _field(data, path, key, frames, joints)
    if arr.ndim == 5:
      arr = Rotation.from_matrix(arr.reshape(-1, 3, 3)).as_rotvec().reshape(2, frames, joints, 3)
    out[:, :, row:row + joints] = arr
  # Re-express the world: the root orientation and translation rotate, local joints do not.
  root = Rotation.from_matrix(up) * Rotation.from_rotvec(out[:, :, 0].reshape(-1, 3))
  out[:, :, 0] = root.as_rotvec().reshape(2, frames, 3)
  out[:, :, 55] = transl @ up.T
  return out.astype(np.float32)


def action_of(path):
  stem = os.path.splitext(os.path.basename(path))[0]
  action = stem.split(' ')[0].split('_')[0]
  lookup = {n.lower(): i for i, n in enumerate(classes.CHI3D_NAMES)}
  if action.lower() not in lookup:
    raise errors.DataError(f'{path}: action {action!r} from the file name is not one of '
                           f'{classes.CHI3D_NAMES}.')
  return lookup[action.lower()]


def sequence_name(path):
  parts = os.path.normpath(path).split(os.sep)
  subject = parts[-3] if len(parts) >= 3 else ''
  return f'{subject}/{os.path.splitext(parts[-1])[0]}'


def add_source_flags(parser, default_dir=None):
  """The flags that say where the source files are (default_dir: a manual dir to look in)."""
  parser.add_argument('--root',
                      required=default_dir is None,
                      help='CHI3D folder (searched for */smplx/*.json)' +
                      (' (default: --manual_dir)' if default_dir else ''))
  parser.add_argument('--test_fraction', type=float, default=0.2)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--order',
                      help='JSON {"<subject>/<Action n>": 0|1}, 1 = person 1 is the actor')
  parser.add_argument('--up_axis',
                      choices=sorted(UP_AXES),
                      default='y',
                      help="the source's up axis; output is y-up")


def splits(args, default_dir=None):
  """{split: lazy sized iterable of samples or errors.DataError}."""
  if not args.root and default_dir:
    args.root = default_dir
    if not args.order and os.path.exists(os.path.join(default_dir, 'order.json')):
      args.order = os.path.join(default_dir, 'order.json')
  if not os.path.isdir(args.root):
    raise errors.MissingFileError(f'{args.root}: no such folder.')
  paths = sorted(glob.glob(os.path.join(args.root, '**', 'smplx', '*.json'), recursive=True))
  if not paths:
    raise errors.DataError(f'{args.root}: no */smplx/*.json files (the CHI3D layout).')
  order = {}
  if args.order:
    with open(args.order) as f:
      order = json.load(f)
  rng = np.random.default_rng(args.seed)
  test = set(rng.permutation(len(paths))[:int(round(args.test_fraction * len(paths)))].tolist())
  args.source = args.root

  def read(path):
    name = sequence_name(path)
    label = action_of(path)
    both = read_sequence(path, args.up_axis)
    a = int(order.get(name, 0))
    return {'actor': both[a], 'reactor': both[1 - a], 'label': label, 'name': name}

  return {
      'train': common.LazySamples([p for i, p in enumerate(paths) if i not in test], read),
      'test': common.LazySamples([p for i, p in enumerate(paths) if i in test], read)
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  add_source_flags(parser)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  return common.convert_splits(args.out,
                               'chi3d',
                               classes.CHI3D_NAMES,
                               50,
                               splits(args),
                               args.source,
                               overwrite=args.overwrite,
                               skip_bad=args.skip_bad)


if __name__ == '__main__':
  common.main_wrapper(main)

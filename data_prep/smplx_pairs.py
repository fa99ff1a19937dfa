"""Your own two-person data: per-person SMPL-X files (AMASS convention) paired by a CSV.

  python -m data_prep.smplx_pairs --pairs=my_data/pairs.csv --out=data/my_pairs --fps=30

Each person is an .npz as AMASS and `samples/smplx/` of this package write them:
  poses [T, 165] (or [T, 156] / [T, >= 66]): axis-angle of the SMPL-X joints in SMPL-X order (root,
      21 body joints, jaw, eyes, 15 + 15 hand joints; missing joints rest),
  trans [T, 3]: the SMPL-X `transl`,
  mocap_frame_rate (or mocap_framerate): frames per second.
The CSV has a header and one row per pair; columns `actor`, `reactor` (paths relative to the CSV),
`label` (an action name; the classes are the sorted distinct names) and optionally `split`
(train/test; without it a seeded 20% of the pairs is the test split), `name` and `text`. Both
people are resampled to --fps (rotations by slerp, translations linearly). --up_axis says which
axis is up in the files (AMASS itself is z-up; this package's exports are y-up). Body shapes
(betas) are not used: every person gets the neutral body of the model.
"""

import argparse
import csv
import os

import numpy as np
from scipy.spatial.transform import Rotation
from scipy.spatial.transform import Slerp

from data_prep import common
from regennet_jax import errors
from regennet_jax.body import skeleton

UP_AXES = {'y': np.eye(3), 'z': np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])}
REQUIRED_COLUMNS = ('actor', 'reactor', 'label')


def _frame_rate(data, path):
  for key in ('mocap_frame_rate', 'mocap_framerate'):
    if key in data:
      fps = float(np.asarray(data[key]))
      if not fps > 0:
        raise errors.DataError(f'{path}: field {key!r} is {fps}, expected a positive frame rate.')
      return fps
  raise errors.DataError(f"{path}: no field 'mocap_frame_rate' (frames per second).")


def resample(rotvecs, translation, source_fps, fps):
  """([T, J, 3] axis-angle, [T, 3]) at source_fps -> the same at fps (slerp / linear)."""
  frames = len(rotvecs)
  if frames < 2 or abs(source_fps - fps) < 1e-6:
    return rotvecs, translation
  times = np.arange(frames) / source_fps
  new_times = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
  joints = rotvecs.shape[1]
  out = np.empty((len(new_times), joints, 3))
  for j in range(joints):
    out[:, j] = Slerp(times, Rotation.from_rotvec(rotvecs[:, j]))(new_times).as_rotvec()
  moved = np.stack([np.interp(new_times, times, translation[:, k]) for k in range(3)], -1)
  return out, moved


def read_person(path, fps, up_axis='y', rest_pelvis=None):
  """One AMASS-convention SMPL-X file -> [T, 56, 3] (55 axis-angle joints + pelvis position)."""
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise errors.DataError(f'{path}: not a readable .npz file ({e}).') from None
  with data:
    for key in ('poses', 'trans'):
      if key not in data:
        raise errors.DataError(f'{path}: no field {key!r} (an AMASS-convention SMPL-X file has '
                               'poses [T, 165], trans [T, 3] and mocap_frame_rate).')
    poses = np.asarray(data['poses'], np.float64)
    trans = np.asarray(data['trans'], np.float64)
    source_fps = _frame_rate(data, path)
  if poses.ndim != 2 or poses.shape[1] < 66 or poses.shape[1] % 3 or len(poses) < 1:
    raise errors.DataError(f"{path}: field 'poses' has shape {list(poses.shape)}, expected "
                           '[T, 165] (SMPL-X axis-angle; at least the 22 body joints).')
  if trans.shape != (len(poses), 3):
    raise errors.DataError(f"{path}: field 'trans' has shape {list(trans.shape)}, expected "
                           f'[{len(poses)}, 3] (one translation per pose).')
  if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(trans))):
    raise errors.DataError(f'{path}: poses or trans contain NaN/Inf.')
  joints = min(poses.shape[1] // 3, skeleton.NUM_JOINTS)
  rotvecs = np.zeros((len(poses), skeleton.NUM_JOINTS, 3))
  rotvecs[:, :joints] = poses[:, :joints * 3].reshape(len(poses), joints, 3)
  up = UP_AXES[up_axis]
  if up_axis != 'y':
    rotvecs[:, 0] = (Rotation.from_matrix(up) * Rotation.from_rotvec(rotvecs[:, 0])).as_rotvec()
  rest_pelvis = skeleton.builtin_rest_joints()[0] if rest_pelvis is None else rest_pelvis
  # SMPL-X puts the pelvis at rest pelvis + transl; the dataset stores the pelvis position.
  pelvis = (trans + rest_pelvis) @ up.T if up_axis != 'y' else trans + rest_pelvis
  rotvecs, pelvis = resample(rotvecs, pelvis, source_fps, fps)
  out = np.zeros((len(rotvecs), skeleton.MOTION_ROWS, 3), np.float32)
  out[:, :skeleton.NUM_JOINTS] = rotvecs
  out[:, skeleton.TRANSLATION_ROW] = pelvis
  return out


def read_pairs(csv_path):
  """[row dict] of the pairs CSV, checked for its columns."""
  try:
    with open(csv_path, newline='') as f:
      rows = list(csv.DictReader(f))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise errors.DataError(f'{csv_path}: not a readable CSV file ({e}).') from None
  if not rows:
    raise errors.DataError(f'{csv_path}: no pairs (expected a header line and one row per pair).')
  missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
  if missing:
    raise errors.DataError(f'{csv_path}: no column {missing[0]!r}; the header must name '
                           f'{", ".join(REQUIRED_COLUMNS)} (and optionally split, name, text).')
  for i, row in enumerate(rows, start=2):
    for column in REQUIRED_COLUMNS:
      if not (row.get(column) or '').strip():
        raise errors.DataError(f'{csv_path}, line {i}: column {column!r} is empty.')
    split = (row.get('split') or '').strip()
    if 'split' in row and split not in ('train', 'test'):
      raise errors.DataError(f"{csv_path}, line {i}: column 'split' is {split!r}, expected "
                             "'train' or 'test'.")
  return rows


def class_names_of(csv_path):
  return sorted({row['label'].strip() for row in read_pairs(csv_path)})


def add_source_flags(parser, default_dir=None):
  parser.add_argument('--pairs',
                      required=default_dir is None,
                      help='CSV of pairs' +
                      (' (default: --manual_dir/pairs.csv)' if default_dir else ''))
  parser.add_argument('--fps', type=float, default=30.0, help='frames per second to resample to')
  parser.add_argument('--up_axis', choices=sorted(UP_AXES), default='y')
  parser.add_argument('--seed', type=int, default=0, help='seed of the split when no column')


def splits(args, default_dir=None):
  """{split: lazy sized iterable of samples or errors.DataError}; sets args.class_names."""
  if not args.pairs and default_dir:
    args.pairs = os.path.join(default_dir, 'pairs.csv')
  if not os.path.exists(args.pairs):
    raise errors.MissingFileError(f'{args.pairs}: no such file (the CSV of pairs).')
  rows = read_pairs(args.pairs)
  args.class_names = sorted({row['label'].strip() for row in rows})
  args.source = args.pairs
  base = os.path.dirname(os.path.abspath(args.pairs))
  if 'split' not in rows[0]:
    order = np.random.default_rng(args.seed).permutation(len(rows))
    test = set(order[:int(round(0.2 * len(rows)))].tolist())
    for i, row in enumerate(rows):
      row['split'] = 'test' if i in test else 'train'

  def read(indexed):
    line, row = indexed
    people = [
        read_person(os.path.join(base, row[role].strip()), args.fps, args.up_axis)
        for role in ('actor', 'reactor')
    ]
    frames = [len(p) for p in people]
    if abs(frames[0] - frames[1]) > 1:
      raise errors.DataError(f'{args.pairs}, line {line}: actor has {frames[0]} frames and '
                             f'reactor {frames[1]} at {args.fps:g} fps; a pair must be recorded '
                             'together.')
    n = min(frames)
    name = (row.get('name') or '').strip() or os.path.splitext(os.path.basename(row['actor']))[0]
    return {
        'actor': people[0][:n],
        'reactor': people[1][:n],
        'label': args.class_names.index(row['label'].strip()),
        'name': name,
        'text': (row.get('text') or '').strip()
    }

  indexed = list(enumerate(rows, start=2))
  return {
      split: common.LazySamples([(i, r) for i, r in indexed if r['split'].strip() == split], read)
      for split in ('train', 'test')
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  add_source_flags(parser)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  split_samples = splits(args)
  return common.convert_splits(args.out,
                               'smplx_pairs',
                               args.class_names,
                               args.fps,
                               split_samples,
                               args.source,
                               overwrite=args.overwrite,
                               skip_bad=args.skip_bad)


if __name__ == '__main__':
  common.main_wrapper(main)

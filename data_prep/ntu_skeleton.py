"""Raw NTU RGB+D / NTU120 Kinect `.skeleton` files -> regennet_jax dataset (two-person classes).

  python -m data_prep.ntu_skeleton --skeletons=nturgb+d_skeletons/ --out=data/ntu120_kinect \\
      --missing=NTU_RGBD_samples_with_missing_skeletons.txt \\
      --missing=NTU_RGBD120_samples_with_missing_skeletons.txt

Keeps classes A050-A060 and A106-A120 (labels 0..25), camera 1 by default (as ReGenNet), the
cross-subject split. Kinect gives 25 joint positions per body; they are retargeted onto the SMPL-X
skeleton (regennet_jax.data.retarget), the root translation is the SpineBase position in camera
space (metres, y up). The two bodies tracked in the most frames are kept, in order of first
appearance unless --order_labels says to swap; frames where one is lost reuse its nearest tracked
frame, and sequences with a person missing in more than half the frames are skipped (skipped.txt).
"""

import argparse
import os
import re

import numpy as np

from data_prep import common
from data_prep.common import Skip
from regennet_jax import errors
from regennet_jax.body import skeleton
from regennet_jax.data import classes
from regennet_jax.data import retarget

NAME_RE = re.compile(r'S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})')
# Kinect v2 joint -> SMPL-X joint. SpineBase->pelvis, SpineMid->spine2, SpineShoulder->spine3,
# HandLeft/Right -> the middle-finger knuckle (aims the wrist).
KINECT_TO_SMPLX = {
    0: 0,
    1: 6,
    20: 9,
    2: 12,
    3: 15,
    4: 16,
    5: 18,
    6: 20,
    7: 28,
    8: 17,
    9: 19,
    10: 21,
    11: 43,
    12: 1,
    13: 4,
    14: 7,
    15: 10,
    16: 2,
    17: 5,
    18: 8,
    19: 11
}
_BODY_INFO_VALUES = 10
_JOINT_VALUES = 12


def parse_skeleton(path):
  """{body_id: (frame indices [F], joints [F, 25, 3])} and the frame count of one .skeleton file."""
  try:
    with open(path, 'r', newline=None) as f:  # universal newlines: CRLF files parse the same
      lines = [line.split() for line in f]
  except UnicodeDecodeError:
    raise errors.DataError(f'{path}: not a text .skeleton file (binary content).') from None
  except OSError as e:
    raise errors.DataError(f'{path}: cannot be read ({e.strerror}).') from None
  if not lines:
    raise errors.DataError(f'{path}: empty file.')
  pos = 0

  def take(expected, what):
    nonlocal pos
    if pos >= len(lines):
      raise errors.DataError(f'{path}: file ends early; expected {what} at line {pos + 1}.')
    values = lines[pos]
    pos += 1
    if len(values) != expected:
      raise errors.DataError(f'{path}: line {pos}: {what} has {len(values)} values, '
                             f'expected {expected}.')
    return values

  def number(text, what, cast=float):
    try:
      return cast(text)
    except ValueError:
      raise errors.DataError(f'{path}: line {pos}: {what} is {text!r}, not a number.') from None

  num_frames = number(take(1, 'the frame count')[0], 'the frame count', int)
  bodies = {}
  for frame in range(num_frames):
    num_bodies = number(take(1, f'the body count of frame {frame}')[0], 'the body count', int)
    for b in range(num_bodies):
      body_id = take(_BODY_INFO_VALUES, f'frame {frame} body {b} info')[0]
      num_joints = number(take(1, f'frame {frame} body {b} joint count')[0], 'the joint count', int)
      if num_joints != 25:
        raise errors.DataError(f'{path}: line {pos}: frame {frame} body {b} has {num_joints} '
                               'joints, expected 25 (Kinect v2).')
      joints = np.array([[
          number(v, f'frame {frame} joint {j} coordinate')
          for v in take(_JOINT_VALUES, f'frame {frame} body {b} joint {j}')[:3]
      ]
                         for j in range(25)])
      if not np.all(np.isfinite(joints)):
        raise errors.DataError(f'{path}: frame {frame} body {b}: joint coordinates are NaN/Inf.')
      frames, js = bodies.setdefault(body_id, ([], []))
      frames.append(frame)
      js.append(joints)
  return {k: (np.array(f), np.stack(j)) for k, (f, j) in bodies.items()}, num_frames


def _fill(frames, joints, num_frames):
  """[num_frames, 25, 3], copying each untracked frame from its nearest tracked one."""
  idx = np.searchsorted(frames, np.arange(num_frames)).clip(0, len(frames) - 1)
  prev = (idx - 1).clip(0)
  use_prev = np.abs(frames[prev] - np.arange(num_frames)) < np.abs(frames[idx] -
                                                                   np.arange(num_frames))
  return joints[np.where(use_prev, prev, idx)]


def to_sample(path, name, label, rest, swap=False, max_missing=0.5):
  bodies, num_frames = parse_skeleton(path)
  ranked = sorted(bodies.items(), key=lambda kv: (-len(kv[1][0]), kv[1][0][0]))[:2]
  if len(ranked) < 2:
    return Skip(name, f'{len(bodies)} body tracked; two-person classes need 2')
  missing = [1 - len(f) / num_frames for _, (f, _) in ranked]
  if max(missing) > max_missing:
    return Skip(name, f'a person is untracked in {max(missing):.0%} of frames')
  ranked.sort(key=lambda kv: kv[1][0][0])  # first to appear = person A
  people = []
  known = np.zeros(skeleton.NUM_JOINTS, bool)
  known[list(KINECT_TO_SMPLX.values())] = True
  for _, (frames, joints) in ranked:
    kinect = _fill(frames, joints, num_frames)
    smplx = np.zeros((num_frames, skeleton.NUM_JOINTS, 3))
    for k, s in KINECT_TO_SMPLX.items():
      smplx[:, s] = kinect[:, k]
    people.append(retarget.positions_to_rotations(smplx, known, rest))
  actor, reactor = people[::-1] if swap else people
  return {'actor': actor, 'reactor': reactor, 'label': label, 'name': name}


def read_missing(paths):
  names = set()
  for p in paths:
    with open(p, newline=None) as f:
      names.update(line.strip() for line in f if NAME_RE.fullmatch(line.strip()))
  return names


def add_source_flags(parser, default_dir=None):
  """The flags that say where the source files are (default_dir: a manual dir to look in)."""
  parser.add_argument(
      '--skeletons',
      required=default_dir is None,
      help='folder of *.skeleton files' +
      (' (default: --manual_dir/nturgb+d_skeletons or --manual_dir)' if default_dir else ''))
  parser.add_argument(
      '--missing',
      action='append',
      default=[],
      help='official missing-skeleton list (repeatable)' +
      (' (default: the *missing*.txt files in --manual_dir)' if default_dir else ''))
  parser.add_argument('--cameras', default='1', help='comma-separated camera ids to keep')
  parser.add_argument('--order_labels', help='directory of <name>.mp4.txt actor/reactor labels')


def splits(args, default_dir=None):
  """{split: lazy sized iterable of samples, Skips or errors.DataError}."""
  if not args.skeletons and default_dir:
    nested = os.path.join(default_dir, 'nturgb+d_skeletons')
    args.skeletons = nested if os.path.isdir(nested) else default_dir
    if not args.missing:
      args.missing = sorted(
          os.path.join(default_dir, n)
          for n in os.listdir(default_dir)
          if 'missing' in n and n.endswith('.txt'))
    if not args.order_labels and os.path.isdir(os.path.join(default_dir, 'order_labels')):
      args.order_labels = os.path.join(default_dir, 'order_labels')
  if not os.path.isdir(args.skeletons):
    raise errors.MissingFileError(f'{args.skeletons}: no such folder.')
  missing = read_missing(args.missing)
  cameras = {int(c) for c in args.cameras.split(',')}
  wanted = {'train': [], 'test': []}
  for fname in sorted(os.listdir(args.skeletons)):
    match = NAME_RE.fullmatch(fname.replace('.skeleton', ''))
    if not fname.endswith('.skeleton') or not match:
      continue
    name = match.group(0)
    code = f'A{match.group(5)}'
    if code in classes.NTU26_CODES and int(match.group(2)) in cameras and name not in missing:
      split = 'train' if int(match.group(3)) in classes.NTU120_XSUB_TRAIN_SUBJECTS else 'test'
      wanted[split].append((name, classes.NTU26_CODES.index(code)))
  rest = skeleton.builtin_rest_joints()
  args.source = args.skeletons

  def read(item):
    name, label = item
    swap = common.read_order_label(args.order_labels, name) if args.order_labels else False
    return to_sample(os.path.join(args.skeletons, name + '.skeleton'), name, label, rest, swap)

  return {split: common.LazySamples(items, read) for split, items in wanted.items() if items}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  add_source_flags(parser)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  return common.convert_splits(args.out,
                               'ntu120_kinect',
                               classes.NTU26_NAMES,
                               30,
                               splits(args),
                               args.source,
                               overwrite=args.overwrite,
                               skip_bad=args.skip_bad)


if __name__ == '__main__':
  common.main_wrapper(main)

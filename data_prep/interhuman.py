"""Raw InterHuman (motions_processed npy + annots) -> regennet_jax dataset (InterHuman-AS).

  python -m data_prep.interhuman --root=InterHuman/ --out=data/interhuman_as

Layout: <root>/motions_processed/person{1,2}/<id>.npy ([T, 492] per person: 62 joint positions
first, z up, 30 fps), <root>/annots/<id>.txt (descriptions, one per line), split lists
<root>/split/{train,val,test}.txt (or <root>/{train,val,test}.txt) and optional ignore_list.txt.
The first 22 joint positions (the SMPL body) are retargeted onto the SMPL-X skeleton; hands rest.
InterHuman has no action labels: every sequence gets the one class 'interaction' and its first
description as text. --order is a text file of ids whose person2 is the actor (InterHuman-AS
order); without it person1 is the actor.
"""

import argparse
import os

import numpy as np

from data_prep import common
from regennet_jax import errors
from regennet_jax.body import skeleton
from regennet_jax.data import classes
from regennet_jax.data import retarget

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
MIN_COLUMNS = 22 * 3


def _read_list(path):
  with open(path, newline=None) as f:
    return [line.strip() for line in f if line.strip()]


def _split_file(root, split):
  for candidate in (os.path.join(root, 'split', f'{split}.txt'), os.path.join(root,
                                                                              f'{split}.txt')):
    if os.path.exists(candidate):
      return candidate
  return None


def read_person(path):
  try:
    arr = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise errors.DataError(f'{path}: not a readable .npy file ({e}).') from None
  if arr.ndim != 2 or arr.shape[1] < MIN_COLUMNS or arr.shape[0] < 1:
    raise errors.DataError(f'{path}: array has shape {list(arr.shape)}, expected [T, 492] '
                           f'(at least {MIN_COLUMNS} columns of joint positions).')
  positions = arr[:, :MIN_COLUMNS].astype(np.float64).reshape(-1, 22, 3)
  if not np.all(np.isfinite(positions)):
    frame = int(np.argwhere(~np.isfinite(positions))[0, 0])
    raise errors.DataError(f'{path}: joint positions contain NaN/Inf (first at frame {frame}).')
  return positions @ Z_UP_TO_Y_UP.T


def to_sample(root, motion_id, rest, person2_is_actor=False):
  people = []
  known = np.zeros(skeleton.NUM_JOINTS, bool)
  known[:22] = True
  for person in ('person1', 'person2'):
    path = os.path.join(root, 'motions_processed', person, f'{motion_id}.npy')
    if not os.path.exists(path):
      raise errors.DataError(f'{path}: missing (listed in the split files).')
    body = read_person(path)
    positions = np.zeros(body.shape[:1] + (skeleton.NUM_JOINTS, 3))
    positions[:, :22] = body
    people.append(retarget.positions_to_rotations(positions, known, rest))
  if len(people[0]) != len(people[1]):
    raise errors.DataError(f'{root}/motions_processed: {motion_id} has {len(people[0])} frames '
                           f'for person1 but {len(people[1])} for person2.')
  text = ''
  annot = os.path.join(root, 'annots', f'{motion_id}.txt')
  if os.path.exists(annot):
    lines = _read_list(annot)
    text = lines[0] if lines else ''
  actor, reactor = people[::-1] if person2_is_actor else people
  return {'actor': actor, 'reactor': reactor, 'label': 0, 'name': str(motion_id), 'text': text}


def add_source_flags(parser, default_dir=None):
  """The flags that say where the source files are (default_dir: a manual dir to look in)."""
  parser.add_argument('--root',
                      required=default_dir is None,
                      help='InterHuman folder' +
                      (' (default: --manual_dir)' if default_dir else ''))
  parser.add_argument('--order', help='file of motion ids whose person2 is the actor')


def splits(args, default_dir=None):
  """{split: lazy sized iterable of samples or errors.DataError}."""
  if not args.root and default_dir:
    args.root = default_dir
    if not args.order and os.path.exists(os.path.join(default_dir, 'order.txt')):
      args.order = os.path.join(default_dir, 'order.txt')
  if not os.path.isdir(os.path.join(args.root, 'motions_processed')):
    raise errors.MissingFileError(
        f'{args.root}: no motions_processed/ folder (the InterHuman layout).')
  ignore = set()
  if os.path.exists(os.path.join(args.root, 'ignore_list.txt')):
    ignore = set(_read_list(os.path.join(args.root, 'ignore_list.txt')))
  swap = set(_read_list(args.order)) if args.order else set()
  wanted = {}
  for split in ('train', 'val', 'test'):
    path = _split_file(args.root, split)
    if path:
      wanted[split] = [m for m in _read_list(path) if m not in ignore]
  if not any(wanted.values()):
    raise errors.DataError(f'{args.root}: no split lists (split/train.txt, split/test.txt).')
  rest = skeleton.builtin_rest_joints()
  args.source = args.root
  read = lambda motion_id: to_sample(args.root, motion_id, rest, motion_id in swap)
  return {split: common.LazySamples(ids, read) for split, ids in wanted.items() if ids}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  add_source_flags(parser)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  return common.convert_splits(args.out,
                               'interhuman',
                               classes.INTERHUMAN_NAMES,
                               30,
                               splits(args),
                               args.source,
                               overwrite=args.overwrite,
                               skip_bad=args.skip_bad)


if __name__ == '__main__':
  common.main_wrapper(main)

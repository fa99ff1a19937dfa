"""ReGenNet's released/processed HDF5 files (NTU120-AS xsub, Chi3D-AS) -> regennet_jax dataset.

  python -m data_prep.regennet_h5 --dataset=ntu120 --train=xsub.train.h5 --out=data/ntu120_as
  python -m data_prep.regennet_h5 --dataset=chi3d --train=chi3d_smplx_train.h5 --out=data/chi3d_as

Each HDF5 dataset is one sequence, float32 [T, 56, 6]: 55 SMPL-X axis-angle rotations + a translation
row, columns 0:3 the actor and 3:6 the reactor. The test file defaults to the train path with
'train' replaced by 'test', as the original does. --order_labels applies ReGenNet's actor/reactor
labels (`<name>.mp4.txt`, first line 1 = swap) to files made before that fix.
"""

import argparse
import os
import re

import h5py
import numpy as np

from data_prep import common
from regennet_jax import errors
from regennet_jax.data import classes

DATASETS = {'ntu120': (classes.NTU26_NAMES, 30), 'chi3d': (classes.CHI3D_NAMES, 50),}


def label_from_key(dataset, key):
  """NTU: the 3 digits after the last 'A', 1-based; Chi3D: the integer after the last '_'."""
  if dataset == 'ntu120':
    match = re.search(r'A(\d{3})(?!.*A\d{3})', key)
    label = int(match.group(1)) - 1 if match else -1
  else:
    tail = key.rsplit('_', 1)[-1]
    label = int(tail) if tail.isdigit() else -1
  if not 0 <= label < len(DATASETS[dataset][0]):
    raise errors.DataError(f'key {key!r}: cannot read a {dataset} action label from it '
                           f"(expected {'...A001..A026' if dataset == 'ntu120' else '..._0.._7'}).")
  return label


def read_h5(path, dataset, order_labels=None):
  """Yields samples (or errors.DataError for a bad sequence) from one HDF5 file."""
  try:
    f = h5py.File(path, 'r')
  except (OSError, ValueError) as e:
    raise errors.DataError(f'{path}: not a readable HDF5 file ({e}).') from e
  with f:
    if not len(f.keys()):
      raise errors.DataError(f'{path}: holds no sequences (no HDF5 datasets at its top level).')
    for key in sorted(f.keys()):
      where = f'{path}: sequence {key!r}'
      try:
        arr = np.asarray(f[key][()], np.float32)
      except Exception as e:  # truncated chunks surface here
        yield errors.DataError(f'{where}: unreadable ({type(e).__name__}: {e}).')
        continue
      if arr.ndim != 3 or arr.shape[1:] != (56, 6) or arr.shape[0] < 1:
        yield errors.DataError(f'{where} has shape {arr.shape}, expected [T, 56, 6] '
                               '(55 axis-angle joints + translation row, actor 0:3 | reactor 3:6).')
        continue
      if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        yield errors.DataError(f'{where} contains NaN/Inf (first at frame {bad[0]}, row {bad[1]}).')
        continue
      try:
        label = label_from_key(dataset, key)
        swap = common.read_order_label(order_labels, key) if order_labels else False
      except errors.DataError as e:
        yield errors.DataError(f'{path}: {e}')
        continue
      actor, reactor = arr[..., 0:3], arr[..., 3:6]
      if swap:
        actor, reactor = reactor, actor
      yield {'actor': actor, 'reactor': reactor, 'label': label, 'name': key}


def test_path_for(train_path):
  directory, base = os.path.split(train_path)
  return os.path.join(directory, base.replace('train', 'test'))


def add_source_flags(parser, default_dir=None):
  """The flags that say where the source files are (default_dir: a manual dir to look in)."""
  if default_dir is None:  # a builder (data_prep/builders.py) knows which dataset it is
    parser.add_argument('--dataset', choices=sorted(DATASETS), required=True)
  parser.add_argument('--train',
                      required=default_dir is None,
                      help='train HDF5 file' +
                      (' (default: the one *train*.h5 in --manual_dir)' if default_dir else ''))
  parser.add_argument('--test', help="test HDF5 file (default: --train with 'train' -> 'test')")
  parser.add_argument('--order_labels', help='directory of <name>.mp4.txt actor/reactor labels')


def _only_train_file(directory):
  found = sorted(n for n in os.listdir(directory) if n.endswith('.h5') and 'train' in n)
  if len(found) != 1:
    raise errors.MissingFileError(
        f"{directory}: expected exactly one *train*.h5 file, found {found or 'none'}; give it "
        'with --train.')
  return os.path.join(directory, found[0])


def splits(args, default_dir=None):
  """{split: lazy iterable of samples or errors.DataError} for the files the flags name."""
  if not args.train and default_dir:
    args.train = _only_train_file(default_dir)
    if not args.order_labels and os.path.isdir(os.path.join(default_dir, 'order_labels')):
      args.order_labels = os.path.join(default_dir, 'order_labels')
  if not args.test and 'train' not in os.path.basename(args.train):
    raise errors.ConfigError(f"--train={args.train}: the test file is found by replacing 'train' "
                             'in the file name with \'test\', and this name has no \'train\'; '
                             'give the test file with --test.')
  test = args.test or test_path_for(args.train)
  if os.path.abspath(test) == os.path.abspath(args.train):
    raise errors.ConfigError(f'--train and --test are the same file ({test}); one file cannot '
                             'be both splits.')
  for path in (args.train, test):
    if not os.path.exists(path):
      raise errors.MissingFileError(f'{path}: no such file.')
  args.source = f'{args.train} + {test}'
  return {
      'train': read_h5(args.train, args.dataset, args.order_labels),
      'test': read_h5(test, args.dataset, args.order_labels)
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  add_source_flags(parser)
  common.add_common_flags(parser)
  args = parser.parse_args(argv)
  names, fps = DATASETS[args.dataset]
  return common.convert_splits(args.out,
                               args.dataset,
                               names,
                               fps,
                               splits(args),
                               args.source,
                               overwrite=args.overwrite,
                               skip_bad=args.skip_bad)


if __name__ == '__main__':
  common.main_wrapper(main)

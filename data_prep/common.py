"""What every converter shares: the write loop with a progress bar, skip bookkeeping, order labels."""

import contextlib
import dataclasses
import os
import sys

from tqdm.auto import tqdm

from regennet_jax import errors
from regennet_jax.data import records


@dataclasses.dataclass
class Skip:
  """A sequence left out on purpose (not an error): e.g. one body visible, listed in skipped.txt."""
  name: str
  reason: str


def convert(out,
            name,
            class_names,
            fps,
            source,
            items,
            total=None,
            overwrite=False,
            skip_bad=False):
  """Writes (split, sample | Skip) items to a dataset at `out`; returns a summary dict.

  A malformed input raises errors.DataError naming its file and field, and nothing is written,
  unless skip_bad, in which case it is listed in skipped.txt with the reason.
  """
  skipped = []
  items = iter(items)
  # A stop half-way closes the readers at once (an open HDF5 file blocks a rewrite).
  with contextlib.ExitStack() as stack:
    stack.callback(getattr(items, 'close', lambda: None))
    writer = stack.enter_context(
        records.DatasetWriter(out, name, class_names, fps, source, overwrite=overwrite))
    for item in tqdm(items, total=total, desc=f'convert {name}', unit='seq'):
      if isinstance(item, Exception):
        if not skip_bad:
          raise item
        skipped.append(Skip('?', str(item)))
        continue
      split, sample = item
      if isinstance(sample, Skip):
        skipped.append(sample)
        continue
      writer.add(split, sample)
    splits = dict(writer.splits)
    if not splits:  # raised inside the writer: nothing that looks like a dataset is left behind
      reasons = '; '.join(sorted({s.reason for s in skipped})[:3])
      raise errors.DataError(f'{source}: no sequences were converted ({len(skipped)} skipped' +
                             (f': {reasons}' if reasons else '') + ').')
    if 'train' not in splits:
      raise errors.DataError(f'{source}: no training sequences were converted (only '
                             f'{sorted(splits)}); training would have nothing to learn from.')
    # Listed in the dataset's metadata.json and skipped.txt, written atomically with it.
    writer.skipped.extend(f'{s.name}\t{s.reason}' for s in skipped)
  return {'out': os.path.abspath(out), 'splits': splits, 'skipped': len(skipped)}


def convert_splits(out, name, class_names, fps, splits, source, overwrite=False, skip_bad=False):
  """`convert` for {split: iterable of samples | Skip | errors.DataError}."""
  def items():
    try:
      for split, samples in splits.items():
        for sample in samples:
          yield sample if isinstance(sample, Exception) else (split, sample)
    finally:  # an open HDF5 file would block rewriting it
      for samples in splits.values():
        getattr(samples, 'close', lambda: None)()

  total = sum(len(v) for v in splits.values()) if all(
      hasattr(v, '__len__') for v in splits.values()) else None
  return convert(out,
                 name,
                 class_names,
                 fps,
                 source,
                 items(),
                 total=total,
                 overwrite=overwrite,
                 skip_bad=skip_bad)


class LazySamples:
  """A sized, lazy iterable: read(key) for each key, a DataError yielded instead of raised."""
  def __init__(self, keys, read):
    self.keys, self.read = list(keys), read

  def __len__(self):
    return len(self.keys)

  def __iter__(self):
    for key in self.keys:
      try:
        yield self.read(key)
      except errors.DataError as e:
        yield e


def read_order_label(directory, sample_name):
  """True if actor and reactor must be swapped, from ReGenNet's `<name>.mp4.txt` (first line 0/1)."""
  for candidate in (f'{sample_name}.mp4.txt', f'{sample_name}.txt'):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      with open(path, newline=None) as f:
        first = f.readline().strip()
      if first not in ('0', '1'):
        raise errors.DataError(f"{path}: first line must be 0 (keep) or 1 (swap actor/reactor), "
                               f'got {first!r}.')
      return first == '1'
  raise errors.DataError(f'{directory}: no order label for {sample_name} '
                         f'(expected {sample_name}.mp4.txt).')


def add_common_flags(parser):
  parser.add_argument('--out', required=True, help='output dataset directory')
  parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
  parser.add_argument('--skip_bad',
                      action='store_true',
                      help='skip malformed files (listed in skipped.txt) instead of stopping')


def main_wrapper(fn):
  """Runs a converter main: prints the JSON summary, or one clear error line and exit code 1."""
  import json
  try:
    summary = fn()
  except errors.UserError as e:
    if os.environ.get('REGENNET_DEBUG'):
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  if summary is not None:
    print(json.dumps(summary, indent=2))

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
    splits = dict(writer.info['splits'])
    if not splits:  # raised inside the writer: nothing that looks like a dataset is left behind
      reasons = '; '.join(sorted({s.reason for s in skipped})[:3])
      raise errors.DataError(f'{source}: no sequences were converted ({len(skipped)} skipped' +
                             (f': {reasons}' if reasons else '') + ').')
    if 'train' not in splits:
      raise errors.DataError(f'{source}: no training sequences were converted (only '
                             f'{sorted(splits)}); training would have nothing to learn from.')
    # Written inside the writer so it lands atomically with the dataset.
    with open(os.path.join(writer.tmp, 'skipped.txt'), 'w') as f:
      f.writelines(f'{s.name}\t{s.reason}\n' for s in skipped)
  return {'out': os.path.abspath(out), 'splits': splits, 'skipped': len(skipped)}


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
  print(json.dumps(summary, indent=2))

"""The one on-disk dataset format every converter writes and the input pipeline reads.

A dataset is a directory:

    <root>/dataset_info.json        {format, name, class_names, fps, splits: {split: count}, source}
    <root>/<split>.array_record     one record per sequence (ArrayRecord, readable without TensorFlow)

Each record is a msgpack map (flax.serialization) of one two-person sequence:
    actor, reactor: float32 [T, 56, 3]  55 SMPL-X axis-angle joint rotations + root translation row
    label: int, name: str, text: str (a description where the source has one, else '')
Axis-angle keeps records half the size of rot6d and matches the released ReGenNet HDF5 layout; the
pipeline converts only the frames it crops.

Writers build the directory under a temporary name and rename it into place only when every split is
complete, so an interrupted conversion never leaves a dataset that looks finished.
"""

import json
import os
import shutil

from array_record.python import array_record_data_source
from array_record.python import array_record_module
import flax.serialization
import numpy as np
from regennet_jax import errors

FORMAT = 'regennet_jax.records.v1'
INFO_FILE = 'dataset_info.json'


def validate_sample(sample, where):
  """Checks one sample dict; raises errors.DataError naming `where` and the field."""
  for field in ('actor', 'reactor'):
    arr = sample.get(field)
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[1:] != (56, 3):
      shape = getattr(arr, 'shape', type(arr).__name__)
      raise errors.DataError(f'{where}: field {field!r} has shape {shape}, expected [T, 56, 3] '
                             '(55 axis-angle joints + translation row).')
    if arr.shape[0] < 1:
      raise errors.DataError(f'{where}: field {field!r} has no frames.')
    if not np.all(np.isfinite(arr)):
      raise errors.DataError(f'{where}: field {field!r} contains NaN or Inf.')
  if sample['actor'].shape[0] != sample['reactor'].shape[0]:
    raise errors.DataError(f"{where}: actor has {sample['actor'].shape[0]} frames but reactor has "
                           f"{sample['reactor'].shape[0]}.")
  if not isinstance(sample.get('label'), (int, np.integer)) or sample['label'] < 0:
    raise errors.DataError(f"{where}: field 'label' must be a non-negative int, "
                           f"got {sample.get('label')!r}.")


def encode(sample):
  return flax.serialization.msgpack_serialize({
      'actor': np.asarray(sample['actor'], np.float32),
      'reactor': np.asarray(sample['reactor'], np.float32),
      'label': int(sample['label']),
      'name': str(sample.get('name', '')),
      'text': str(sample.get('text', '')),  # free-text description, where the source has one
  })


def decode(data):
  return flax.serialization.msgpack_restore(data)


class DatasetWriter:
  """Context manager writing a dataset atomically.

      with DatasetWriter(root, name='chi3d', class_names=[...], fps=50) as w:
        for s in samples: w.add('train', s)
  """
  def __init__(self, root, name, class_names, fps, source='', overwrite=False):
    self.root = os.path.abspath(os.fspath(root))
    if os.path.exists(self.root) and not overwrite:
      if os.path.exists(os.path.join(self.root, INFO_FILE)):
        raise errors.OutputExistsError(
            f'{self.root} already holds a dataset; pass overwrite=True (--overwrite) to replace it.'
        )
      if os.path.isdir(self.root) and os.listdir(self.root):
        raise errors.OutputExistsError(
            f'{self.root} exists and is not empty (and not a dataset); choose another output or '
            'remove it.')
    self.tmp = f'{self.root}.incomplete-{os.getpid()}'
    self.info = {
        'format': FORMAT,
        'name': name,
        'class_names': list(class_names),
        'fps': fps,
        'source': source,
        'splits': {}
    }
    self.writers = {}

  def __enter__(self):
    shutil.rmtree(self.tmp, ignore_errors=True)
    os.makedirs(self.tmp)
    return self

  def add(self, split, sample):
    validate_sample(sample, f"{self.info['name']}/{split}/{sample.get('name', '?')}")
    if not 0 <= int(sample['label']) < len(self.info['class_names']):
      raise errors.DataError(f"{sample.get('name', '?')}: label {sample['label']} is outside the "
                             f"{len(self.info['class_names'])} classes.")
    if split not in self.writers:
      self.writers[split] = array_record_module.ArrayRecordWriter(
          os.path.join(self.tmp, f'{split}.array_record'), 'group_size:1')
      self.info['splits'][split] = 0
    self.writers[split].write(encode(sample))
    self.info['splits'][split] += 1

  def __exit__(self, exc_type, exc, tb):
    for w in self.writers.values():
      w.close()
    if exc_type is not None:
      shutil.rmtree(self.tmp, ignore_errors=True)
      return False
    with open(os.path.join(self.tmp, INFO_FILE), 'w') as f:
      json.dump(self.info, f, indent=2)
    if os.path.exists(self.root):
      shutil.rmtree(self.root)
    os.replace(self.tmp, self.root)
    return False


def read_info(root):
  path = os.path.join(os.fspath(root), INFO_FILE)
  if not os.path.exists(path):
    if os.path.isdir(root) and any(
        '.incomplete-' in n for n in os.listdir(os.path.dirname(os.path.abspath(root)) or '.')):
      raise errors.DataError(f'{root}: no {INFO_FILE}; a conversion may have been interrupted. '
                             'Run the converter again.')
    raise errors.DataError(
        f'{root}: not a dataset directory (missing {INFO_FILE}). Create one with '
        'a data_prep converter.')
  with open(path) as f:
    try:
      info = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.DataError(f'{path}: not valid JSON ({e}).') from e
  if info.get('format') != FORMAT:
    raise errors.DataError(
        f"{path}: field 'format' is {info.get('format')!r}, expected {FORMAT!r}.")
  return info


class RecordSource:
  """Random access to one split: len() and [i] -> sample dict (grain RandomAccessDataSource)."""
  def __init__(self, root, split):
    self.info = read_info(root)
    if split not in self.info['splits']:
      raise errors.DataError(f"{root}: no split {split!r} (has {sorted(self.info['splits'])}).")
    self.path = os.path.join(os.fspath(root), f'{split}.array_record')
    self._source = array_record_data_source.ArrayRecordDataSource([self.path])
    if len(self._source) != self.info['splits'][split]:
      raise errors.DataError(f"{self.path}: holds {len(self._source)} records but {INFO_FILE} says "
                             f"{self.info['splits'][split]}.")

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    return decode(self._source[index])

  def __repr__(self):
    return f'RecordSource({self.path!r})'

"""The on-disk dataset format: a TensorFlow Datasets (TFDS) dataset in array_record files.

Every converter writes, and the input pipeline reads, a standard TFDS dataset directory

    <root>/dataset_info.json, features.json, label.labels.txt, metadata.json
    <root>/<name>-<split>.array_record-00000-of-0000N     one example per two-person sequence

so every TFDS tool opens it (`tfds.builder_from_directory(root)`, `.as_data_source()`), without
TensorFlow. The features of one example:
    actor, reactor: float32 [T, 56, 3]  55 SMPL-X axis-angle joint rotations + root translation row
    label: ClassLabel (the dataset's class names), name: Text, text: Text (a description where the
      source has one, else '')
and `metadata.json` holds {fps, source, skipped: ["<name>\\t<reason>", ...], train_max_frames}.
Axis-angle keeps examples half the size of rot6d and matches the released ReGenNet HDF5 layout; the
pipeline converts only the frames it crops.

Writers build the directory under a temporary name and rename it into place only when every split is
complete, so an interrupted conversion never leaves a dataset that looks finished.
"""

import json
import os
import shutil

import numpy as np
import tensorflow_datasets as tfds

from regennet_jax import errors

VERSION = '1.0.0'
INFO_FILE = 'dataset_info.json'
OLD_FORMAT = 'regennet_jax.records.v1'  # this project's own format before TFDS
_EXAMPLES_PER_WRITE = 64  # the TFDS writer rewrites its metadata after every batch of examples


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


def to_example(sample, where, num_classes):
  """The TFDS example of one checked sample dict (errors.DataError naming `where` and the field)."""
  validate_sample(sample, where)
  if not 0 <= int(sample['label']) < num_classes:
    raise errors.DataError(f"{where}: label {sample['label']} is outside the {num_classes} "
                           'classes.')
  return {
      'actor': np.asarray(sample['actor'], np.float32),
      'reactor': np.asarray(sample['reactor'], np.float32),
      'label': int(sample['label']),
      'name': str(sample.get('name', '')),
      'text': str(sample.get('text', '')),
  }


def features(class_names):
  """The TFDS features of one two-person sequence."""
  motion = lambda: tfds.features.Tensor(shape=(None, 56, 3), dtype=np.float32)
  return tfds.features.FeaturesDict({
      'actor': motion(),
      'reactor': motion(),
      # Unknown names (None) are read back from label.labels.txt of a built dataset.
      'label': tfds.features.ClassLabel(names=None if class_names is None else list(class_names)),
      'name': tfds.features.Text(),
      'text': tfds.features.Text(),
  })


def dataset_info(root, name, class_names, fps, source='', description='', homepage='', citation=''):
  return tfds.core.DatasetInfo(
      builder=tfds.core.DatasetIdentity(name=name,
                                        version=tfds.core.Version(VERSION),
                                        data_dir=root,
                                        module_name='regennet_jax.data.records'),
      description=description or f'{name}: two-person action-reaction sequences (SMPL-X).',
      features=features(class_names),
      homepage=homepage,
      citation=citation,
      metadata=tfds.core.MetadataDict(fps=fps, source=source, skipped=[]))


class DatasetWriter:
  """Context manager writing a TFDS dataset atomically.

      with DatasetWriter(root, name='chi3d', class_names=[...], fps=50) as w:
        for s in samples: w.add('train', s)
        w.skipped.append('<name>\\t<reason>')   # listed in metadata.json and skipped.txt
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
    self.name, self.class_names, self.fps, self.source = name, list(class_names), fps, source
    self.splits = {}  # split -> examples written
    self.skipped = []
    self.train_max_frames = 0
    self._pending = {}
    self._writer = None

  def __enter__(self):
    shutil.rmtree(self.tmp, ignore_errors=True)
    os.makedirs(self.tmp)
    self._info = dataset_info(self.tmp, self.name, self.class_names, self.fps, self.source)
    self._writer = tfds.core.SequentialWriter(self._info,
                                              max_examples_per_shard=10_000,
                                              file_format='array_record')
    return self

  def add(self, split, sample):
    example = to_example(sample, f"{self.name}/{split}/{sample.get('name', '?')}",
                         len(self.class_names))
    if split not in self.splits:
      self._writer.initialize_splits([split])
      self.splits[split] = 0
    self._pending.setdefault(split, []).append(example)
    self.splits[split] += 1
    if split == 'train':
      self.train_max_frames = max(self.train_max_frames, len(sample['actor']))
    if len(self._pending[split]) >= _EXAMPLES_PER_WRITE:
      self._flush()

  def _flush(self):
    if any(self._pending.values()):
      self._writer.add_examples(self._pending)
    self._pending = {}

  def __exit__(self, exc_type, exc, tb):
    if exc_type is not None:
      shutil.rmtree(self.tmp, ignore_errors=True)
      return False
    try:
      self._flush()
      self._info.metadata['skipped'] = list(self.skipped)
      self._info.metadata['train_max_frames'] = self.train_max_frames
      self._writer.close_all()  # writes dataset_info.json, features and metadata
      with open(os.path.join(self.tmp, 'skipped.txt'), 'w') as f:
        f.writelines(line + '\n' for line in self.skipped)
    except BaseException:
      shutil.rmtree(self.tmp, ignore_errors=True)
      raise
    if os.path.exists(self.root):
      shutil.rmtree(self.root)
    os.replace(self.tmp, self.root)
    return False


def _check_dataset_dir(root):
  path = os.path.join(os.fspath(root), INFO_FILE)
  if not os.path.exists(path):
    parent = os.path.dirname(os.path.abspath(root)) or '.'
    if os.path.isdir(parent) and any('.incomplete-' in n for n in os.listdir(parent)):
      raise errors.DataError(f'{root}: no {INFO_FILE}; a conversion may have been interrupted. '
                             'Run the converter again.')
    raise errors.DataError(
        f'{root}: not a dataset directory (missing {INFO_FILE}). Create one with '
        'a data_prep converter.')
  with open(path) as f:
    try:
      raw = json.load(f)
    except json.JSONDecodeError as e:
      raise errors.DataError(f'{path}: not valid JSON ({e}).') from e
  if raw.get('format') == OLD_FORMAT:
    raise errors.DataError(
        f"{root}: written by an older regennet_jax in its own format; datasets are TFDS datasets "
        'now. Convert the source again with the same data_prep command and --overwrite.')


def open_dataset(root):
  """The TFDS builder of the dataset directory `root` (errors.DataError if it is not one)."""
  _check_dataset_dir(root)
  try:
    return tfds.builder_from_directory(os.fspath(root))
  except Exception as e:  # protobuf parse errors, missing feature files
    raise errors.DataError(f'{root}: not a readable TFDS dataset ({type(e).__name__}: {e}).') from e


def read_info(root):
  """{name, class_names, fps, source, splits: {split: count}, skipped, train_max_frames} of the
  dataset at `root`."""
  return _summary(open_dataset(root))


def _summary(builder):
  info = builder.info
  meta = dict(info.metadata or {})
  return {
      'name': info.name,
      'class_names': list(info.features['label'].names),
      'fps': meta.get('fps'),
      'source': meta.get('source', ''),
      'splits': {
          name: split.num_examples for name, split in info.splits.items()
      },
      'skipped': list(meta.get('skipped', [])),
      'train_max_frames': meta.get('train_max_frames'),  # None in datasets made elsewhere
  }


class RecordSource:
  """Random access to one split: len() and [i] -> sample dict (a grain RandomAccessDataSource).

  Samples are {actor, reactor: float32 [T, 56, 3], label: int, name: str, text: str}.
  """
  def __init__(self, root, split):
    builder = open_dataset(root)
    self.info = _summary(builder)
    if split not in self.info['splits']:
      raise errors.DataError(f"{root}: no split {split!r} (has {sorted(self.info['splits'])}).")
    self.root, self.split = os.fspath(root), split
    try:
      self._source = builder.as_data_source(split=split)
      if len(self._source):  # files open lazily: touch the first and last shard now
        self._source[0], self._source[len(self._source) - 1]
    except Exception as e:
      raise errors.DataError(f'{root}: split {split!r} cannot be read ({type(e).__name__}: '
                             f'{e}).') from e
    if len(self._source) != self.info['splits'][split]:
      raise errors.DataError(f"{root}: split {split!r} holds {len(self._source)} records but "
                             f"{INFO_FILE} says {self.info['splits'][split]}.")

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    ex = self._source[index]
    text = lambda v: v.decode('utf-8') if isinstance(v, bytes) else str(v)
    return {
        'actor': ex['actor'],
        'reactor': ex['reactor'],
        'label': int(ex['label']),
        'name': text(ex['name']),
        'text': text(ex['text']),
    }

  def __repr__(self):
    return f'RecordSource({self.root!r}, {self.split!r})'

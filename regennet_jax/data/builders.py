"""TFDS dataset builders: the common base every dataset builder shares, and the synthetic dataset.

Every dataset is a `tfds.core.GeneratorBasedBuilder` writing array_record files with the features
of `records.features` (actor/reactor [T, 56, 3], label, name, text). The builders of the licensed
datasets, which read a manual download, are in data_prep/builders.py; `python -m data_prep.build`
builds any of them. Built datasets are read by `records.RecordSource` without TensorFlow.
"""

import dataclasses
import fcntl
import os

import tensorflow_datasets as tfds

from regennet_jax import errors
from regennet_jax.data import records
from regennet_jax.data import synthetic

CACHE_ENV = 'REGENNET_JAX_DATA_DIR'


def default_data_dir():
  """Where datasets built on first use go: $REGENNET_JAX_DATA_DIR or ~/.cache/regennet_jax."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser('~'), '.cache',
                                                   'regennet_jax', 'datasets')


class PairsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of every dataset builder. A subclass sets FPS, HOMEPAGE, CITATION (and
  MANUAL_DOWNLOAD_INSTRUCTIONS for licensed data) and implements `class_names()` and
  `source_splits(manual_dir)` -> {split: iterable of sample dicts, common.Skip or
  errors.DataError}. Its docstring is the dataset's description.

  skip_bad: a malformed sequence is skipped (listed in the dataset's metadata) instead of stopping
  the build. source_args: the source's own options (an argparse.Namespace), if any.
  """
  VERSION = tfds.core.Version(records.VERSION)
  RELEASE_NOTES = {records.VERSION: 'TFDS array_record, SMPL-X axis-angle [T, 56, 3] per person.'}
  FPS = 30
  HOMEPAGE = ''
  CITATION = ''

  def __init__(self, *, source_args=None, skip_bad=False, **kwargs):
    kwargs.setdefault('file_format', 'array_record')
    self.source_args = source_args
    self.skip_bad = skip_bad
    super().__init__(**kwargs)

  def class_names(self):
    raise NotImplementedError

  def fps(self):
    return self.FPS

  def source_splits(self, manual_dir):
    raise NotImplementedError

  def _info(self):
    info = self.dataset_info_from_configs(description=(self.__doc__ or '').strip(),
                                          features=records.features(self.class_names()),
                                          homepage=self.HOMEPAGE,
                                          citation=self.CITATION,
                                          metadata=tfds.core.MetadataDict(fps=self.fps(),
                                                                          source='',
                                                                          skipped=[]))
    # TFDS looks an unbuilt dataset up on gs://tfds-data, where these never are, and leaves an
    # empty temporary directory behind each time.
    info.initialize_from_bucket = lambda: None
    return info

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir) if self.MANUAL_DOWNLOAD_INSTRUCTIONS else None
    splits = self.source_splits(manual_dir)
    if not splits.get('train'):
      raise errors.DataError(f'{self.name}: the source has no training sequences.')
    self.info.metadata['source'] = str(getattr(self.source_args, 'source', '') or manual_dir or '')
    return {split: self._generate_examples(split, samples) for split, samples in splits.items()}

  def _generate_examples(self, split, samples):
    kept = 0
    num_classes = self.info.features['label'].num_classes
    try:
      for i, sample in enumerate(samples):
        if isinstance(sample, Exception):
          if not self.skip_bad:
            raise sample
          self.info.metadata['skipped'].append(f'?\t{sample}')
          continue
        if not isinstance(sample, dict):  # data_prep.common.Skip: left out on purpose
          self.info.metadata['skipped'].append(f'{sample.name}\t{sample.reason}')
          continue
        example = records.to_example(sample, f"{self.name}/{split}/{sample.get('name', i)}",
                                     num_classes)
        kept += 1
        if split == 'train':  # lets run.py check window lengths without reading every sequence
          meta = self.info.metadata
          meta['train_max_frames'] = max(meta.get('train_max_frames', 0), len(sample['actor']))
        yield f'{split}/{i:08d}', example
    finally:
      getattr(samples, 'close', lambda: None)()
    if split == 'train' and not kept:
      skipped = self.info.metadata['skipped']
      raise errors.DataError(f'{self.name}: no training sequences were kept ({len(skipped)} '
                             'skipped' + (f': {skipped[0]}' if skipped else '') + ').')


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  seed: int = 0
  train_size: int = 512
  test_size: int = 128
  min_frames: int = 50
  max_frames: int = 80


def synthetic_config(seed, train_size, test_size, min_frames, max_frames):
  return SyntheticConfig(name=f'seed{seed}_n{train_size}_{test_size}_t{min_frames}_{max_frames}',
                         seed=seed,
                         train_size=train_size,
                         test_size=test_size,
                         min_frames=min_frames,
                         max_frames=max_frames)


class Synthetic(PairsBuilder):
  """Embedded synthetic two-person interactions (no download): eight classes (handshake,
  high-five, push, punch, hug, wave, approach-retreat, pass-object) whose reactor responds causally
  to the actor with physically checkable events (hands meet, the pushed body steps back, ...),
  generated deterministically from a seed with regennet_jax.data.synthetic."""
  BUILDER_CONFIGS = [synthetic_config(0, 512, 128, 50, 80)]
  FPS = synthetic.FPS
  HOMEPAGE = 'https://liangxuy.github.io/ReGenNet/'

  def class_names(self):
    return list(synthetic.ACTIONS)

  def source_splits(self, manual_dir):
    c = self.builder_config
    kwargs = dict(min_frames=c.min_frames, max_frames=c.max_frames)
    samples = lambda split, size: (synthetic.generate_sample(synthetic.split_seed(c.seed, split), i,
                                                             **kwargs) for i in range(size))
    return {'train': samples('train', c.train_size), 'test': samples('test', c.test_size)}


def synthetic_builder(data_dir, seed, train_size, test_size, min_frames, max_frames, **kwargs):
  """The Synthetic builder of these settings in `data_dir` (kwargs: PairsBuilder's)."""
  config = synthetic_config(seed, train_size, test_size, min_frames, max_frames)
  if config.name in {c.name for c in Synthetic.BUILDER_CONFIGS}:
    config = config.name  # TFDS takes a listed config by name only
  return Synthetic(config=config, data_dir=data_dir, **kwargs)


def synthetic_dataset_dir(data_config, data_dir=None):
  """The directory of the synthetic dataset `data_config` describes, built on first use.

  Processes sharing a data dir (hosts of a pod on one machine, parallel runs) take a file lock, so
  one builds while the others wait and then read.
  """
  data_dir = data_dir or data_config.get('dir') or default_data_dir()
  builder = synthetic_builder(data_dir, data_config.seed, data_config.synthetic_train_size,
                              data_config.synthetic_test_size, data_config.synthetic_min_frames,
                              data_config.synthetic_max_frames)
  if not os.path.exists(os.path.join(builder.data_dir, records.INFO_FILE)):
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f'.synthetic_{builder.builder_config.name}.lock'),
              'w') as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
      finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
  return builder.data_dir

"""Which sequences a run uses: the embedded synthetic set or a converted on-disk dataset."""

import functools

from regennet_jax import errors
from regennet_jax.data import records
from regennet_jax.data import synthetic


def load_splits(data_config):
  """Returns (train source, test source, class names) for `config.data`.

  data.name == 'synthetic' generates the embedded dataset in memory (deterministic from data.seed);
  anything else reads the converted dataset at data.path (see regennet_jax.data.records).
  """
  if data_config.name == 'synthetic':
    train, test = _synthetic_splits(data_config.seed, data_config.synthetic_train_size,
                                    data_config.synthetic_test_size,
                                    data_config.synthetic_min_frames,
                                    data_config.synthetic_max_frames)
    return list(train), list(test), list(synthetic.ACTIONS)
  if not data_config.path:
    raise errors.ConfigError(
        f'config.data.path is empty; data.name={data_config.name!r} needs a dataset '
        'directory made by a data_prep converter.')
  train = records.RecordSource(data_config.path, 'train')
  test = records.RecordSource(data_config.path, 'test')
  return train, test, train.info['class_names']


@functools.lru_cache(maxsize=2)
def _synthetic_splits(seed, train_size, test_size, min_frames, max_frames):
  """Generated once per process: every mode of a run reads the same sequences."""
  kwargs = dict(min_frames=min_frames, max_frames=max_frames)
  train = synthetic.generate_split(seed, train_size, **kwargs)
  # A different seed stream: test sequences are new performances, not copies of training ones.
  test = synthetic.generate_split(seed + 1_000_003, test_size, **kwargs)
  return tuple(train), tuple(test)

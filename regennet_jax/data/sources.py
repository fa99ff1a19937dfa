"""Which sequences a run uses: a TFDS dataset, found from `config.data`.

  data.name='synthetic'                     built on first use into data.dir (default: the cache dir
                                            of builders.default_data_dir), from data.seed and the
                                            data.synthetic_* sizes
  data.name=<dataset>, data.dir=<data dir>  <data dir>/<dataset>/<newest version>, as
                                            `python -m data_prep.build` writes it
  data.path=<dataset directory>             one dataset directory (a converter's --out)
"""

import functools
import os

from regennet_jax import errors
from regennet_jax.data import records


def load_splits(data_config):
  """Returns (train source, test source, class names) for `config.data`."""
  root = dataset_directory(data_config)
  return _open_splits(root)


@functools.lru_cache(maxsize=4)
def _open_splits(root):
  train = records.RecordSource(root, 'train')
  test = records.RecordSource(root, 'test')
  return train, test, train.info['class_names']


def dataset_directory(data_config):
  """The TFDS dataset directory `data_config` names (building the synthetic one if needed)."""
  if data_config.path:
    return data_config.path
  if data_config.name == 'synthetic':
    from regennet_jax.data import builders  # imports TFDS's builder machinery only when needed
    return builders.synthetic_dataset_dir(data_config)
  if not data_config.get('dir'):
    raise errors.ConfigError(
        f'config.data.dir is empty; data.name={data_config.name!r} is read from a data dir '
        f'built by python -m data_prep.build --dataset={data_config.name or "<name>"} '
        '--data_dir=<dir> (or set config.data.path to one dataset directory).')
  return newest_version(data_config.dir, data_config.name)


def newest_version(data_dir, name):
  """<data_dir>/<name>/<highest version> (errors.DataError naming what is missing)."""
  folder = os.path.join(data_dir, name)
  if not os.path.isdir(folder):
    have = sorted(n for n in os.listdir(data_dir)
                  if not n.startswith('.')) if os.path.isdir(data_dir) else []
    raise errors.DataError(
        f'{data_dir}: no dataset {name!r} (has {have or "nothing"}); build it '
        f'with python -m data_prep.build --dataset={name} --data_dir={data_dir}.')
  versions = [v for v in os.listdir(folder) if v.replace('.', '').isdigit() and v.count('.') == 2]
  if not versions:
    raise errors.DataError(f'{folder}: no built version (a build may have been interrupted; run '
                           f'python -m data_prep.build --dataset={name} again).')
  newest = max(versions, key=lambda v: tuple(int(x) for x in v.split('.')))
  return os.path.join(folder, newest)

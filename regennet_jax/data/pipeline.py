"""Input pipeline: sequences -> fixed-length windows -> shuffled, per-host sharded, prefetched batches.

Built on grain: the iterator's position is a small dict (`iterator.get_state()`) that the trainer
checkpoints, so a resumed run continues with exactly the batches it would have seen.

A batch is a dict of numpy arrays for this host's share of the global batch:
  actor, reactor: float32 [B, N, 56, 6]  rot6d + translation row, translations relative to the
                  actor's root at the first window frame (as the original)
  mask: bool [B, N]                       False on padded frames
  label: int32 [B]
"""

import dataclasses

import grain
import numpy as np

from regennet_jax import errors
from regennet_jax.body import rotations
from regennet_jax.body import skeleton


def to_model_motion(person, origin):
  """[T, 56, 3] axis-angle + translation -> [T, 56, 6] rot6d + [tx, ty, tz, 0, 0, 0] - origin."""
  out = np.zeros(person.shape[:1] + (skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS), np.float32)
  aa = np.asarray(person[:, :skeleton.NUM_JOINTS], np.float64)
  out[:, :skeleton.NUM_JOINTS] = rotations.axis_angle_to_rot6d(aa)
  out[:, skeleton.TRANSLATION_ROW, :3] = person[:, skeleton.TRANSLATION_ROW] - origin
  return out


@dataclasses.dataclass(frozen=True)
class Windowing:
  """How a sequence becomes a training example.

  num_frames: window length N. Shorter sequences are padded by repeating their last frame, and the
    padded frames are masked out.
  crop: 'random' (uniform start in [0, T - N]; the original never draws the last start, an
    off-by-one not copied here) or 'start' (always frame 0, for evaluation).
  swap_prob: probability of exchanging actor and reactor (the paper's 'Random' ablation).
  start_prob: with crop='random', the probability that a window starts at frame 0 anyway. Uniform
    crops rarely show the model a sequence's beginning, where the reactor stands still until the
    actor does something; a model that never learnt that drifts at the start of a stream.
  """
  num_frames: int
  crop: str = 'random'
  swap_prob: float = 0.0
  start_prob: float = 0.0

  def __post_init__(self):
    if self.crop not in ('random', 'start'):
      raise errors.ConfigError(f"data.crop must be 'random' or 'start', got {self.crop!r}")
    if self.num_frames < 1:
      raise errors.ConfigError(f'data.num_frames must be positive, got {self.num_frames}')
    if not 0.0 <= self.start_prob <= 1.0:
      raise errors.ConfigError(f'data.start_prob must be in [0, 1], got {self.start_prob}')


def make_window(sample, windowing: Windowing, rng: np.random.Generator):
  """One sample dict (actor/reactor [T, 56, 3], label) -> one example (see module docstring)."""
  actor, reactor = sample['actor'], sample['reactor']
  if windowing.swap_prob and rng.random() < windowing.swap_prob:
    actor, reactor = reactor, actor
  frames, n = actor.shape[0], windowing.num_frames
  start = 0
  if frames > n and windowing.crop == 'random':
    from_start = windowing.start_prob and rng.random() < windowing.start_prob
    start = 0 if from_start else int(rng.integers(0, frames - n + 1))
  index = np.minimum(np.arange(start, start + n), frames - 1)
  origin = actor[start, skeleton.TRANSLATION_ROW]
  return {
      'actor': to_model_motion(actor[index], origin),
      'reactor': to_model_motion(reactor[index], origin),
      'mask': np.arange(start, start + n) < frames,
      'label': np.int32(sample['label']),
  }


def stack_windows(source, indices, windowing: Windowing, rng: np.random.Generator):
  """Examples of source[i] for i in indices, stacked into one batch dict (see module docstring)."""
  items = [make_window(source[int(i)], windowing, rng) for i in indices]
  return {k: np.stack([it[k] for it in items]) for k in items[0]}


class _WindowTransform(grain.transforms.RandomMap):
  def __init__(self, windowing):
    self.windowing = windowing

  def random_map(self, sample, rng):
    return make_window(sample, self.windowing, rng)


def make_dataset(source,
                 batch_size,
                 windowing: Windowing,
                 seed=0,
                 shuffle=True,
                 repeat=True,
                 drop_remainder=True,
                 shard_index=0,
                 shard_count=1,
                 num_threads=2,
                 prefetch=4):
  """A grain IterDataset of batches from a random-access `source` (list or RecordSource).

  `shard_index/shard_count` split the sequences between hosts (pass jax.process_index() and
  jax.process_count()); each host then batches `batch_size` examples of its own share.
  """
  if len(source) < shard_count:
    raise errors.DataError(
        f'{source!r} has {len(source)} sequences, fewer than {shard_count} hosts.')
  ds = grain.MapDataset.source(source).seed(seed)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  if drop_remainder and len(ds) < batch_size and not repeat:
    raise errors.DataError(
        f'{source!r}: {len(ds)} sequences per host cannot fill one batch of {batch_size}.')
  if shuffle:
    ds = ds.shuffle()
  if repeat:
    ds = ds.repeat()
  ds = ds.random_map(_WindowTransform(windowing))
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  return ds.to_iter_dataset(
      grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))

import os

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from regennet_jax import errors
from regennet_jax.body import kinematics
from regennet_jax.body import rotations
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.data import records
from regennet_jax.data import synthetic

# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_varied():
  a = synthetic.generate_sample(0, 5)
  b = synthetic.generate_sample(0, 5)
  for k in ('actor', 'reactor'):
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.allclose(synthetic.generate_sample(1, 5)['actor'][:10], a['actor'][:10])
  samples = synthetic.generate_split(0, 48)
  assert len(synthetic.ACTIONS) >= 8
  assert {s['label'] for s in samples} == set(range(len(synthetic.ACTIONS)))
  for s in samples:
    assert s['actor'].shape == s['reactor'].shape and s['actor'].shape[1:] == (56, 3)
    assert np.all(np.isfinite(s['actor'])) and np.all(np.isfinite(s['reactor']))
  # Sequences differ in length, place, facing and stance distance.
  assert len({s['actor'].shape[0] for s in samples}) > 10
  start = np.array([s['actor'][0, 55] for s in samples])
  assert start[:, 0].std() > 0.3 and start[:, 2].std() > 0.3
  dist = [np.linalg.norm(s['actor'][0, 55] - s['reactor'][0, 55]) for s in samples]
  assert np.std(dist) > 0.05 and 0.5 < np.min(dist) and np.max(dist) < 3.0


def _world(person):
  # numpy forward kinematics: sequences of many lengths would each compile the jitted one.
  return kinematics.motion_to_joints(pipeline.to_model_motion(person, 0),
                                     skeleton.builtin_rest_joints().astype(np.float64),
                                     with_translation=True)


def test_synthetic_people_face_each_other_and_stand_on_the_ground():
  for i in range(16):
    s = synthetic.generate_sample(2, i)
    a, r = _world(s['actor']), _world(s['reactor'])
    forward = Rotation.from_rotvec(s['actor'][0, 0]).apply([0.0, 0.0, 1.0])
    towards = r[0, 0] - a[0, 0]
    assert forward @ towards / np.linalg.norm(towards) > 0.9, s['name']
    feet = [7, 8, 10, 11]
    assert -0.15 < a[:, feet, 1].min() < 0.15, s['name']


def test_synthetic_reactor_never_moves_before_the_actor():
  # Onset = first frame where some joint moves faster than 0.8 m/s (idle motion stays well below).
  lags = []
  for i in range(40):
    s = synthetic.generate_sample(7, i)
    speed = lambda j: np.linalg.norm(np.diff(j, axis=0), axis=-1).max(-1) * synthetic.FPS
    sa, sr = speed(_world(s['actor'])), speed(_world(s['reactor']))
    assert (sa > 0.8).any() and (sr > 0.8).any(), s['name']
    lags.append(np.argmax(sr > 0.8) - np.argmax(sa > 0.8))
  assert min(lags) >= 3  # >= 100 ms: a human reaction time, never anticipation


def test_handshake_hands_meet():
  s = synthetic.generate_sample(0, synthetic.ACTIONS.index('handshake'))
  a, r = _world(s['actor']), _world(s['reactor'])
  assert np.linalg.norm(a[:, 21] - r[:, 21], axis=-1).min() < 0.25  # right wrists


# ----------------------------------------------------------------------------- records


def _sample(frames=20, label=0, name='s'):
  rng = np.random.default_rng(frames + label)
  return {
      'actor': rng.normal(size=(frames, 56, 3)).astype(np.float32),
      'reactor': rng.normal(size=(frames, 56, 3)).astype(np.float32),
      'label': label,
      'name': name
  }


def test_records_round_trip(tmp_path):
  root = tmp_path / 'ds'
  samples = [_sample(10 + i, i % 3, f'seq{i}') for i in range(7)]
  with records.DatasetWriter(root, 'toy', ['a', 'b', 'c'], fps=30, source='unit test') as w:
    for i, s in enumerate(samples):
      w.add('train' if i < 5 else 'test', s)
  info = records.read_info(root)
  assert info['splits'] == {'train': 5, 'test': 2} and info['class_names'] == ['a', 'b', 'c']
  train = records.RecordSource(root, 'train')
  assert len(train) == 5
  got = train[3]
  np.testing.assert_array_equal(got['actor'], samples[3]['actor'])
  np.testing.assert_array_equal(got['reactor'], samples[3]['reactor'])
  assert got['label'] == samples[3]['label'] and got['name'] == 'seq3'
  with pytest.raises(errors.DataError, match="no split 'val'"):
    records.RecordSource(root, 'val')
  with pytest.raises(FileExistsError, match='overwrite'):
    records.DatasetWriter(root, 'toy', ['a'], fps=30)


def test_interrupted_writer_leaves_nothing_that_looks_complete(tmp_path):
  root = tmp_path / 'ds'
  with pytest.raises(KeyboardInterrupt):
    with records.DatasetWriter(root, 'toy', ['a'], fps=30) as w:
      w.add('train', _sample())
      raise KeyboardInterrupt
  assert not root.exists()
  assert os.listdir(tmp_path) == []
  with pytest.raises(errors.DataError, match='missing dataset_info.json'):
    records.read_info(root)


def test_writer_rejects_bad_samples_with_names(tmp_path):
  bad = [
      (dict(_sample(), actor=np.zeros((5, 55, 3), np.float32)), r"'actor' has shape \(5, 55, 3\)"),
      (dict(_sample(), reactor=np.full((20, 56, 3), np.nan, np.float32)), "'reactor' contains NaN"),
      (dict(_sample(), reactor=np.zeros((19, 56, 3),
                                        np.float32)), 'actor has 20 frames but reactor'),
      (dict(_sample(), label=-1), "'label'"), (dict(_sample(), label=4), 'outside the 1 classes'),
  ]
  for sample, message in bad:
    with pytest.raises(errors.DataError, match=message):
      with records.DatasetWriter(tmp_path / 'ds', 'toy', ['a'], fps=30) as w:
        w.add('train', dict(sample, name='bad_seq'))
    assert not (tmp_path / 'ds').exists()


def test_datasets_are_tfds_datasets(tmp_path):
  root = tmp_path / 'ds'
  with records.DatasetWriter(root, 'toy', ['a', 'b'], fps=30, source='unit test') as w:
    for i in range(3):
      w.add('train', _sample(10 + i, i % 2, f'seq{i}'))
    w.skipped.append('seq9\tonly one body')
  # Any TFDS tool opens it, without TensorFlow.
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(str(root))
  assert builder.info.features['label'].names == ['a', 'b']
  assert builder.info.features['actor'].shape == (None, 56, 3)
  assert builder.info.metadata['fps'] == 30
  assert builder.info.metadata['skipped'] == ['seq9\tonly one body']
  example = builder.as_data_source(split='train')[2]
  assert example['actor'].shape == (12, 56, 3) and example['name'] == b'seq2'
  assert int(example['label']) == 0
  assert (root / 'skipped.txt').read_text() == 'seq9\tonly one body\n'


def test_reader_names_damaged_and_old_datasets(tmp_path):
  root = tmp_path / 'ds'
  with records.DatasetWriter(root, 'toy', ['a'], fps=30) as w:
    for i in range(3):
      w.add('train', _sample(10 + i))
  for shard in root.glob('*train.array_record*'):
    shard.unlink()
  with pytest.raises(errors.DataError, match="split 'train' cannot be read"):
    records.RecordSource(root, 'train')
  info_path = root / records.INFO_FILE
  info_path.write_text('{broken')
  with pytest.raises(errors.DataError, match='not valid JSON'):
    records.read_info(root)
  # A directory in this project's format from before TFDS: one line on how to rebuild it.
  info_path.write_text('{"format": "regennet_jax.records.v1", "splits": {"train": 3}}')
  with pytest.raises(errors.DataError, match='older regennet_jax.*--overwrite'):
    records.RecordSource(root, 'train')


# ----------------------------------------------------------------------------- pipeline


def test_rotations_on_numpy_arrays_stay_numpy_and_match_scipy():
  vecs = np.random.default_rng(0).normal(size=(100, 3))
  vecs[0] = 0.0
  vecs[1] = [1e-10, 0, 0]
  vecs[2] = [np.pi, 0, 0]
  ref = Rotation.from_rotvec(vecs).as_matrix()[:, :2].reshape(-1, 6)
  got = rotations.axis_angle_to_rot6d(vecs)
  assert isinstance(got, np.ndarray) and got.dtype == np.float64
  np.testing.assert_allclose(got, ref, atol=1e-12)


def test_window_pads_short_sequences_with_mask():
  s = _sample(frames=7)
  ex = pipeline.make_window(s, pipeline.Windowing(10), np.random.default_rng(0))
  assert ex['actor'].shape == (10, 56, 6)
  np.testing.assert_array_equal(ex['mask'], [True] * 7 + [False] * 3)
  np.testing.assert_array_equal(ex['reactor'][7:], np.repeat(ex['reactor'][6:7], 3, 0))
  # Translations are relative to the actor's root at the first frame.
  np.testing.assert_allclose(ex['actor'][0, 55, :3], 0.0)
  np.testing.assert_allclose(ex['reactor'][3, 55, :3],
                             s['reactor'][3, 55] - s['actor'][0, 55],
                             rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(ex['actor'][:, 55, 3:], 0.0)


def test_window_random_crops_are_slices_covering_every_start():
  s = _sample(frames=14)
  w = pipeline.Windowing(10)
  starts = set()
  rng = np.random.default_rng(0)
  for _ in range(200):
    ex = pipeline.make_window(s, w, rng)
    assert ex['mask'].all()
    matches = [
        k for k in range(5) if np.allclose(ex['actor'][:, :55],
                                           rotations.axis_angle_to_rot6d(s['actor'][k:k + 10, :55]),
                                           atol=1e-6)
    ]
    assert len(matches) == 1
    starts.add(matches[0])
  assert starts == {0, 1, 2, 3, 4}
  fixed = pipeline.make_window(s, pipeline.Windowing(10, crop='start'), rng)
  np.testing.assert_allclose(fixed['actor'][:, :55],
                             rotations.axis_angle_to_rot6d(s['actor'][:10, :55]),
                             atol=1e-6)


def _window_start(ex, s, frames):
  matches = [
      k for k in range(frames) if np.allclose(
          ex['actor'][:, :55], rotations.axis_angle_to_rot6d(s['actor'][k:k + 10, :55]), atol=1e-6)
  ]
  assert len(matches) == 1
  return matches[0]


def test_window_start_prob_adds_first_frame_windows():
  s = _sample(frames=30)  # 21 possible starts: uniform crops start at 0 about 1 time in 21
  rng = np.random.default_rng(0)
  starts = lambda p: [
      _window_start(pipeline.make_window(s, pipeline.Windowing(10, start_prob=p), rng), s, 21)
      for _ in range(200)
  ]
  always, half, never = starts(1.0), starts(0.5), starts(0.0)
  assert set(always) == {0}
  assert 80 <= half.count(0) <= 130 and len(set(half)) > 10  # ~50% + 1/21 of the rest
  assert never.count(0) < 30 and len(set(never)) > 15
  with pytest.raises(ValueError, match='start_prob'):
    pipeline.Windowing(10, start_prob=1.5)


def test_window_swap_exchanges_people():
  s = _sample(frames=12)
  ex = pipeline.make_window(s, pipeline.Windowing(12, crop='start', swap_prob=1.0),
                            np.random.default_rng(0))
  np.testing.assert_allclose(ex['actor'][:, :55],
                             rotations.axis_angle_to_rot6d(s['reactor'][:, :55]),
                             atol=1e-6)
  np.testing.assert_allclose(ex['actor'][0, 55, :3], 0.0)  # re-centred on the new actor
  with pytest.raises(ValueError, match='crop'):
    pipeline.Windowing(10, crop='middle')


def _labelled_source(n):
  return [dict(_sample(frames=12), label=i) for i in range(n)]


def test_dataset_batches_are_seeded_and_resumable():
  src = _labelled_source(20)
  w = pipeline.Windowing(8)
  it = iter(pipeline.make_dataset(src, 4, w, seed=3))
  first = [next(it) for _ in range(3)]
  assert first[0]['actor'].shape == (4, 8, 56, 6) and first[0]['label'].dtype == np.int32
  again = iter(pipeline.make_dataset(src, 4, w, seed=3))
  for b in first:
    np.testing.assert_array_equal(next(again)['actor'], b['actor'])
  other = next(iter(pipeline.make_dataset(src, 4, w, seed=4)))
  assert not np.array_equal(other['label'], first[0]['label'])
  # Saving and restoring the iterator position continues the exact stream.
  state = it.get_state()
  expected = [next(it) for _ in range(6)]  # crosses an epoch boundary (20 sequences / 4)
  resumed = iter(pipeline.make_dataset(src, 4, w, seed=3))
  resumed.set_state(state)
  for b in expected:
    np.testing.assert_array_equal(next(resumed)['actor'], b['actor'])
    np.testing.assert_array_equal(next(iter([b]))['label'], b['label'])


def test_dataset_shards_hosts_disjointly():
  src = _labelled_source(12)
  w = pipeline.Windowing(8, crop='start')
  seen = []
  for host in range(3):
    ds = pipeline.make_dataset(src,
                               2,
                               w,
                               shuffle=False,
                               repeat=False,
                               shard_index=host,
                               shard_count=3)
    seen.append([int(x) for b in ds for x in b['label']])
  assert sorted(sum(seen, [])) == list(range(12))
  assert all(len(s) == 4 for s in seen)
  with pytest.raises(ValueError, match='cannot fill one batch'):
    pipeline.make_dataset(src[:3], 4, w, repeat=False)


def test_synthetic_has_no_constant_channels():
  # Real captures vary in every rot6d component; a constant one would make feature metrics (whose
  # input BatchNorm divides by the channel std) explode on any generated deviation.
  motions = [
      pipeline.to_model_motion(s[k], 0)
      for s in synthetic.generate_split(0, 48)
      for k in ('actor', 'reactor')
  ]
  std = np.concatenate(motions).std(axis=0)[:55]
  assert std.min() > 5e-4, np.unravel_index(std.argmin(), std.shape)

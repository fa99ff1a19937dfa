"""Every dataset builder on small generated inputs in the real raw layouts, read back through the
TFDS API (builder_from_directory, tfds.data_source) and through run.py's data loading."""

import json
import tempfile

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from scipy.spatial.transform import Rotation

from data_prep import build
from data_prep import builders
from regennet_jax import errors
from regennet_jax import export
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.data import records
from regennet_jax.data import sources
from tests import fake_files


def _build(dataset, manual_dir, data_dir, *extra):
  return build.main(
      [f'--dataset={dataset}', f'--manual_dir={manual_dir}', f'--data_dir={data_dir}'] +
      list(extra))


def _read_back(summary, data_dir, name):
  """Both TFDS entry points and run.py's loader agree on what was written."""
  builder = tfds.builder_from_directory(summary['directory'])
  assert builder.info.name == name and builder.info.file_format.value == 'array_record'
  assert builder.info.features['actor'].shape == (None, 56, 3)
  by_name = tfds.data_source(name, data_dir=str(data_dir), download=False)
  assert {s: len(v) for s, v in by_name.items()} == summary['splits']
  data = ml_collections.ConfigDict({'name': name, 'dir': str(data_dir), 'path': ''})
  train, test, class_names = sources.load_splits(data)
  assert class_names == builder.info.features['label'].names
  assert len(train) == summary['splits']['train'] and len(test) == summary['splits']['test']
  return {s['name']: s for src in (train, test) for s in (src[i] for i in range(len(src)))}


def test_regennet_h5_builders(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  originals = {}
  for i, code in enumerate(['A001', 'A012', 'A026']):
    a, r = fake_files.synthetic_people(1, i)
    originals[f'S001C001P001R001{code}'] = (a, r)
  pair = lambda a, r: np.concatenate([a, r], axis=-1)
  fake_files.write_regennet_h5(manual / 'xsub.train.h5', {
      k: pair(*v) for k, v in list(originals.items())[:2]
  })
  fake_files.write_regennet_h5(manual / 'xsub.test.h5', {
      k: pair(*v) for k, v in list(originals.items())[2:]
  })
  (manual / 'order_labels').mkdir()
  for i, key in enumerate(originals):
    (manual / 'order_labels' / f'{key}.mp4.txt').write_text(f'{i % 2}\n')
  summary = _build('ntu120_as', manual, tmp_path / 'tfds')
  assert summary['splits'] == {'train': 2, 'test': 1}
  got = _read_back(summary, tmp_path / 'tfds', 'ntu120_as')
  for i, (key, (a, r)) in enumerate(originals.items()):
    actor, reactor = (r, a) if i % 2 else (a, r)  # order labels found in the manual dir
    np.testing.assert_allclose(got[key]['actor'], actor, atol=1e-6)
    np.testing.assert_allclose(got[key]['reactor'], reactor, atol=1e-6)
  assert got['S001C001P001R001A026']['label'] == 25
  # Built datasets are not rebuilt by accident; --overwrite rebuilds.
  with pytest.raises(errors.OutputExistsError, match='--overwrite'):
    _build('ntu120_as', manual, tmp_path / 'tfds')
  assert _build('ntu120_as', manual, tmp_path / 'tfds', '--overwrite')['splits']['train'] == 2
  # A malformed sequence: named, nothing left that looks built; --skip_bad lists it.
  broken = tmp_path / 'broken'
  broken.mkdir()
  fake_files.write_regennet_h5(broken / 'c_train.h5', {
      'x_0': pair(*originals['S001C001P001R001A001']),
      'x_1': np.zeros((5, 56, 5), np.float32)
  })
  fake_files.write_regennet_h5(broken / 'c_test.h5',
                               {'x_2': pair(*originals['S001C001P001R001A012'])})
  with pytest.raises(errors.DataError, match=r"sequence 'x_1' has shape \(5, 56, 5\)"):
    _build('chi3d_as', broken, tmp_path / 'tfds2')
  assert not list((tmp_path / 'tfds2').glob('chi3d_as/*/dataset_info.json'))
  with pytest.raises(errors.DataError, match='no built version.*interrupted'):
    sources.newest_version(str(tmp_path / 'tfds2'), 'chi3d_as')
  summary = _build('chi3d_as', broken, tmp_path / 'tfds2', '--skip_bad')
  assert summary['splits'] == {'train': 1, 'test': 1} and summary['skipped'] == 1
  info = records.read_info(summary['directory'])
  assert 'x_1' in info['skipped'][0] and info['fps'] == 50


def test_raw_source_builders(tmp_path):
  # NTU Kinect skeletons: one usable sequence per split, one single-person sequence skipped.
  ntu = tmp_path / 'ntu'
  (ntu / 'nturgb+d_skeletons').mkdir(parents=True)
  a, r = fake_files.synthetic_people(0, 0, frames=30)
  bodies = [(f'7205759403793110{k}', np.arange(30),
             fake_files.kinect_joints(fake_files.world_positions(p))) for k, p in ((1, a), (2, r))]
  for name, people in (('S001C001P001R001A058', bodies), ('S001C001P003R001A050', bodies),
                       ('S001C001P001R003A059', bodies[:1])):
    fake_files.write_ntu_skeleton(ntu / 'nturgb+d_skeletons' / f'{name}.skeleton', people)
  summary = _build('ntu120_kinect', ntu, tmp_path / 'tfds')
  assert summary['splits'] == {'train': 1, 'test': 1} and summary['skipped'] == 1
  _read_back(summary, tmp_path / 'tfds', 'ntu120_kinect')
  # CHI3D json fits.
  chi3d = tmp_path / 'chi3d'
  for i, (subject, action) in enumerate((('s02', 'Hug 5'), ('s03', 'Push 1'), ('s04', 'Grab 2'),
                                         ('s02', 'Kick 3'), ('s03', 'Grab 10'))):
    a, r = fake_files.synthetic_people(3, i)
    fake_files.write_chi3d_json(str(chi3d / 'train' / subject / 'smplx' / f'{action}.json'),
                                np.stack([a, r]))
  summary = _build('chi3d', chi3d, tmp_path / 'tfds')
  assert summary['splits'] == {'train': 4, 'test': 1}
  got = _read_back(summary, tmp_path / 'tfds', 'chi3d')
  assert got['s02/Hug 5']['label'] == builders.Chi3d.CLASS_NAMES.index('Hug')
  # InterHuman: text descriptions survive as str.
  ih = tmp_path / 'InterHuman'
  for i, motion_id in enumerate(['1001', '1002']):
    a, r = fake_files.synthetic_people(4, i)
    fake_files.write_interhuman_motion(ih,
                                       motion_id,
                                       fake_files.world_positions(a),
                                       fake_files.world_positions(r),
                                       text=f'pair {i}.\n')
  (ih / 'split').mkdir()
  (ih / 'split' / 'train.txt').write_text('1001\n')
  (ih / 'split' / 'test.txt').write_text('1002\n')
  summary = _build('interhuman_as', ih, tmp_path / 'tfds')
  got = _read_back(summary, tmp_path / 'tfds', 'interhuman_as')
  assert got['1001']['text'] == 'pair 0.' and got['1002']['text'] == 'pair 1.'


def test_smplx_pairs_reads_amass_files_and_resamples(tmp_path):
  manual = tmp_path / 'mine'
  manual.mkdir()
  rest = skeleton.builtin_rest_joints()
  rows = ['actor,reactor,label,split,text']
  people = {}
  for i, (label, split) in enumerate((('wave', 'train'), ('hug', 'train'), ('wave', 'test'))):
    a, r = fake_files.synthetic_people(5, i, frames=40)
    for role, person in (('actor', a), ('reactor', r)):
      motion = pipeline.to_model_motion(person, np.zeros(3))
      # Written at 60 fps as this package exports them (y up).
      export.write_amass(manual / f'{i}_{role}.npz', motion, 60, rest, role, 0, label)
    people[i] = (a, r)
    rows.append(f'{i}_actor.npz,{i}_reactor.npz,{label},{split},pair {i}')
  (manual / 'pairs.csv').write_text('\n'.join(rows) + '\n')
  summary = _build('smplx_pairs', manual, tmp_path / 'tfds', '--fps=30')
  assert summary['splits'] == {'train': 2, 'test': 1}
  got = _read_back(summary, tmp_path / 'tfds', 'smplx_pairs')
  assert records.read_info(summary['directory'])['class_names'] == ['hug', 'wave']
  sample = got['0_actor']
  a, r = people[0]
  assert sample['label'] == 1 and sample['text'] == 'pair 0' and len(sample['actor']) == 20
  # Every second frame of the 60 fps file, rotations and translation as written.
  np.testing.assert_allclose(sample['actor'][:, 55], a[::2, 55], atol=1e-5)
  for frame in (0, 7, 19):
    want = Rotation.from_rotvec(a[2 * frame, :55]).as_matrix()
    have = Rotation.from_rotvec(sample['actor'][frame, :55]).as_matrix()
    np.testing.assert_allclose(have, want, atol=1e-5)
  # Bad inputs are named: the CSV line and column, the file and field.
  (manual / 'pairs.csv').write_text('actor,reactor,split\n0_actor.npz,0_reactor.npz,train\n')
  with pytest.raises(errors.DataError, match="pairs.csv: no column 'label'"):
    _build('smplx_pairs', manual, tmp_path / 'tfds3')
  np.savez(manual / 'bad.npz', poses=np.zeros((10, 165)), mocap_frame_rate=30.0)
  (manual / 'pairs.csv').write_text('actor,reactor,label\nbad.npz,0_reactor.npz,wave\n')
  with pytest.raises(errors.DataError, match="bad.npz: no field 'trans'"):
    _build('smplx_pairs', manual, tmp_path / 'tfds3')


def test_synthetic_is_built_on_first_use_and_old_datasets_are_named(tmp_path, monkeypatch):
  monkeypatch.setenv('REGENNET_JAX_DATA_DIR', str(tmp_path / 'cache'))
  scratch = tmp_path / 'tmp'  # this test's own temporary directory, to see what is left in it
  scratch.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(scratch))
  data = ml_collections.ConfigDict({
      'name': 'synthetic',
      'dir': '',
      'path': '',
      'seed': 3,
      'synthetic_train_size': 6,
      'synthetic_test_size': 2,
      'synthetic_min_frames': 12,
      'synthetic_max_frames': 14
  })
  train, test, names = sources.load_splits(data)
  assert len(train) == 6 and len(test) == 2 and names[0] == 'handshake'
  assert list(scratch.iterdir()) == []  # nothing left behind by building it
  # Each split from its own seed stream: test sequences are not copies of training ones.
  from regennet_jax.data import synthetic
  for src, split in ((train, 'train'), (test, 'test')):
    seed = synthetic.split_seed(3, split)
    assert all(src[i]['name'].startswith(f'synthetic_{seed}_') for i in range(len(src)))
  assert synthetic.split_seed(3, 'test') != synthetic.split_seed(3, 'train')
  built = list((tmp_path / 'cache' / 'synthetic').glob('*/1.0.0/dataset_info.json'))
  assert len(built) == 1
  assert tfds.builder_from_directory(str(built[0].parent)).info.splits['train'].num_examples == 6
  # The longest training sequence is recorded, so window lengths are checked without a full read.
  longest = max(len(train[i]['actor']) for i in range(len(train)))
  assert records.read_info(str(built[0].parent))['train_max_frames'] == longest
  # The old format (before TFDS): one line saying how to rebuild.
  old = tmp_path / 'old'
  old.mkdir()
  (old / 'dataset_info.json').write_text(json.dumps({'format': 'regennet_jax.records.v1'}))
  with pytest.raises(errors.DataError, match='older regennet_jax.*--overwrite'):
    sources.load_splits(ml_collections.ConfigDict({'name': 'x', 'dir': '', 'path': str(old)}))
  with pytest.raises(errors.ConfigError, match='data_prep.build --dataset=chi3d_as'):
    sources.load_splits(ml_collections.ConfigDict({'name': 'chi3d_as', 'dir': '', 'path': ''}))

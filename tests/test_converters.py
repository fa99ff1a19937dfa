"""Each converter on small files generated in the real raw layouts, good and broken."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_prep import chi3d_json, interhuman, ntu_skeleton, regennet_h5
from regennet_jax import errors
from regennet_jax.body import skeleton
from regennet_jax.data import records
from regennet_jax.data import retarget
from tests import fake_files
from tests.helpers import ROOT


def _same_rotations(a, b, atol=1e-5):
  ra = Rotation.from_rotvec(a.reshape(-1, 3)).as_matrix()
  rb = Rotation.from_rotvec(b.reshape(-1, 3)).as_matrix()
  np.testing.assert_allclose(ra, rb, atol=atol)


# ----------------------------------------------------------------------------- retargeting


def test_retarget_reproduces_body_joints_exactly():
  actor, _ = fake_files.synthetic_people(0, 4)
  positions = fake_files.world_positions(actor)
  known = np.zeros(55, bool)
  known[:22] = True
  back = retarget.positions_to_rotations(positions, known, skeleton.builtin_rest_joints())
  np.testing.assert_allclose(fake_files.world_positions(back)[:, :22], positions[:, :22], atol=1e-4)
  with pytest.raises(ValueError, match='pelvis and both hips'):
    retarget.positions_to_rotations(positions, np.arange(55) > 2, skeleton.builtin_rest_joints())


# ----------------------------------------------------------------------------- ReGenNet HDF5


def _h5_pair(a, r):
  return np.concatenate([a, r], axis=-1)


def test_regennet_h5_round_trip_with_order_labels(tmp_path):
  seqs = {}
  originals = {}
  for i, code in enumerate(['A001', 'A012', 'A026']):
    a, r = fake_files.synthetic_people(1, i)
    key = f'S001C001P001R001{code}'
    seqs[key] = _h5_pair(a, r)
    originals[key] = (a, r)
  fake_files.write_regennet_h5(tmp_path / 'xsub.train.h5', seqs)
  fake_files.write_regennet_h5(tmp_path / 'xsub.test.h5', dict(list(seqs.items())[:1]))
  labels = tmp_path / 'labels'
  labels.mkdir()
  for i, key in enumerate(seqs):
    (labels / f'{key}.mp4.txt').write_bytes(f'{i % 2}\r\nextra\r\n'.encode())  # CRLF as on Windows
  summary = regennet_h5.main([
      '--dataset=ntu120', f'--train={tmp_path}/xsub.train.h5', f'--out={tmp_path}/out',
      f'--order_labels={labels}'
  ])
  assert summary['splits'] == {'train': 3, 'test': 1}
  train = records.RecordSource(tmp_path / 'out', 'train')
  got = {train[i]['name']: train[i] for i in range(len(train))}
  for i, (key, (a, r)) in enumerate(originals.items()):
    swapped = i % 2 == 1
    np.testing.assert_array_equal(got[key]['actor'], r if swapped else a)
    np.testing.assert_array_equal(got[key]['reactor'], a if swapped else r)
  assert [got[k]['label'] for k in originals] == [0, 11, 25]
  assert records.read_info(tmp_path / 'out')['class_names'][8] == 'handshaking'


def test_regennet_h5_chi3d_labels_and_errors(tmp_path):
  a, r = fake_files.synthetic_people(2, 0)
  good = _h5_pair(a, r)
  fake_files.write_regennet_h5(tmp_path / 'chi3d_smplx_train.h5', {'s02_Hug_4': good})
  fake_files.write_regennet_h5(tmp_path / 'chi3d_smplx_test.h5', {'s03_Push_7': good})
  summary = regennet_h5.main(
      ['--dataset=chi3d', f'--train={tmp_path}/chi3d_smplx_train.h5', f'--out={tmp_path}/ok'])
  assert summary['splits'] == {'train': 1, 'test': 1}
  assert records.RecordSource(tmp_path / 'ok', 'test')[0]['label'] == 7

  bad_cases = {
      'shape': ({
          's02_Hug_4': good[:, :55]
      }, r"'s02_Hug_4' has shape \(\d+, 55, 6\)"),
      'nan': ({
          's02_Hug_4': np.where(np.arange(len(good))[:, None, None] == 3, np.nan, good)
      }, r"'s02_Hug_4' contains NaN/Inf \(first at frame 3"),
      'label': ({
          's02_Hug_x': good
      }, "cannot read a chi3d action label"),
  }
  for case, (seqs, message) in bad_cases.items():
    fake_files.write_regennet_h5(tmp_path / f'{case}_train.h5', seqs)
    fake_files.write_regennet_h5(tmp_path / f'{case}_test.h5', {'s03_Push_7': good})
    with pytest.raises(errors.DataError, match=message):
      regennet_h5.main(
          ['--dataset=chi3d', f'--train={tmp_path}/{case}_train.h5', f'--out={tmp_path}/{case}'])
    assert not (tmp_path / case).exists()
  # --skip_bad converts the rest and lists the bad one.
  fake_files.write_regennet_h5(tmp_path / 'nan_train.h5', {
      **bad_cases['nan'][0], 's04_Hug_4': good
  })
  summary = regennet_h5.main([
      '--dataset=chi3d', f'--train={tmp_path}/nan_train.h5', f'--out={tmp_path}/skipping',
      '--skip_bad'
  ])
  assert summary['skipped'] == 1 and summary['splits'] == {'train': 1, 'test': 1}
  assert 'NaN' in (tmp_path / 'skipping' / 'skipped.txt').read_text()
  # A truncated HDF5 file.
  raw = (tmp_path / 'chi3d_smplx_train.h5').read_bytes()
  (tmp_path / 'cut_train.h5').write_bytes(raw[:len(raw) // 3])
  fake_files.write_regennet_h5(tmp_path / 'cut_test.h5', {'s03_Push_7': good})
  with pytest.raises(errors.DataError, match='cut_train.h5'):
    regennet_h5.main(
        ['--dataset=chi3d', f'--train={tmp_path}/cut_train.h5', f'--out={tmp_path}/cut'])


def test_converter_command_line_reports_errors_in_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([
      sys.executable, '-m', 'data_prep.regennet_h5', '--dataset=ntu120',
      f'--train={tmp_path}/missing_train.h5', f'--out={tmp_path}/o'
  ],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env=env,
                        timeout=120)
  assert proc.returncode == 1
  assert 'missing_train.h5: no such file' in proc.stderr and 'Traceback' not in proc.stderr


def test_interrupted_conversion_leaves_no_dataset(tmp_path, monkeypatch):
  a, r = fake_files.synthetic_people(1, 0)
  seqs = {f'S001C001P001R001A00{i}': _h5_pair(a, r) for i in range(1, 4)}
  fake_files.write_regennet_h5(tmp_path / 'x_train.h5', seqs)
  fake_files.write_regennet_h5(tmp_path / 'x_test.h5', seqs)
  calls = []
  original = records.DatasetWriter.add

  def flaky_add(self, split, sample):
    calls.append(sample['name'])
    if len(calls) == 2:
      raise KeyboardInterrupt
    return original(self, split, sample)

  monkeypatch.setattr(records.DatasetWriter, 'add', flaky_add)
  with pytest.raises(KeyboardInterrupt):
    regennet_h5.main(['--dataset=ntu120', f'--train={tmp_path}/x_train.h5', f'--out={tmp_path}/o'])
  assert not (tmp_path / 'o').exists()
  assert not [n for n in os.listdir(tmp_path) if 'incomplete' in n]


# ----------------------------------------------------------------------------- NTU .skeleton


def _ntu_bodies(seed, index, drop=()):
  a, r = fake_files.synthetic_people(seed, index, frames=30)
  bodies = []
  for body_id, person in (('72057594037931101', a), ('72057594037931102', r)):
    joints = fake_files.kinect_joints(fake_files.world_positions(person))
    frames = np.array([f for f in range(len(joints)) if not (body_id.endswith('2') and f in drop)])
    bodies.append((body_id, frames, joints[frames]))
  return bodies, (a, r)


def test_ntu_skeleton_conversion(tmp_path):
  sk = tmp_path / 'skeletons'
  sk.mkdir()
  bodies, (a, r) = _ntu_bodies(0, 0, drop=(5, 6))
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R001A058.skeleton', bodies, crlf=True)  # train
  fake_files.write_ntu_skeleton(sk / 'S001C001P003R001A050.skeleton', bodies)  # test subject
  fake_files.write_ntu_skeleton(sk / 'S001C002P001R001A058.skeleton', bodies)  # camera 2
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R001A001.skeleton', bodies)  # one-person class
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R002A058.skeleton', bodies)  # on missing list
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R003A059.skeleton', bodies[:1])  # one body
  missing = tmp_path / 'NTU_RGBD120_samples_with_missing_skeletons.txt'
  missing.write_text('\n\nS001C001P001R002A058\n')
  summary = ntu_skeleton.main(
      [f'--skeletons={sk}', f'--out={tmp_path}/out', f'--missing={missing}'])
  assert summary['splits'] == {'train': 1, 'test': 1}
  assert summary['skipped'] == 1
  assert '1 body tracked' in (tmp_path / 'out' / 'skipped.txt').read_text()
  train = records.RecordSource(tmp_path / 'out', 'train')
  s = train[0]
  assert s['name'] == 'S001C001P001R001A058' and s['label'] == 8
  # Retargeted joints follow the Kinect skeleton: knees, elbows, wrists within a few cm.
  for got, person in ((s['actor'], a), (s['reactor'], r)):
    want = fake_files.world_positions(person)
    have = fake_files.world_positions(got)
    for j in (4, 5, 7, 8, 18, 19, 20, 21, 15):
      assert np.abs(have[:, j] - want[:, j]).max() < 0.05, j
  np.testing.assert_allclose(s['actor'][:, 55], fake_files.world_positions(a)[:, 0], atol=1e-5)


def test_ntu_skeleton_errors(tmp_path):
  sk = tmp_path / 'skeletons'
  sk.mkdir()
  bodies, _ = _ntu_bodies(0, 1)
  path = fake_files.write_ntu_skeleton(sk / 'S001C001P001R001A052.skeleton',
                                       bodies,
                                       truncate_at=4000)
  with pytest.raises(errors.DataError, match=r'A052.skeleton: (file ends early|line \d+)'):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  text = fake_files.write_ntu_skeleton(sk / 'x', bodies) and (sk / 'x').read_text()
  os.remove(sk / 'x')
  path.write_text(text.replace('\n25\n', '\n24\n', 1))
  with pytest.raises(errors.DataError, match='has 24 joints, expected 25'):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  lines = text.splitlines()
  lines[4] = 'nan ' + lines[4].split(' ', 1)[1]
  path.write_text('\n'.join(lines) + '\n')
  with pytest.raises(errors.DataError, match='NaN/Inf'):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  lines[4] = 'abc ' + lines[4].split(' ', 1)[1]
  path.write_text('\n'.join(lines) + '\n')
  with pytest.raises(errors.DataError, match=r"line 5: .* is 'abc', not a number"):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  # A person lost for most of the sequence is skipped, not guessed.
  bodies, _ = _ntu_bodies(0, 1, drop=tuple(range(3, 30)))
  fake_files.write_ntu_skeleton(path, bodies)
  fake_files.write_ntu_skeleton(sk / 'S001C001P003R001A052.skeleton', _ntu_bodies(0, 2)[0])
  # Without a training sequence the output would be no dataset to train on: refused.
  with pytest.raises(errors.DataError,
                     match=r"no training sequences were converted \(only \['test'\]\)"):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  assert not (tmp_path / 'o').exists()
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R002A052.skeleton', _ntu_bodies(0, 3)[0])
  summary = ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  assert summary['skipped'] == 1 and summary['splits'] == {'train': 1, 'test': 1}
  assert 'untracked in 90% of frames' in (tmp_path / 'o' / 'skipped.txt').read_text()


# ----------------------------------------------------------------------------- CHI3D json


def test_chi3d_json_conversion_and_errors(tmp_path):
  root = tmp_path / 'chi3d'
  people = {}
  for subject, action in (('s02', 'Hug 5'), ('s03', 'Push 1'), ('s04', 'HoldingHands 2'),
                          ('s02', 'Kick 3'), ('s03', 'Grab 10')):
    a, r = fake_files.synthetic_people(3, len(people))
    fake_files.write_chi3d_json(str(root / 'train' / subject / 'smplx' / f'{action}.json'),
                                np.stack([a, r]))
    people[f'{subject}/{action}'] = (a, r)
  order = tmp_path / 'order.json'
  order.write_text(json.dumps({'s03/Push 1': 1}))
  summary = chi3d_json.main([f'--root={root}', f'--out={tmp_path}/out', f'--order={order}'])
  assert summary['splits'] == {'train': 4, 'test': 1}
  seen = {}
  for split in ('train', 'test'):
    src = records.RecordSource(tmp_path / 'out', split)
    seen.update({src[i]['name']: src[i] for i in range(len(src))})
  assert set(seen) == set(people)
  for name, (a, r) in people.items():
    s = seen[name]
    actor, reactor = (r, a) if name == 's03/Push 1' else (a, r)
    _same_rotations(s['actor'][:, :55], actor[:, :55])
    _same_rotations(s['reactor'][:, :55], reactor[:, :55])
    np.testing.assert_allclose(s['actor'][:, 55], actor[:, 55], atol=1e-5)
  assert seen['s02/Hug 5']['label'] == 4 and seen['s04/HoldingHands 2']['label'] == 3

  bad = root / 'train' / 's02' / 'smplx' / 'Hug 5.json'
  data = json.loads(bad.read_text())
  data['body_pose'] = np.zeros((2, len(data['transl'][0]), 20, 3, 3)).tolist()
  bad.write_text(json.dumps(data))
  with pytest.raises(errors.DataError,
                     match=r"Hug 5.json: field 'body_pose' has shape \[2, \d+, 20"):
    chi3d_json.main([f'--root={root}', f'--out={tmp_path}/o2'])
  bad.write_text(json.dumps(data)[:500])
  with pytest.raises(errors.DataError, match='Hug 5.json: not valid JSON.*truncated'):
    chi3d_json.main([f'--root={root}', f'--out={tmp_path}/o2'])
  del data['transl']
  bad.write_text(json.dumps(data))
  with pytest.raises(errors.DataError, match="field 'transl' is missing"):
    chi3d_json.main([f'--root={root}', f'--out={tmp_path}/o2'])
  assert not (tmp_path / 'o2').exists()


# ----------------------------------------------------------------------------- InterHuman


def test_interhuman_conversion_and_errors(tmp_path):
  root = tmp_path / 'InterHuman'
  originals = {}
  for i, motion_id in enumerate(['1001', '1002', '1003']):
    a, r = fake_files.synthetic_people(4, i)
    pa, pr = fake_files.world_positions(a), fake_files.world_positions(r)
    fake_files.write_interhuman_motion(root,
                                       motion_id,
                                       pa,
                                       pr,
                                       text='one waves.\r\nthe other waves back.\r\n')
    originals[motion_id] = (pa, pr)
  (root / 'split').mkdir()
  (root / 'split' / 'train.txt').write_text('1001\n1002\n')
  (root / 'split' / 'test.txt').write_text('1003\n')
  (root / 'ignore_list.txt').write_text('1002\n')
  order = tmp_path / 'order.txt'
  order.write_text('1003\n')
  summary = interhuman.main([f'--root={root}', f'--out={tmp_path}/out', f'--order={order}'])
  assert summary['splits'] == {'train': 1, 'test': 1}
  s = records.RecordSource(tmp_path / 'out', 'train')[0]
  assert s['name'] == '1001' and s['text'] == 'one waves.' and s['label'] == 0
  # Full 22 body joints are observed: the retargeted body reproduces them (y-up again).
  np.testing.assert_allclose(fake_files.world_positions(s['actor'])[:, :22],
                             originals['1001'][0][:, :22],
                             atol=1e-4)
  t = records.RecordSource(tmp_path / 'out', 'test')[0]
  np.testing.assert_allclose(fake_files.world_positions(t['actor'])[:, :22],
                             originals['1003'][1][:, :22],
                             atol=1e-4)  # person2 is the actor

  p2 = root / 'motions_processed' / 'person2' / '1001.npy'
  np.save(p2, np.zeros((10, 30), np.float32))
  with pytest.raises(errors.DataError, match=r'person2/1001.npy: array has shape \[10, 30\]'):
    interhuman.main([f'--root={root}', f'--out={tmp_path}/o2'])
  p2.write_bytes(b'\x93NUMPY garbage')
  with pytest.raises(errors.DataError, match='1001.npy: not a readable .npy'):
    interhuman.main([f'--root={root}', f'--out={tmp_path}/o2'])
  os.remove(p2)
  with pytest.raises(errors.DataError, match='person2/1001.npy: missing'):
    interhuman.main([f'--root={root}', f'--out={tmp_path}/o2'])
  assert not (tmp_path / 'o2').exists()

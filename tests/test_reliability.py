"""Faults a run survives: damaged checkpoints, failed saves, unwritable directories, bad inputs
to the converters, the importer and streams. Each case says what happened in one line."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import torch

from data_prep import import_checkpoint
from data_prep import ntu_skeleton
from data_prep import regennet_h5
from regennet_jax import checkpoints
from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import streaming
from regennet_jax import train as train_lib
from tests import fake_files
from tests import torch_reference
from tests.helpers import ROOT, cli_overrides, last_json, run, tiny_config


def _damage(checkpoint_dir):
  for root, _, files in os.walk(checkpoint_dir / 'state'):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'\x00garbage')


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
  train_lib.train(tiny_config(), str(tmp_path), progress=False)  # checkpoints 3 and 6
  _damage(tmp_path / 'checkpoints' / '6')
  lines = []
  params, step = factory.load_sampling_params(tiny_config(), str(tmp_path), 8, warn=lines.append)
  assert step == 3 and len(lines) == 1
  assert 'checkpoints/6 cannot be restored' in lines[0] and 'Falling back' in lines[0]
  assert len(lines[0].splitlines()) == 1 and len(lines[0]) < 600
  # Training resumes from step 3 too, and runs on to the end.
  state, summary = train_lib.train(tiny_config(**{'train.num_steps': 7}),
                                   str(tmp_path),
                                   progress=False)
  assert summary['start_step'] == 3 and int(state.step) == 7
  # --mode=sample says so on one line and samples from the newest intact checkpoint.
  _damage(tmp_path / 'checkpoints' / '7')
  proc = run([f'--workdir={tmp_path}', '--mode=sample'] + cli_overrides())
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'checkpoints/7 cannot be restored' in proc.stdout and 'Falling back' in proc.stdout
  result = last_json(proc.stdout)
  assert result['checkpoint_step'] in (3, 6) and result['shape'] == [4, 12, 56, 6]


def test_a_failed_save_stops_training_with_the_step_and_the_reason(tmp_path, monkeypatch):
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == 6:
      raise OSError(28, 'No space left on device')
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  with pytest.raises(errors.RunError,
                     match=r'saving checkpoint 6 in .* failed \(OSError: '
                     r'.*No space left on device\); training stopped'):
    train_lib.train(tiny_config(), str(tmp_path), progress=False)
  assert checkpoints.newest_step(tmp_path) == 3


def test_an_unwritable_workdir_is_refused_before_any_work(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  proc = run([f'--workdir={blocker}/run'] + cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert f'{blocker}/run: cannot write there' in proc.stderr
  assert 'train:' not in proc.stderr  # no training started


def test_the_importer_never_writes_a_step_sampling_would_not_use(tmp_path):
  config = tiny_config(**{'model.num_layers': 1, 'model.latent_dim': 32, 'model.ff_size': 64})
  train_lib.train(config, str(tmp_path / 'run'), progress=False)  # steps 3 and 6
  torch.manual_seed(1)
  ref = torch_reference.CMDM(layers=1, d=32, ff=64).eval()
  path = tmp_path / 'model000000005.pt'
  torch.save(ref.state_dict(), path)
  with pytest.raises(errors.OutputExistsError,
                     match='already has checkpoint step 6, not older '
                     'than the imported step 5'):
    import_checkpoint.main([
        f'--checkpoint={path}', f'--workdir={tmp_path}/run', f'--config={ROOT}/configs/synthetic.py'
    ])
  assert checkpoints.newest_step(tmp_path / 'run') == 6
  # A tensor of the wrong shape is named.
  state = ref.state_dict()
  state['fuse_process.weight'] = torch.zeros(32, 63)
  torch.save(state, path)
  with pytest.raises(errors.DataError,
                     match=r"parameter \['frames'\]\['fuse'\]\['kernel'\] has "
                     r'shape \(63, 32\), the model built from the config expects \(64, 32\)'):
    import_checkpoint.main([
        f'--checkpoint={path}', f'--workdir={tmp_path}/new', f'--config={ROOT}/configs/synthetic.py'
    ])


def test_converters_refuse_what_would_be_silently_wrong(tmp_path):
  a, r = fake_files.synthetic_people(1, 0)
  pair = {'S001C001P001R001A001': np.concatenate([a, r], axis=-1)}
  fake_files.write_regennet_h5(tmp_path / 'xsub.h5', pair)
  with pytest.raises(errors.ConfigError, match="has no 'train'; give the test file with --test"):
    regennet_h5.main(['--dataset=ntu120', f'--train={tmp_path}/xsub.h5', f'--out={tmp_path}/o'])
  with pytest.raises(errors.ConfigError, match='one file cannot be both splits'):
    regennet_h5.main([
        '--dataset=ntu120', f'--train={tmp_path}/xsub.h5', f'--test={tmp_path}/xsub.h5',
        f'--out={tmp_path}/o'
    ])
  fake_files.write_regennet_h5(tmp_path / 'empty_train.h5', {})
  fake_files.write_regennet_h5(tmp_path / 'empty_test.h5', pair)
  with pytest.raises(errors.DataError, match='empty_train.h5: holds no sequences'):
    regennet_h5.main(
        ['--dataset=ntu120', f'--train={tmp_path}/empty_train.h5', f'--out={tmp_path}/o'])
  assert not (tmp_path / 'o').exists()


def test_broken_skeleton_files_are_named_and_skippable(tmp_path):
  sk = tmp_path / 'skeletons'
  sk.mkdir()
  # An empty folder: an error, and nothing left behind that would block the rerun.
  with pytest.raises(errors.DataError, match='no sequences were converted'):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  assert not (tmp_path / 'o').exists()
  (sk / 'S001C001P001R001A050.skeleton').write_bytes(bytes(range(256)) * 8)
  (sk / 'S001C001P001R002A050.skeleton').write_bytes(b'')
  with pytest.raises(errors.DataError, match='A050.skeleton: (not a text .skeleton file|empty)'):
    ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o'])
  a, r = fake_files.synthetic_people(0, 0, frames=30)
  bodies = [(str(i), np.arange(30), fake_files.kinect_joints(fake_files.world_positions(p)))
            for i, p in ((1, a), (2, r))]
  fake_files.write_ntu_skeleton(sk / 'S001C001P001R003A050.skeleton', bodies)
  summary = ntu_skeleton.main([f'--skeletons={sk}', f'--out={tmp_path}/o', '--skip_bad'])
  assert summary['splits'] == {'train': 1} and summary['skipped'] == 2
  skipped = (tmp_path / 'o' / 'skipped.txt').read_text()
  assert 'not a text .skeleton file (binary content)' in skipped and 'empty file' in skipped


def test_streams_refuse_inconsistent_settings_and_non_finite_frames():
  model = factory.make_model(tiny_config(**{'model.center': 'zero'}), 8, for_sampling=True)
  x = jnp.zeros((1, 4, 56, 6))
  params = model.init(jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), x)['params']
  schedule = factory.make_schedule(tiny_config(), 'ddim2')
  with pytest.raises(errors.ConfigError, match=r'label has shape \(3,\): one label per stream'):
    streaming.ReactionStream(model,
                             params,
                             schedule,
                             jax.random.PRNGKey(0),
                             batch_size=1,
                             max_frames=4,
                             label=np.zeros(3, np.int32))
  with pytest.raises(errors.ConfigError, match='max_frames >= 1'):
    streaming.ReactionStream(model, params, schedule, jax.random.PRNGKey(0), max_frames=-1)
  stream = streaming.ReactionStream(model, params, schedule, jax.random.PRNGKey(0), max_frames=4)
  frame = np.zeros((1, 56, 6), np.float32)
  frame[0, 3, 2] = np.nan
  with pytest.raises(errors.DataError,
                     match=r'actor frame 0 contains NaN or Inf \(streams \[0\]\)'):
    stream.push(frame)

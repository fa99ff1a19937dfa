"""run.py as a user runs it: a subprocess, flags on the command line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from regennet_jax import allocator
from regennet_jax import errors
from regennet_jax.data import sources
from regennet_jax.evaluation import monitor
from tests.helpers import ENV, ROOT, RUN, cli_overrides, tiny_config
from tests.helpers import last_json as _last_json
from tests.helpers import run as _run


def test_train_then_sample(tmp_path, smplx_npz):
  workdir = str(tmp_path / 'run')
  # With an EMA copy and a clipping state in the checkpoint: later modes need no training flags.
  trained = {'train.report': True, 'train.ema_decay': 0.9, 'train.grad_clip': 1.0}
  proc = _run([f'--workdir={workdir}'] + cli_overrides(**trained))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = _last_json(proc.stdout)
  assert result['steps'] == 6 and result['stopped_by'] is None
  # run.py re-executed itself with tcmalloc where one is installed (.ci/run installs it).
  assert ('tcmalloc' in result['malloc']) == (allocator.choose(ENV) is not None), result['malloc']
  for name in ('report.md', 'report.json', 'config.json', 'metrics.jsonl',
               'samples/test_reactions.npz'):
    assert os.path.exists(os.path.join(workdir, name)), name
  gifs = [f for f in os.listdir(os.path.join(workdir, 'samples')) if f.endswith('.gif')]
  assert len(gifs) == 1
  report = open(os.path.join(workdir, 'report.md')).read()
  assert gifs[0] in report and 'samples/contact_sheet.png' in report
  assert os.path.exists(os.path.join(workdir, 'samples', 'contact_sheet.png'))
  # The per-class interaction table: real vs generated for every class of the test windows.
  assert '| class | event | n | success real / gen |' in report
  per_class = json.load(open(os.path.join(workdir, 'report.json')))['per_class']
  data = np.load(os.path.join(workdir, 'samples', 'test_reactions.npz'))
  classes = {str(a) for a in data['action']}
  assert set(per_class) == classes | {'all'}
  for name in classes:
    assert set(per_class[name]) == {'real', 'generated'}
    assert per_class[name]['real']['count'] == sum(data['action'] == name)
    assert 0.0 <= per_class[name]['generated']['penetration_frequency'] <= 1.0
  # The saved reactions rescore to the report's table without the model (what
  # bench/interaction_table.py does with runs scored by older metrics), also from a file that
  # predates the saved lengths and class names, given the test split.
  npz = os.path.join(workdir, 'samples', 'test_reactions.npz')
  as_json = lambda table: json.loads(json.dumps(table))
  assert as_json(monitor.score_saved_reactions(tiny_config(), npz)) == per_class
  older = str(tmp_path / 'older.npz')
  np.savez(older, **{k: v for k, v in data.items() if k not in ('length', 'class_names')})
  with pytest.raises(errors.DataError, match='older file'):
    monitor.score_saved_reactions(tiny_config(), older)
  _, test_src, class_names = sources.load_splits(tiny_config().data)
  assert as_json(monitor.score_saved_reactions(tiny_config(), older, test_src,
                                               class_names)) == per_class

  data = np.load(os.path.join(workdir, 'samples', 'test_reactions.npz'))
  assert data['reactor'].shape == data['actor'].shape == data['real_reactor'].shape
  assert data['reactor'].shape[1:] == (12, 56, 6) and np.all(np.isfinite(data['reactor']))
  assert data['reactor_axis_angle'].shape[-2:] == (55, 3)
  assert len(data['action']) == len(data['reactor'])

  # bfloat16 matmuls, 12 reactions in passes of 2: the speed options work from the command line;
  # with an SMPL-X model file the renders show body meshes.
  proc = _run([
      f'--workdir={workdir}', '--mode=sample', '--config.sample.num_repetitions=3',
      '--config.sample.matmul_dtype=bfloat16', '--config.sample.chunk_size=2',
      f'--config.body.smplx_model_path={smplx_npz}'
  ] + cli_overrides())
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = _last_json(proc.stdout)
  assert result['checkpoint_step'] == 6 and result['shape'] == [4, 3, 12, 56, 6]
  assert result['matmul_dtype'] == 'bfloat16' and result['drawn_as'] == 'SMPL-X meshes'
  assert 'sampling: 100%' in proc.stderr  # a progress bar over the batches
  data = np.load(os.path.join(workdir, 'samples', 'test_reactions.npz'))
  assert data['reactor'].shape == (4, 3, 12, 56, 6)
  assert data['reactor_axis_angle'].shape == (4, 3, 12, 55, 3)
  assert not np.allclose(data['reactor'][:, 0], data['reactor'][:, 1])  # independent draws
  assert float(data['fps']) == 30
  # Files people use: one SMPL-X file per person and reaction, videos, a contact sheet per class.
  smplx_dir = os.path.join(workdir, 'samples', 'smplx')
  assert result['smplx_files'] == 4 * (1 + 3) == len(os.listdir(smplx_dir))
  amass = np.load(os.path.join(smplx_dir, sorted(os.listdir(smplx_dir))[0]))
  assert amass['poses'].shape == (12, 165) and float(amass['mocap_frame_rate']) == 30
  assert result['videos'] and all(os.path.getsize(v) > 1000 for v in result['videos'])
  classes = set(data['action'])
  assert {os.path.basename(p) for p in result['contact_sheets']
         } == {f'contact_sheet_{c}.png' for c in classes}

  proc = _run([
      f'--workdir={workdir}', '--mode=stream', '--config.stream.batch_size=2',
      '--config.stream.max_frames=20'
  ] + cli_overrides())
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = _last_json(proc.stdout)
  assert report['frames'] == 12 and report['latency']['frames'] == 12
  assert report['max_abs_difference_to_whole_sequence_sampler'] < 1e-4
  assert os.path.exists(os.path.join(workdir, 'stream_report.json'))
  # Sampling takes the trained model and diffusion settings, and names a contradicting override.
  proc = _run(
      [f'--workdir={workdir}', '--mode=sample', '--config.diffusion.noise_schedule=linear'] +
      cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert ("--config.diffusion.noise_schedule='linear' contradicts the run in "
          f"{workdir}, trained with diffusion.noise_schedule='cosine'") in proc.stderr
  # The checkpoint holds an EMA copy: the run's config says so, not the flags.
  proc = _run([f'--workdir={workdir}', '--mode=sample', '--config.train.ema_decay=0'] +
              cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert '--config.train.ema_decay=0' in proc.stderr and 'contradicts the run' in proc.stderr


def test_bad_input_gets_one_clear_line(tmp_path):
  proc = _run([f'--workdir={tmp_path}/a', '--config.model.arch=gru'] + cli_overrides())
  assert proc.returncode == 1
  assert "error: config.model.arch='gru': must be one of 'online', 'offline'." in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(tmp_path / 'a')  # checked before anything is written
  proc = _run([f'--workdir={tmp_path}/d', '--config.model.matmul_dtype=half'] + cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert "error: config.model.matmul_dtype='half': must be one of 'float32', 'bfloat16'." \
      in proc.stderr
  proc = _run([f'--workdir={tmp_path}/b', '--mode=sample'] + cli_overrides())
  assert proc.returncode == 1 and 'holds no checkpoint; train first' in proc.stderr
  proc = _run([
      f'--workdir={tmp_path}/c', '--config.data.name=chi3d_as',
      f'--config.data.path={tmp_path}/nowhere'
  ] + cli_overrides())
  assert proc.returncode == 1 and 'nowhere: not a dataset directory' in proc.stderr
  proc = _run([f'--workdir={tmp_path}/e', f'--config.body.smplx_model_path={tmp_path}/SMPLX.npz'] +
              cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'SMPLX.npz: SMPL-X model file not found' in proc.stderr


def test_ctrl_c_saves_and_the_next_run_resumes(tmp_path):
  # SIGTERM (preemption) takes the same path: test_multihost.py sends it to one host of two.
  sig = signal.SIGINT
  workdir = tmp_path / 'run'
  args = [f'--workdir={workdir}'] + cli_overrides(**{
      'train.num_steps': 100000,
      'train.checkpoint_every': 100000
  })
  proc = subprocess.Popen(RUN + args,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          text=True,
                          env=ENV,
                          cwd=ROOT)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 300
  while time.time() < deadline and (not metrics.exists() or
                                    len(metrics.read_text().splitlines()) < 3):
    time.sleep(0.5)
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-3000:]
  result = _last_json(out)
  assert result['stopped_by'] == sig.name
  saved = result['steps']
  assert saved >= 3
  assert os.listdir(workdir / 'checkpoints') == [str(saved)]
  proc = _run([f'--workdir={workdir}'] + cli_overrides(**{'train.num_steps': saved + 2}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Resumed from' in proc.stdout + proc.stderr
  assert _last_json(proc.stdout)['steps'] == saved + 2


def test_train_from_a_built_dataset_in_a_data_dir(tmp_path):
  env = dict(ENV, PYTHONPATH=ROOT)
  proc = subprocess.run([
      sys.executable, '-m', 'data_prep.build', '--dataset=synthetic', f'--data_dir={tmp_path}/tfds',
      '--train_size=16', '--test_size=8', '--min_frames=14', '--max_frames=20'
  ],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        env=env,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert _last_json(proc.stdout)['splits'] == {'train': 16, 'test': 8}
  # run.py reads it by name from the data dir (the tiny config asks for the same sizes), and does
  # not build it again.
  proc = _run([f'--workdir={tmp_path}/run', f'--config.data.dir={tmp_path}/tfds'] +
              cli_overrides(**{'train.num_steps': 2}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _last_json(proc.stdout)['steps'] == 2
  assert 'Downloading and preparing' not in proc.stdout + proc.stderr


def test_tensorboard_serves_the_training_curves(tmp_path):
  workdir = tmp_path / 'run'
  proc = _run([f'--workdir={workdir}'] + cli_overrides(**{'train.num_steps': 2}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  # train.report=False (the tiny runs' setting): checkpoints and curves, no report, no samples.
  assert 'report' not in _last_json(proc.stdout) and not os.path.exists(workdir / 'report.md')
  assert not os.path.exists(workdir / 'samples') and os.listdir(workdir / 'checkpoints') == ['2']
  import socket
  import urllib.request
  with socket.socket() as sock:
    sock.bind(('localhost', 0))
    port = sock.getsockname()[1]
  server = subprocess.Popen([
      sys.executable, '-m', 'tensorboard.main', f'--logdir={workdir}', f'--port={port}',
      '--host=localhost'
  ],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env=ENV)
  try:
    deadline, tags = time.time() + 90, None
    while time.time() < deadline and not tags:
      time.sleep(1)
      try:
        with urllib.request.urlopen(f'http://localhost:{port}/data/plugin/scalars/tags') as r:
          tags = json.loads(r.read())
      except OSError:
        continue
    assert tags, server.stderr.read1(3000) if server.poll() is not None else 'no answer'
    assert 'train/loss' in tags['tensorboard']
  finally:
    server.terminate()
    server.wait(timeout=30)

"""Several jax.distributed processes on localhost, as the hosts of a pod: training, sampling and
streaming over every host, preemption of one host (of a one-pass student distilled over both
hosts) and the resumed run, a host killed mid-save, data shards, and evaluation."""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from regennet_jax import errors
from regennet_jax.data import pipeline
from regennet_jax.evaluation import recognizer
from tests.helpers import ENV, ROOT, RUN, cli_overrides, last_json, run, tiny_config

pytestmark = pytest.mark.multihost


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start(workdir, args, processes=2):
  port = _free_port()
  return [
      subprocess.Popen(RUN + [
          f'--workdir={workdir}', f'--coordinator_address=localhost:{port}',
          f'--num_processes={processes}', f'--process_id={i}'
      ] + args,
                       stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE,
                       text=True,
                       env=ENV,
                       cwd=ROOT) for i in range(processes)
  ]


def _finish(procs, timeout=400):
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]
    outs.append((out, err))
  return outs


def _losses(workdir):
  return [json.loads(line)['loss'] for line in open(workdir / 'metrics.jsonl') if '"loss"' in line]


def _tiny(**overrides):
  return cli_overrides(**{'train.checkpoint_every': 2, 'model.dropout': 0.0, **overrides})


def test_two_hosts_train_and_sample_like_one(tmp_path):
  # Resuming on two hosts is the preemption test's (below). With noise correlated over frames: a
  # stream then also carries each step's last noise draw, split over the hosts like its caches.
  tiny = lambda **o: _tiny(**{'diffusion.noise_correlation': 0.5, **o})
  straight = tmp_path / 'straight'
  outs = _finish(_start(straight, tiny(**{'train.num_steps': 4})))
  assert last_json(outs[0][0])['steps'] == 4 and '"steps"' not in outs[1][0]  # process 0 reports
  assert sorted(os.listdir(straight / 'checkpoints')) == ['2', '4']
  assert [json.loads(line)['step'] for line in open(straight / 'metrics.jsonl')] == [1, 2, 3, 4]
  # Sampling over both hosts' devices gives what one process gives, and one process writes.
  sample = ['--mode=sample', '--config.sample.num_samples=6', '--config.sample.batch_size=2']
  _finish(_start(straight, tiny() + sample))
  two = np.load(straight / 'samples' / 'test_reactions.npz')['reactor']
  proc = run([f'--workdir={straight}'] + tiny() + sample)
  assert proc.returncode == 0, proc.stderr[-3000:]
  one = np.load(straight / 'samples' / 'test_reactions.npz')['reactor']
  assert two.shape == one.shape == (6, 12, 56, 6)
  np.testing.assert_allclose(two, one, atol=1e-4)
  # Three simultaneous streams over both hosts' devices (padded to four) stream what one process
  # streams, agree with the whole-sequence sampler, and one process writes the report.
  stream = ['--mode=stream', '--config.stream.batch_size=3', '--config.stream.max_frames=12']
  outs = _finish(_start(straight, tiny() + stream))
  report = last_json(outs[0][0])
  assert '"latency"' not in outs[1][0]
  assert report['processes'] == 2 and report['devices'] == 2 and report['streams'] == 3
  assert report['max_abs_difference_to_whole_sequence_sampler'] < 1e-4
  two = np.load(straight / 'samples' / 'stream_reactions.npz')['reactor']
  proc = run([f'--workdir={straight}'] + tiny() + stream)
  assert proc.returncode == 0, proc.stderr[-3000:]
  one = np.load(straight / 'samples' / 'stream_reactions.npz')['reactor']
  assert two.shape == one.shape == (3, 12, 56, 6)
  np.testing.assert_allclose(two, one, atol=1e-4)


def test_a_signal_to_one_host_stops_both_and_the_student_resumes_as_one_run(tmp_path):
  # SIGTERM is how a pod scheduler preempts; SIGINT takes the same path (test_run.py sends it to
  # one process). What trains is a one-pass student distilled from a teacher's chain over both
  # hosts: the most involved training step (a teacher chain inside) and a state that carries the
  # teacher beside the student. Plain training resumes on two hosts in the test below.
  teacher = tmp_path / 'teacher'
  proc = run([f'--workdir={teacher}'] + _tiny(**{'train.num_steps': 2}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  student = lambda **o: _tiny(**{'distill.teacher': teacher, **o})
  signal_to_send = signal.SIGTERM
  workdir = tmp_path / 'run'
  procs = _start(workdir, student(**{'train.num_steps': 100000, 'train.checkpoint_every': 100000}))
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 300
  while time.time() < deadline and (not metrics.exists() or
                                    len(metrics.read_text().splitlines()) < 3):
    time.sleep(0.5)
  procs[1].send_signal(signal_to_send)  # preempt the host that does not report
  started = time.time()
  outs = _finish(procs, timeout=120)
  assert time.time() - started < 60
  result = last_json(outs[0][0])
  assert result['stopped_by'] == signal_to_send.name and result['sampling'] == 'ddim trailing1'
  saved = result['steps']
  assert os.listdir(workdir / 'checkpoints') == [str(saved)]  # one checkpoint, written by both
  outs = _finish(_start(workdir, student(**{'train.num_steps': saved + 2})))
  assert 'Resumed from' in outs[0][0] + outs[0][1] and last_json(outs[0][0])['steps'] == saved + 2
  # The preempted and resumed run trains exactly as an uninterrupted one, step for step.
  straight = tmp_path / 'straight'
  _finish(_start(straight, student(**{'train.num_steps': saved + 2})))
  losses = _losses(workdir)
  assert len(losses) == saved + 2 and np.all(np.isfinite(losses))
  np.testing.assert_allclose(losses, _losses(straight), rtol=1e-5)


def test_a_host_killed_while_saving_leaves_the_last_complete_checkpoint(tmp_path):
  workdir = tmp_path / 'run'
  procs = _start(workdir, _tiny(**{'train.num_steps': 100000, 'train.checkpoint_every': 1}))
  checkpoints = workdir / 'checkpoints'
  deadline = time.time() + 300
  while time.time() < deadline and (not checkpoints.exists() or
                                    len([n for n in os.listdir(checkpoints) if n.isdigit()]) < 3):
    time.sleep(0.2)
  procs[1].kill()  # checkpoints are saved every step: this lands during a save
  time.sleep(1)
  procs[0].kill()  # the survivor cannot go on without its peer; the scheduler would restart both
  for p in procs:
    p.communicate(timeout=60)
  complete = sorted(int(n) for n in os.listdir(checkpoints) if n.isdigit())
  outs = _finish(_start(workdir, _tiny(**{'train.num_steps': complete[-1] + 1})))
  text = outs[0][0] + outs[0][1]
  assert 'Resumed from' in text
  resumed_from = int(text.split('Resumed from')[1].split('/checkpoints/')[1].split()[0])
  assert resumed_from in complete
  assert last_json(outs[0][0])['steps'] == complete[-1] + 1


def test_host_shards_are_disjoint_and_cover_the_split():
  source = [{
      'actor': np.zeros((3, 56, 3), np.float32),
      'reactor': np.zeros((3, 56, 3), np.float32),
      'label': i
  } for i in range(23)]
  seen = []
  for host in range(3):
    ds = pipeline.make_dataset(source,
                               1,
                               pipeline.Windowing(3),
                               seed=4,
                               repeat=False,
                               shard_index=host,
                               shard_count=3,
                               num_threads=1)
    seen.append([int(b['label'][0]) for b in ds])
  assert sorted(sum(seen, [])) == list(range(23))
  assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(seen) for b in seen[i + 1:])
  assert [len(s) for s in seen] == [8, 8, 7]


def test_recognizer_and_evaluation_modes_on_two_hosts_and_on_one(tmp_path):
  workdir = tmp_path / 'run'
  tiny = _tiny(
      **{
          'recognizer.width': 0.125,
          'recognizer.batch_size': 4,
          'recognizer.num_steps': 3,
          'eval.num_seeds': 2,
          'eval.num_samples': 6,
          'eval.batch_size': 2,
          'eval.kid_subsets': 2,
          'eval.diversity_pairs': 10,
          'eval.multimodality_pairs': 3,
          'train.num_steps': 2
      })
  proc = run([f'--workdir={workdir}', '--mode=eval'] + tiny)
  assert proc.returncode == 1 and 'holds no checkpoint' in proc.stderr
  assert run([f'--workdir={workdir}'] + tiny).returncode == 0
  proc = run([f'--workdir={workdir}', '--mode=eval'] + tiny)
  assert proc.returncode == 1 and 'no trained recognizer; run python run.py --mode=train_recognizer' \
      in proc.stderr
  proc = run([f'--workdir={workdir}', '--mode=train_recognizer'] + tiny)
  assert proc.returncode == 0, proc.stderr[-3000:]
  info = last_json(proc.stdout)
  assert 0.0 <= info['accuracy']['test'] <= 1.0 and info['width'] == 0.125
  _finish(_start(workdir, tiny + ['--mode=eval']))
  two = json.load(open(workdir / 'eval_report.json'))
  proc = run([f'--workdir={workdir}', '--mode=eval'] + tiny)
  assert proc.returncode == 0, proc.stderr[-3000:]
  one = json.load(open(workdir / 'eval_report.json'))
  # What one process reports (two hosts report the same, below).
  assert one['num_seeds'] == 2 and one['num_samples'] == {'train': 6, 'test': 6}
  for split in ('train', 'test'):
    for kind in ('real', 'generated'):
      r = one['results'][split][kind]
      assert r['fid']['n'] == 2 and np.isfinite(r['fid']['mean'])
      assert 0.0 <= r['accuracy']['mean'] <= 1.0 and r['diversity']['mean'] >= 0.0
  table = open(workdir / 'eval_report.md').read()
  assert table.count('| generated |') == 2 and 'FID' in table
  # Interaction metrics per class, over the evaluation seeds.
  assert 'Interactions, per class' in table
  hs = one['per_class']['handshake']
  assert hs['real']['event'] == 'hands_meet' and hs['generated']['success_rate']['n'] == 2
  for split in ('train', 'test'):
    for metric, value in one['results'][split]['generated'].items():
      np.testing.assert_allclose(two['results'][split]['generated'][metric]['mean'],
                                 value['mean'],
                                 rtol=1e-3,
                                 atol=1e-4,
                                 err_msg=metric)
  np.testing.assert_allclose(two['per_class']['handshake']['generated']['success_rate']['mean'],
                             one['per_class']['handshake']['generated']['success_rate']['mean'])
  # A recognizer trained for another window length is refused with a reason. (run.py refuses a
  # changed data.num_frames for this workdir before that: another run could point
  # eval.recognizer_dir here.)
  with pytest.raises(errors.RunError, match='recognizer was trained for 8 classes and 12 frames'):
    recognizer.load_recognizer(tiny_config(**{'data.num_frames': 10}), str(workdir), 8)

"""A 2-process jax.distributed run on localhost: trains, checkpoints, and resumes."""

import json
import os
import socket
import subprocess

from tests.helpers import ENV, RUN, last_json as _last_json
from tests.helpers import ROOT, cli_overrides


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _run_two_processes(workdir, steps):
  port = _free_port()
  procs = [
      subprocess.Popen(RUN + [
          f'--workdir={workdir}', f'--coordinator_address=localhost:{port}', '--num_processes=2',
          f'--process_id={i}'
      ] + cli_overrides(**{
          'train.num_steps': steps,
          'train.checkpoint_every': 2
      }),
                       stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE,
                       text=True,
                       env=ENV,
                       cwd=ROOT) for i in range(2)
  ]
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=400)
    assert p.returncode == 0, err[-3000:]
    outs.append((out, err))
  return outs


def test_two_process_training_checkpoints_and_resumes(tmp_path):
  workdir = tmp_path / 'run'
  outs = _run_two_processes(workdir, 4)
  result = _last_json(outs[0][0])  # only process 0 reports
  assert result['steps'] == 4
  assert '"steps"' not in outs[1][0]
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  rows = [json.loads(line) for line in open(workdir / 'metrics.jsonl')]
  assert [r['step'] for r in rows] == [1, 2, 3, 4]
  outs = _run_two_processes(workdir, 6)
  assert 'Resumed from' in outs[0][0] + outs[0][1]
  assert _last_json(outs[0][0])['steps'] == 6

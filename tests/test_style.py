"""The code is formatted as pyproject.toml configures (yapf, Google style)."""

import subprocess
import sys

from tests.helpers import ROOT

FORMATTED = ['regennet_jax', 'bench', 'tests', 'data_prep', 'configs', 'run.py']


def test_code_is_formatted():
  proc = subprocess.run([sys.executable, '-m', 'yapf', '--diff', '--recursive'] + FORMATTED,
                        capture_output=True,
                        text=True,
                        cwd=ROOT)
  assert proc.returncode == 0, ('run `python -m yapf -i -r ' + ' '.join(FORMATTED) +
                                '`; these files differ:\n' + proc.stdout[:3000] + proc.stderr)

"""End-to-end quality on the synthetic benchmark: train, train the evaluator, evaluate; then the
same without the interaction losses (the paper's Table 6 ablation).

  python bench/quality.py --steps=6000 --seeds=5 --out=runs/quality

Everything runs through run.py exactly as a user would; prints the two evaluations as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from common import ROOT, emit


def run(args):
  start = time.time()
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py')] + args, cwd=ROOT,
                        capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(proc.stderr[-3000:])
  out = proc.stdout
  return json.loads(out[out.rindex('\n{') + 1:] if '\n{' in out else out), time.time() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=6000)
  parser.add_argument('--recognizer_steps', type=int, default=300)
  parser.add_argument('--seeds', type=int, default=5)
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'quality'))
  args = parser.parse_args()
  common = [f'--config.train.num_steps={args.steps}', f'--config.eval.num_seeds={args.seeds}',
            f'--config.recognizer.num_steps={args.recognizer_steps}']
  variants = {'regennet': [], 'no_interaction_losses': ['--config.losses.orient=0',
                                                        '--config.losses.body=0',
                                                        '--config.losses.transl=0']}
  results, seconds = {}, {}
  recognizer_dir = os.path.join(args.out, 'regennet', 'recognizer')
  for name, extra in variants.items():
    workdir = os.path.join(args.out, name)
    _, seconds[f'{name}_train'] = run([f'--workdir={workdir}'] + common + extra)
    if name == 'regennet':
      _, seconds['recognizer_train'] = run([f'--workdir={workdir}', '--mode=train_recognizer']
                                           + common)
    report, seconds[f'{name}_eval'] = run([f'--workdir={workdir}', '--mode=eval',
                                           f'--config.eval.recognizer_dir={recognizer_dir}']
                                          + common + extra)
    results[name] = report['results']
  emit({'benchmark': 'quality', 'steps': args.steps, 'seeds': args.seeds, 'seconds': seconds,
        'results': results})


if __name__ == '__main__':
  main()

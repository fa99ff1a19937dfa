"""End-to-end quality on the synthetic benchmark, with error bars over training seeds.

For each variant and training seed: train through run.py exactly as a user would (scoring the test
reactions every --eval_every steps for the FID-against-time curve), then run the paper's
evaluation protocol (--mode=eval). One ST-GCN recognizer, trained once on real pairs, scores every
run. Prints JSON and writes <out>/quality.md (tables) and <out>/fid_vs_minutes.png.

  python bench/quality.py --steps=6000 --seeds=3                       # the recipe alone
  python bench/quality.py --steps=3000 --seeds=3 \\
      --variants=recipe,centred_no_interaction_losses,centred_paper_normalization,centred_offline
      # the ablation on the default (the variants without centred_ ablate the uncentred recipe)

Aggregates are the mean over training seeds with a 95% t-interval (n - 1 degrees of freedom);
each run's own value is the mean over its --eval_seeds evaluation seeds.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from common import ROOT, emit, interval

# The README's rows measured before the recipe centred its output on the data
# (configs/synthetic.py: model.center='data') keep reproducing with this flag.
UNCENTRED = ['--config.model.center=zero']
VARIANTS = {
    'recipe': [],  # configs/synthetic.py as it is
    'uncentred_recipe':
        UNCENTRED,
    # The paper's recipe (configs/recipes.py) on the same small model and data.
    'original_recipe': [f'--config={os.path.join(ROOT, "configs", "synthetic.py")}:original'],
    'no_interaction_losses': [
        '--config.losses.orient=0', '--config.losses.body=0', '--config.losses.transl=0'
    ],
    'paper_normalization': ['--config.losses.normalization=paper'],
    'code_normalization': ['--config.losses.normalization=code'],
    'offline': ['--config.model.arch=offline'],
    # The reactor's joint velocities as a loss term (losses.world_vel), against jitter.
    'world_velocity': ['--config.losses.world_vel=1'],
    'world_velocity_5': ['--config.losses.world_vel=5'],
    'world_velocity_10': ['--config.losses.world_vel=10'],
    # The learning rate decayed along a half cosine to train.final_lr_fraction by the last step.
    'cosine_decay': ['--config.train.lr_schedule=cosine'],
    # No sinusoidal frame-position encoding: the causal decoder tells frames apart by its mask.
    'no_position_encoding': ['--config.model.use_pos_emb=False'],
    # x0 mixed from x_t and the network's output by noise level (model.prediction), with the
    # synthetic reactors' spread per feature.
    'preconditioned': [
        '--config.model.prediction=preconditioned', '--config.model.sigma_data=0.07'
    ],
}
VARIANTS['preconditioned_world_velocity'] = (VARIANTS['preconditioned'] +
                                             VARIANTS['world_velocity'])
# The same with the diffusion noise correlated between consecutive frames (causal AR(1)).
for rho in ('0.9', '0.98'):
  VARIANTS[f'preconditioned_correlated_{rho}'] = (VARIANTS['preconditioned'] +
                                                  [f'--config.diffusion.noise_correlation={rho}'])
# The same about the training reactors' mean instead of zero (model.center='data').
VARIANTS['preconditioned_correlated_0.9_centred'] = (VARIANTS['preconditioned_correlated_0.9'] +
                                                     ['--config.model.center=data'])
VARIANTS['preconditioned_correlated_0.98_world_velocity_5'] = (
    VARIANTS['preconditioned_correlated_0.98'] + VARIANTS['world_velocity_5'])
VARIANTS['preconditioned_correlated_0.98_world_velocity_5_centred'] = (
    VARIANTS['preconditioned_correlated_0.98_world_velocity_5'] + ['--config.model.center=data'])
# The ablation and the shake remedies again on the centred default: the same flags without
# the uncentred override.
for name in ('no_interaction_losses', 'paper_normalization', 'offline', 'world_velocity_5',
             'no_position_encoding'):
  VARIANTS[f'centred_{name}'] = VARIANTS[name] + ['--config.model.center=data']
# Each diffusion step's loss weighted by min(SNR_t, gamma) (losses.min_snr_gamma).
for gamma in ('5', '20'):
  VARIANTS[f'centred_min_snr_{gamma}'] = [
      f'--config.losses.min_snr_gamma={gamma}', '--config.model.center=data'
  ]
# The label given to the denoiser (unguided): it then knows at frame 0 what the actor will do.
VARIANTS['centred_action'] = ['--config.model.cond_mode=action', '--config.model.center=data']
VARIANTS['centred_correlated_0.98'] = [
    '--config.diffusion.noise_correlation=0.98', '--config.model.center=data'
]
# Every other variant was measured on the uncentred recipe (the ablation rows included).
for name, flags in list(VARIANTS.items()):
  if name not in ('recipe', 'original_recipe') and not any(
      f.startswith('--config.model.center=') for f in flags):
    VARIANTS[name] = flags + UNCENTRED
METRICS = ('fid', 'accuracy', 'diversity', 'multimodality', 'precision', 'recall')


def run(args, log_path):
  start = time.time()
  with open(log_path, 'w') as log:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py')] + args,
                          cwd=ROOT,
                          stdout=subprocess.PIPE,
                          stderr=log,
                          text=True)
  if proc.returncode:
    raise SystemExit(f'run.py {" ".join(args)} failed; see {log_path}')
  out = proc.stdout
  return json.loads(out[out.rindex('\n{') + 1:] if '\n{' in out else out), time.time() - start


def curve(workdir):
  """[(training minutes, steps, FID, worst-class success ratio)] from metrics.jsonl eval rows."""
  points = []
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      row = json.loads(line)
      if 'eval/train_seconds' in row:
        points.append((row['eval/train_seconds'] / 60, row['step'], row.get('eval/fid'),
                       row.get('eval/success_ratio_min')))
  return points


def plot(curves, path):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
  for i, (variant, runs) in enumerate(curves.items()):
    for j, points in enumerate(runs):
      x = [p[0] for p in points if p[2] is not None]
      y = [p[2] for p in points if p[2] is not None]
      ax.plot(x, y, color=f'C{i}', alpha=0.8, label=variant if j == 0 else None)
  ax.set_yscale('log')
  ax.set_xlabel('training minutes (2-core CPU)')
  ax.set_ylabel('test FID (first-frame windows, one seed)')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def markdown(summary, real, args):
  lines = [
      f"Synthetic benchmark: {args.steps} training steps, {args.seeds} training seeds per "
      f"variant, {args.eval_seeds} evaluation seeds per run; mean ± 95% interval over "
      'training seeds.', ''
  ]
  for split in ('train', 'test'):
    lines += [
        f'**{split}-conditioned**', '',
        '| variant | minutes | ' + ' | '.join(METRICS) + ' | worst class success ratio |',
        '|---|---|' + '---|' * (len(METRICS) + 1)
    ]
    lines.append('| real (second draw) | | ' +
                 ' | '.join(f"{real[split][m]:.3f}" for m in METRICS) + ' | 1 |')
    for variant, s in summary.items():
      cells = [f"{s[split][m][0]:.3f} ± {s[split][m][1]:.3f}" for m in METRICS]
      ratio = s['success_ratio_min']
      lines.append(f"| {variant} | {s['train_minutes'][0]:.1f} | " + ' | '.join(cells) +
                   f" | {ratio[0]:.2f} ± {ratio[1]:.2f} |")
    lines.append('')
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--steps', type=int, default=6000)
  parser.add_argument('--seeds', type=int, default=3, help='training seeds per variant')
  parser.add_argument('--eval_seeds', type=int, default=5, help='evaluation seeds per run')
  parser.add_argument('--eval_every', type=int, default=500)
  parser.add_argument('--recognizer_steps', type=int, default=300)
  parser.add_argument('--variants', default='recipe')
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'quality'))
  parser.add_argument('--config_override',
                      action='append',
                      default=[],
                      help='extra --config.x=y flags for every run')
  args = parser.parse_args()
  variants = args.variants.split(',')
  unknown = set(variants) - set(VARIANTS)
  if unknown:
    raise SystemExit(f'unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}')
  os.makedirs(args.out, exist_ok=True)
  common = [
      f'--config.train.num_steps={args.steps}', f'--config.eval.num_seeds={args.eval_seeds}',
      f'--config.train.eval_every={args.eval_every}',
      f'--config.recognizer.num_steps={args.recognizer_steps}'
  ] + args.config_override
  seconds = {}
  recognizer_run = os.path.join(args.out, 'recognizer')
  if not os.path.exists(os.path.join(recognizer_run, 'recognizer', 'recognizer.json')):
    _, seconds['recognizer'] = run([f'--workdir={recognizer_run}', '--mode=train_recognizer'] +
                                   common, os.path.join(args.out, 'recognizer.log'))
  common.append(f'--config.eval.recognizer_dir={os.path.join(recognizer_run, "recognizer")}')

  reports, curves, ratios, minutes = {}, {}, {}, {}
  for variant in variants:
    for seed in range(args.seeds):
      workdir = os.path.join(args.out, variant, f'seed{seed}')
      # A config file (--config=...) must come before the --config.x overrides.
      config_file = [f for f in VARIANTS[variant] if f.startswith('--config=')]
      rest = [f for f in VARIANTS[variant] if not f.startswith('--config=')]
      flags = config_file + [f'--workdir={workdir}', f'--config.seed={seed}'] + common + rest
      os.makedirs(os.path.dirname(workdir), exist_ok=True)
      if not os.path.exists(os.path.join(workdir, 'report.json')):
        _, seconds[f'{variant}/seed{seed}/train'] = run(flags, workdir + '.train.log')
      if not os.path.exists(os.path.join(workdir, 'eval_report.json')):
        _, seconds[f'{variant}/seed{seed}/eval'] = run(flags + ['--mode=eval'],
                                                       workdir + '.eval.log')
      with open(os.path.join(workdir, 'eval_report.json')) as f:
        reports.setdefault(variant, []).append(json.load(f)['results'])
      points = curve(workdir)
      curves.setdefault(variant, []).append(points)
      ratios.setdefault(variant, []).append(points[-1][3] if points else float('nan'))
      minutes.setdefault(variant, []).append(points[-1][0] if points else float('nan'))

  summary = {}
  for variant, runs in reports.items():
    summary[variant] = {
        split: {
            m: interval([r[split]['generated'][m]['mean'] for r in runs]) for m in METRICS
        } for split in ('train', 'test')
    }
    summary[variant]['success_ratio_min'] = interval(ratios[variant])
    summary[variant]['train_minutes'] = interval(minutes[variant])
  first = next(iter(reports.values()))[0]
  real = {split: {m: first[split]['real'][m]['mean'] for m in METRICS} for split in ('train', 'test')}
  plot(curves, os.path.join(args.out, 'fid_vs_minutes.png'))
  with open(os.path.join(args.out, 'quality.md'), 'w') as f:
    f.write(markdown(summary, real, args))
  emit({
      'benchmark': 'quality',
      'steps': args.steps,
      'seeds': args.seeds,
      'eval_seeds': args.eval_seeds,
      'variants': variants,
      'summary': summary,
      'real': real,
      'curves': curves,
      'seconds': seconds,
      'table': os.path.join(args.out, 'quality.md'),
      'plot': os.path.join(args.out, 'fid_vs_minutes.png')
  })


if __name__ == '__main__':
  main()

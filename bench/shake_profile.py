"""When in a window the generated reactor shakes, from runs' saved test reactions (no model, no
sampling: each run's samples/test_reactions.npz, windows from each sequence's first frame).

  python bench/shake_profile.py --runs=runs/quality/recipe/seed0,runs/quality/recipe/seed1,...

The shake is the interaction metric's jitter: the pelvis velocity minus its 5-frame moving
average, as a speed (m/s), here kept per frame instead of averaged over the window. Prints JSON
per run: the mean over windows at each frame (the profile), the mean over the first and the
second half of the frames, and the part that is the same in every window (the residual averaged
over windows first: a pattern tied to the frame index, such as the position encoding's, rather
than to what each actor does); the real reactors' figures beside them.
"""

import argparse

from common import emit

import numpy as np

from regennet_jax import render
from regennet_jax.evaluation import interaction


def residuals(motion, fps):
  """[N, T, 56, 6] motions -> [N, T - W, 3] pelvis velocity minus its W-frame moving average
  (interaction.shake, W = interaction.JITTER_WINDOW)."""
  return np.stack(
      [interaction.shake(pelvis, fps) for pelvis in render.world_joints(motion)[:, :, 0]])


def profile(motion, fps):
  r = residuals(motion, fps)
  per_frame = np.linalg.norm(r, axis=-1).mean(0)
  half = len(per_frame) // 2
  return {
      'per_frame_m_s': [round(float(v), 4) for v in per_frame],
      'first_half_m_s': float(per_frame[:half].mean()),
      'second_half_m_s': float(per_frame[half:].mean()),
      'whole_m_s': float(per_frame.mean()),
      'same_in_every_window_m_s': float(np.linalg.norm(r.mean(0), axis=-1).mean())
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  args = parser.parse_args()
  result = {}
  for run in args.runs.split(','):
    data = np.load(f'{run}/samples/test_reactions.npz')
    generated = data['reactor'] if data['reactor'].ndim == 4 else data['reactor'][:, 0]
    fps = float(data['fps'])
    result[run] = {
        'windows': len(generated),
        'frames': generated.shape[1],
        'generated': profile(generated, fps),
        'real': profile(data['real_reactor'], fps)
    }
  emit({'runs': result})


if __name__ == '__main__':
  main()

"""The run's scalars: metrics.jsonl (one JSON record per logged step) and TensorBoard events.

Training records carry the loss terms, gradient norm, learning rate, speed and training time;
evaluation records (names 'eval/...') the quality monitor's numbers. On resume, records of steps
after the restored checkpoint (written before a hard kill, about to be redone) are dropped, so each
step appears once in either log.
"""

import json
import os


class MetricsLog:
  """Scalars to metrics.jsonl and TensorBoard (when enabled: the main process only)."""
  def __init__(self, workdir, enabled=True, resume_step=0):
    self.enabled = enabled
    self.tb = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self.tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=resume_step + 1)
      path = os.path.join(workdir, 'metrics.jsonl')
      drop_records_after(path, resume_step)
      self.file = open(path, 'a')

  def write(self, step, scalars):
    """Scalars named 'eval/...' go under that TensorBoard tag; the others under 'train/'."""
    if not self.enabled:
      return
    for k, v in scalars.items():
      self.tb.add_scalar(k if k.startswith('eval/') else f'train/{k}', v, step)
    self.file.write(json.dumps({'step': step, **scalars}) + '\n')
    self.file.flush()

  def close(self):
    if self.enabled:
      self.tb.close()
      self.file.close()


def read_records(path):
  """The records of a metrics.jsonl file (a line cut short by a kill is skipped)."""
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except ValueError:
          pass
  return records


def last_training_metrics(workdir):
  """The last training record of <workdir>/metrics.jsonl without its step ({} if none)."""
  rows = [r for r in read_records(os.path.join(workdir, 'metrics.jsonl')) if 'loss' in r]
  return {k: v for k, v in rows[-1].items() if k != 'step'} if rows else {}


def drop_records_after(path, step):
  """Rewrites the jsonl file at `path` without records whose 'step' is beyond `step`."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)['step'] <= step:
        kept.append(line if line.endswith('\n') else line + '\n')
    except (ValueError, KeyError, TypeError):
      pass  # a line cut short by the kill
  if len(kept) != len(lines):
    with open(path + '.tmp', 'w') as f:
      f.writelines(kept)
    os.replace(path + '.tmp', path)

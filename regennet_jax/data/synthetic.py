"""A procedural two-person interaction dataset that ships with the code (nothing to download).

Each sample is an actor and a reactor, both as SMPL-X axis-angle rotations of 55 joints plus a root
translation, at 30 fps. The actor performs one of the ACTIONS; the reactor responds *causally*: its
response starts a human-like 150-400 ms after the actor event it reacts to, and only actor motion up to
that moment shapes it. Timing, speed, amplitude, stance distance, position, facing and body size vary;
everything is deterministic from (seed, index).

Conventions (SMPL-X): y up, a person with zero global orientation faces +z, their left is +x, rest
pose is a T-pose. Translation is the pelvis position in metres.
"""

import numpy as np
from scipy.spatial.transform import Rotation

from regennet_jax.body import skeleton

FPS = 30
ACTIONS = (
    'handshake',           # actor offers a hand; reactor takes it and both shake
    'high_five',           # actor raises a palm; reactor slaps it
    'push',                # actor pushes; reactor is pushed back a step, leaning back
    'punch',               # actor punches; reactor dodges sideways
    'hug',                 # actor steps in with open arms; reactor opens arms and both embrace
    'wave',                # actor waves; reactor waves back
    'approach_retreat',    # actor walks towards the reactor; reactor backs away
    'pass_object',         # actor holds out an object; reactor reaches, takes it and pulls it in
)

# Joint indices used below.
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, SPINE3, NECK, HEAD = 0, 1, 2, 3, 4, 5, 6, 9, 12, 15
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 16, 17, 18, 19, 20, 21
_PELVIS_HEIGHT = -float(skeleton.builtin_rest_joints()[[10, 11], 1].min())


def smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


def pulse(t, start, rise, hold, fall):
  """0 -> 1 over [start, start+rise], stays 1 for `hold`, back to 0 over `fall` (seconds arrays)."""
  up = smoothstep((t - start) / rise)
  down = smoothstep((t - start - rise - hold) / fall)
  return up * (1 - down)


class _Person:
  """Accumulates per-joint Euler-angle offsets (radians, applied as x, then y, then z) and a path."""

  def __init__(self, frames, scale):
    self.frames = frames
    self.scale = scale
    self.angles = np.zeros((frames, 55, 3))
    self.offset = np.zeros((frames, 3))  # displacement in the person's own facing frame
    self.yaw = np.zeros(frames)

  def add(self, joint, x=0.0, y=0.0, z=0.0):
    self.angles[:, joint, 0] += x
    self.angles[:, joint, 1] += y
    self.angles[:, joint, 2] += z

  def to_motion(self, base_pos, base_yaw):
    """[T, 56, 3]: 55 axis-angle rotations + pelvis translation in world coordinates."""
    rot = Rotation.from_euler('xyz', self.angles.reshape(-1, 3)).as_rotvec().reshape(
        self.frames, 55, 3)
    yaw = base_yaw + self.yaw
    facing = Rotation.from_euler('y', yaw[:, None])
    root = facing * Rotation.from_rotvec(rot[:, PELVIS])
    rot[:, PELVIS] = root.as_rotvec()
    world_offset = Rotation.from_euler('y', [base_yaw]).apply(self.offset)
    trans = base_pos + world_offset + np.array([0.0, _PELVIS_HEIGHT * self.scale, 0.0])
    return np.concatenate([rot, trans[:, None]], axis=1).astype(np.float32)


def _idle(p, t, rng):
  """Relaxed standing: arms down, breathing sway, small independent drifts per joint."""
  p.add(L_SHOULDER, z=-1.25)
  p.add(R_SHOULDER, z=1.25)
  p.add(L_ELBOW, y=-0.15)
  p.add(R_ELBOW, y=0.15)
  phase = rng.uniform(0, 2 * np.pi)
  p.add(SPINE2, x=0.03 * np.sin(2 * np.pi * 0.25 * t + phase))
  p.add(PELVIS, y=0.05 * np.sin(2 * np.pi * 0.1 * t + phase))
  # Smooth random drift on every body joint so no two samples are identical.
  knots = rng.normal(0, 0.04, (4, 22, 3))
  drift = np.stack([np.interp(t, np.linspace(t[0], t[-1], 4), knots[:, j, k])
                    for j in range(22) for k in range(3)], axis=1).reshape(len(t), 22, 3)
  p.angles[:, :22] += drift
  # Hands and face are never perfectly still: a relaxed finger curl that drifts, plus small drift
  # about every axis of every joint. (Exactly constant joints -- or rot6d components that stay 0
  # under single-axis motion -- would leave zero-variance channels, which real captures never have
  # and which make feature-based metrics explode on the tiniest generated deviation.)
  t_knots = np.linspace(t[0], t[-1], 3)
  for joint in range(22, 55):
    curl = rng.uniform(0.05, 0.35) if joint >= 25 else rng.uniform(0.0, 0.08)
    # Right-hand fingers curl the other way round the z axis, as the hands are mirrored.
    sign = -1.0 if 40 <= joint < 55 else 1.0
    for axis in range(3):
      knots = rng.normal(0, 0.04, 3)
      if axis == (2 if joint >= 25 else 0):  # fingers curl about z, the jaw opens about x
        knots = knots + sign * curl
      p.angles[:, joint, axis] += np.interp(t, t_knots, knots)


def _reach(p, t, side, env, forward=1.4, up=0.0, bend=0.2):
  """Raise one arm (side 'left'/'right') forward (and up) by envelope `env`; forward/up in radians."""
  sign = 1.0 if side == 'left' else -1.0
  shoulder = L_SHOULDER if side == 'left' else R_SHOULDER
  elbow = L_ELBOW if side == 'left' else R_ELBOW
  # Undo the relaxed arm-down pose and swing the arm forward (about y) and up (about z).
  p.add(shoulder, z=sign * 1.25 * env, y=-sign * forward * env)
  p.add(shoulder, z=sign * up * env)
  p.add(elbow, y=-sign * (bend - 0.15) * env)


def _walk(p, t, start, duration, distance, backwards=False):
  """Walk `distance` metres along the facing direction (negative: backwards) with leg swing."""
  progress = smoothstep((t - start) / duration)
  p.offset[:, 2] += distance * progress
  moving = pulse(t, start, 0.15 * duration, 0.7 * duration, 0.15 * duration)
  steps = max(1.0, abs(distance) / (0.35 * p.scale))
  phase = 2 * np.pi * steps / 2 * progress
  swing = 0.45 * moving * np.sin(phase) * (-1 if backwards else 1)
  p.add(L_HIP, x=-swing)
  p.add(R_HIP, x=swing)
  p.add(L_KNEE, x=0.5 * moving * np.maximum(0, np.sin(phase)))
  p.add(R_KNEE, x=0.5 * moving * np.maximum(0, -np.sin(phase)))
  p.add(L_SHOULDER, y=0.2 * swing)
  p.add(R_SHOULDER, y=0.2 * swing)
  p.offset[:, 1] += 0.02 * moving * np.abs(np.sin(phase))


def _lean(p, env, forward=0.0, side=0.0):
  for joint in (SPINE1, SPINE2, SPINE3):
    p.add(joint, x=forward * env / 3, z=side * env / 3)


def generate_pair(action, rng, frames):
  """One interaction: (actor [T,56,3], reactor [T,56,3]) axis-angle + translation rows."""
  t = np.arange(frames) / FPS
  a = _Person(frames, rng.uniform(0.9, 1.1))
  r = _Person(frames, rng.uniform(0.9, 1.1))
  _idle(a, t, rng)
  _idle(r, t, rng)
  speed = rng.uniform(0.75, 1.3)
  start = rng.uniform(0.2, max(0.25, 0.5 * frames / FPS - 0.6))
  delay = rng.uniform(0.15, 0.4)  # reaction time: the reactor never moves before actor + delay
  react = start + delay
  dur = lambda s: s / speed
  distance = rng.uniform(0.8, 1.2) * (a.scale + r.scale) / 2
  name = ACTIONS[action]

  if name == 'handshake':
    env_a = pulse(t, start, dur(0.5), dur(1.0), dur(0.5))
    env_r = pulse(t, react + dur(0.1), dur(0.45), dur(0.9), dur(0.5))
    # forward > pi/2 angles the arm in towards the midline, where the two hands meet.
    _reach(a, t, 'right', env_a, forward=1.85, up=-0.5, bend=0.3)
    _reach(r, t, 'right', env_r, forward=1.85, up=-0.5, bend=0.3)
    shake = np.sin(2 * np.pi * 2.5 * speed * (t - start))
    both = np.minimum(env_a, env_r)
    a.add(R_ELBOW, y=0.25 * both * shake)
    r.add(R_ELBOW, y=0.25 * both * shake)
    distance *= 0.85
  elif name == 'high_five':
    env_a = pulse(t, start, dur(0.4), dur(0.3), dur(0.5))
    env_r = pulse(t, react, dur(0.35), dur(0.2), dur(0.5))
    _reach(a, t, 'right', env_a, forward=1.4, up=1.0, bend=0.4)
    _reach(r, t, 'left', env_r, forward=1.4, up=1.0, bend=0.4)
  elif name == 'push':
    env_a = pulse(t, start, dur(0.35), dur(0.25), dur(0.5))
    _reach(a, t, 'left', env_a, forward=1.4, bend=0.3)
    _reach(a, t, 'right', env_a, forward=1.4, bend=0.3)
    _lean(a, env_a, forward=0.25)
    contact = start + dur(0.3)
    shove = rng.uniform(0.3, 0.55)
    r.offset[:, 2] -= shove * smoothstep((t - contact - 0.05) / dur(0.5))
    _lean(r, pulse(t, contact + 0.05, dur(0.2), dur(0.2), dur(0.6)), forward=-0.35)
    _reach(r, t, 'left', pulse(t, contact + 0.1, 0.3, 0.2, 0.4), forward=0.6, up=0.6)
    _reach(r, t, 'right', pulse(t, contact + 0.1, 0.3, 0.2, 0.4), forward=0.6, up=0.6)
    distance *= 0.8
  elif name == 'punch':
    side = rng.choice([-1.0, 1.0])
    env_a = pulse(t, start, dur(0.18), dur(0.15), dur(0.35))
    guard = pulse(t, start - 0.3, 0.25, dur(0.9), 0.3)
    _reach(a, t, 'right', guard, forward=1.0, bend=1.8)
    a.add(R_ELBOW, y=1.6 * env_a)  # extend the flexed elbow: the strike
    a.add(R_SHOULDER, y=-0.3 * env_a)
    _lean(a, env_a, forward=0.2)
    env_r = pulse(t, react, dur(0.2), dur(0.3), dur(0.6))
    _lean(r, env_r, side=0.45 * side, forward=-0.1)
    r.offset[:, 0] += 0.25 * side * smoothstep((t - react) / dur(0.3))
  elif name == 'hug':
    approach = rng.uniform(0.25, 0.45)
    _walk(a, t, start, dur(0.8), approach)
    env_a = pulse(t, start + dur(0.3), dur(0.6), dur(1.0), dur(0.6))
    env_r = pulse(t, react + dur(0.3), dur(0.6), dur(0.9), dur(0.6))
    for p, env in ((a, env_a), (r, env_r)):
      _reach(p, t, 'left', env, forward=0.9, bend=1.2)
      _reach(p, t, 'right', env, forward=0.9, bend=1.2)
    r.offset[:, 2] += 0.1 * smoothstep((t - react - dur(0.5)) / dur(0.5))
    distance = distance * 0.7 + approach
  elif name == 'wave':
    env_a = pulse(t, start, dur(0.4), dur(1.0), dur(0.4))
    env_r = pulse(t, react + dur(0.2), dur(0.4), dur(0.8), dur(0.4))
    for p, env, side, s0 in ((a, env_a, 'right', start), (r, env_r, 'right', react)):
      _reach(p, t, side, env, forward=0.2, up=1.5, bend=1.2)
      p.add(R_ELBOW, x=0.45 * env * np.sin(2 * np.pi * 2.0 * speed * (t - s0)))
  elif name == 'approach_retreat':
    walk = rng.uniform(0.6, 1.0)
    _walk(a, t, start, dur(1.2), walk)
    _walk(r, t, react, dur(1.2), -walk * rng.uniform(0.8, 1.0), backwards=True)
    distance *= 1.6
  elif name == 'pass_object':
    env_a = pulse(t, start, dur(0.5), dur(0.8), dur(0.5))
    _reach(a, t, 'right', env_a, forward=1.8, up=-0.3, bend=0.5)
    env_r = pulse(t, react + dur(0.2), dur(0.5), dur(0.3), dur(0.6))
    _reach(r, t, 'right', env_r, forward=1.8, up=-0.3, bend=0.4)
    pull = smoothstep((t - react - dur(1.0)) / dur(0.4))
    r.add(R_ELBOW, y=0.9 * env_r * pull)
    _lean(r, env_r, forward=0.1)
  else:  # pragma: no cover - ACTIONS and this table are edited together
    raise ValueError(f'unknown action {name!r}')

  yaw = rng.uniform(-np.pi, np.pi)
  pos = np.array([rng.uniform(-1, 1), 0.0, rng.uniform(-1, 1)])
  facing = np.array([np.sin(yaw), 0.0, np.cos(yaw)])
  actor = a.to_motion(pos, yaw)
  reactor = r.to_motion(pos + distance * facing, yaw + np.pi)
  return actor, reactor


def generate_sample(seed, index, min_frames=70, max_frames=110):
  """Sample `index` of the dataset with `seed`: dict(actor, reactor [T,56,3], label, name)."""
  rng = np.random.default_rng([seed, index])
  label = index % len(ACTIONS)
  frames = int(rng.integers(min_frames, max_frames + 1))
  actor, reactor = generate_pair(label, rng, frames)
  return {'actor': actor, 'reactor': reactor, 'label': label,
          'name': f'synthetic_{seed}_{index:06d}_{ACTIONS[label]}'}


def generate_split(seed, count, **kwargs):
  return [generate_sample(seed, i, **kwargs) for i in range(count)]

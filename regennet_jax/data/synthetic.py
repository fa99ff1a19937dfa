"""A procedural two-person interaction dataset that ships with the code (nothing to download).

Each sample is an actor and a reactor, both as SMPL-X axis-angle rotations of 55 joints plus a root
translation, at 30 fps. The actor performs one of the ACTIONS; the reactor responds *causally*: its
response starts a human-like 150-400 ms after the actor's movement, and is shaped only by what the
actor has done up to then. Timing, speed, stance distance, target heights, position and facing vary;
everything is deterministic from (seed, index).

Interactions are physically consistent: arms are posed by two-bone inverse kinematics towards world
targets, so the hands that should meet do meet (a handshake's palms, a high five, an object handed
over), a hug's hands end on the partner's back, a push's hands land on the chest before the reactor
is pushed back, and a punch flies at where the head was before it dodged. Both people use the
built-in skeleton (`skeleton.builtin_rest_joints()`), the one training and rendering use, so the
contacts are exact in every downstream view.

Conventions (SMPL-X): y up, a person with zero global orientation faces +z, their left is +x, rest
pose is a T-pose. Translation is the pelvis position in metres.
"""

import numpy as np
from scipy.spatial.transform import Rotation

from regennet_jax.body import kinematics
from regennet_jax.body import skeleton

FPS = 30
ACTIONS = (
    'handshake',  # actor offers a hand; reactor takes it and both shake
    'high_five',  # actor raises a palm; reactor slaps it
    'push',  # actor pushes the chest; reactor is pushed back, leans back, guards
    'punch',  # actor punches at the head with one fist; reactor dodges away from that fist
    'hug',  # actor steps in with open arms; reactor wraps its arms around the actor
    'wave',  # actor waves; reactor waves back
    'approach_retreat',  # actor walks towards the reactor; reactor backs away
    'pass_object',  # actor holds out an object; reactor reaches, takes it and pulls it in
)

# Joint indices used below.
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, SPINE3, NECK, HEAD = 0, 1, 2, 3, 4, 5, 6, 9, 12, 15
L_COLLAR, R_COLLAR = 13, 14
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 16, 17, 18, 19, 20, 21
L_PALM, R_PALM = 28, 43  # first knuckle of the middle finger: the centre of the hand
_ARM = {
    'left': (L_COLLAR, L_SHOULDER, L_ELBOW, L_WRIST, 1.0),
    'right': (R_COLLAR, R_SHOULDER, R_ELBOW, R_WRIST, -1.0)
}
REST = skeleton.builtin_rest_joints()
_PELVIS_HEIGHT = -float(REST[[10, 11], 1].min())
_UP = np.array([0.0, 1.0, 0.0])


def smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


def pulse(t, start, rise, hold, fall):
  """0 -> 1 over [start, start+rise], stays 1 for `hold`, back to 0 over `fall` (seconds arrays)."""
  up = smoothstep((t - start) / rise)
  down = smoothstep((t - start - rise - hold) / fall)
  return up * (1 - down)


def _yaw_vectors(yaw):
  """(forward, left) horizontal unit vectors of a person facing `yaw` (radians about +y)."""
  yaw = np.asarray(yaw, np.float64)
  forward = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], axis=-1)
  left = np.stack([np.cos(yaw), np.zeros_like(yaw), -np.sin(yaw)], axis=-1)
  return forward, left


class _Person:
  """Procedural layer: per-joint Euler-angle offsets (radians, extrinsic x, y, z) and a path."""
  def __init__(self, frames):
    self.frames = frames
    self.angles = np.zeros((frames, 55, 3))
    self.offset = np.zeros((frames, 3))  # displacement in the person's own facing frame

  def add(self, joint, x=0.0, y=0.0, z=0.0):
    self.angles[:, joint, 0] += x
    self.angles[:, joint, 1] += y
    self.angles[:, joint, 2] += z


def _euler_xyz_to_matrix(angles):
  """[..., 3] extrinsic x-then-y-then-z angles -> [..., 3, 3] = Rz Ry Rx (scipy's 'xyz', faster)."""
  cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
  sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
  rows = [
      cy * cz, sx * sy * cz - cx * sz, cx * sy * cz + sx * sz, cy * sz, sx * sy * sz + cx * cz,
      cx * sy * sz - sx * cz, -sy, sx * cy, cx * cy
  ]
  return np.stack(rows, axis=-1).reshape(angles.shape[:-1] + (3, 3))


def _min_rotation(a, b):
  """[T, 3, 3] rotations taking directions a [T, 3] onto b [T, 3] about their common normal."""
  a = a / np.linalg.norm(a, axis=-1, keepdims=True)
  b = b / np.linalg.norm(b, axis=-1, keepdims=True)
  axis = np.cross(a, b)
  sin = np.linalg.norm(axis, axis=-1, keepdims=True)
  angle = np.arctan2(sin, np.sum(a * b, axis=-1, keepdims=True))
  rotvec = np.where(sin > 1e-9, axis / np.maximum(sin, 1e-12) * angle, 0.0)
  return Rotation.from_rotvec(rotvec).as_matrix()


def _blend(r0, r1, weight):
  """Per-frame slerp between rotation matrices r0 and r1 [T, 3, 3] by weight [T] in [0, 1]."""
  rel = Rotation.from_matrix(np.swapaxes(r0, -1, -2) @ r1).as_rotvec()
  return r0 @ Rotation.from_rotvec(rel * weight[:, None]).as_matrix()


class _Body:
  """A person placed in the world: local joint rotations [T, 55, 3, 3] (the root's includes the
  facing) and the pelvis translation [T, 3]; arms can be posed towards world targets."""
  def __init__(self, person, position, yaw):
    self.forward, self.left = _yaw_vectors(yaw)
    self.local = _euler_xyz_to_matrix(person.angles)
    self.local[:, PELVIS] = Rotation.from_euler('y', yaw).as_matrix() @ self.local[:, PELVIS]
    world_offset = Rotation.from_euler('y', yaw).apply(person.offset)
    self.translation = position + world_offset + _PELVIS_HEIGHT * _UP
    self._cache = None

  def pose(self):
    """(global rotations [T, 55, 3, 3], world joints [T, 55, 3])."""
    if self._cache is None:
      global_rot, joints = kinematics.forward_kinematics(self.local, REST)
      self._cache = global_rot, joints - joints[:, :1] + self.translation[:, None]
    return self._cache

  def joint(self, index):
    return self.pose()[1][:, index]

  def reach(self, side, target, weight, pole):
    """Poses one arm so the wrist is at `target` [T, 3] where weight [T] is 1 (two-bone IK, the
    elbow bending towards `pole` [T, 3] or [3]), blending from the current arm by `weight`."""
    collar, shoulder, elbow, wrist, _ = _ARM[side]
    global_rot, joints = self.pose()
    upper = np.linalg.norm(REST[elbow] - REST[shoulder])
    lower = np.linalg.norm(REST[wrist] - REST[elbow])
    start = joints[:, shoulder]
    to_target = target - start
    dist = np.linalg.norm(to_target, axis=-1, keepdims=True)
    n = to_target / np.maximum(dist, 1e-9)
    dist = np.clip(dist, abs(upper - lower) + 1e-3, 0.999 * (upper + lower))
    along = (upper**2 - lower**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(upper**2 - along**2, 0.0))
    pole = np.broadcast_to(pole, n.shape)
    m = pole - np.sum(pole * n, axis=-1, keepdims=True) * n
    m = m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-9)
    elbow_pos = start + along * n + height * m
    wrist_pos = start + dist * n
    # Global rotations that point the bones there, turning the current ones as little as possible.
    g_shoulder = _min_rotation(global_rot[:, shoulder] @ (REST[elbow] - REST[shoulder]),
                               elbow_pos - start) @ global_rot[:, shoulder]
    g_elbow = g_shoulder @ self.local[:, elbow]
    g_elbow = _min_rotation(g_elbow @ (REST[wrist] - REST[elbow]), wrist_pos - elbow_pos) @ g_elbow
    local_shoulder = np.swapaxes(global_rot[:, collar], -1, -2) @ g_shoulder
    local_elbow = np.swapaxes(g_shoulder, -1, -2) @ g_elbow
    self.local[:, shoulder] = _blend(self.local[:, shoulder], local_shoulder, weight)
    self.local[:, elbow] = _blend(self.local[:, elbow], local_elbow, weight)
    self._cache = None

  def arm_pole(self, side, out=0.5, down=1.0, back=0.3):
    """Where that elbow points: outwards, down and back in the person's own frame."""
    sign = _ARM[side][4]
    return sign * out * self.left - down * _UP - back * self.forward

  def motion(self):
    """[T, 56, 3]: 55 axis-angle rotations + pelvis translation in world coordinates."""
    rotvec = Rotation.from_matrix(self.local.reshape(-1, 3, 3)).as_rotvec()
    rotvec = rotvec.reshape(self.local.shape[0], 55, 3)
    return np.concatenate([rotvec, self.translation[:, None]], axis=1).astype(np.float32)


def _interpolation_weights(t, count):
  """[T, count]: piecewise-linear weights of `count` knots spread evenly over the times t."""
  knot_times = np.linspace(t[0], t[-1], count)
  return np.stack([np.interp(t, knot_times, row) for row in np.eye(count)], axis=1)


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
  knots = rng.normal(0, 0.04, (4, 22 * 3))
  p.angles[:, :22] += (_interpolation_weights(t, 4) @ knots).reshape(-1, 22, 3)
  # Hands and face are never perfectly still: a relaxed finger curl that drifts, plus small drift
  # about every axis of every joint. (Exactly constant joints -- or rot6d components that stay 0
  # under single-axis motion -- would leave zero-variance channels, which real captures never have
  # and which make feature-based metrics explode on the tiniest generated deviation.)
  joints = np.arange(22, 55)
  fingers = joints >= 25
  curl = np.where(fingers, rng.uniform(0.05, 0.35, 33), rng.uniform(0.0, 0.08, 33))
  # Right-hand fingers curl the other way round the z axis, as the hands are mirrored.
  curl = curl * np.where(joints >= 40, -1.0, 1.0)
  knots = rng.normal(0, 0.04, (3, 33, 3))
  knots[:, fingers, 2] += curl[fingers]  # fingers curl about z
  knots[:, ~fingers, 0] += curl[~fingers]  # the jaw opens (and the eyes turn) about x
  p.angles[:, 22:] += (_interpolation_weights(t, 3) @ knots.reshape(3, -1)).reshape(-1, 33, 3)


def _walk(p, t, start, duration, distance, backwards=False):
  """Walk `distance` metres along the facing direction (negative: backwards) with leg swing."""
  progress = smoothstep((t - start) / duration)
  p.offset[:, 2] += distance * progress
  moving = pulse(t, start, 0.15 * duration, 0.7 * duration, 0.15 * duration)
  steps = max(1.0, abs(distance) / 0.35)
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
  a, r = _Person(frames), _Person(frames)
  _idle(a, t, rng)
  _idle(r, t, rng)
  speed = rng.uniform(0.85, 1.25)
  start = rng.uniform(0.1, 0.4)
  delay = rng.uniform(0.15, 0.4)  # reaction time: the reactor never moves before actor + delay
  react = start + delay
  dur = lambda s: s / speed
  yaw = rng.uniform(-np.pi, np.pi)
  position = np.array([rng.uniform(-1, 1), 0.0, rng.uniform(-1, 1)])
  forward, left = _yaw_vectors(yaw)
  name = ACTIONS[action]

  def place(distance, lateral=0.0):
    """The two bodies, the reactor `distance` m in front of the actor, facing it."""
    actor = _Body(a, position, yaw)
    reactor = _Body(r, position + distance * forward + lateral * left, yaw + np.pi)
    return actor, reactor

  if name == 'handshake':
    env_a = pulse(t, start, dur(0.5), dur(1.1), dur(0.5))
    env_r = pulse(t, react, dur(0.5), dur(0.9), dur(0.5))
    _lean(a, env_a, forward=0.12)
    _lean(r, env_r, forward=0.12)
    distance = rng.uniform(0.75, 0.9)
    actor, reactor = place(distance)
    meet = (position + (distance / 2 - 0.05) * forward - rng.uniform(0.0, 0.08) * left +
            (_PELVIS_HEIGHT + rng.uniform(0.1, 0.2)) * _UP)
    shake = 0.04 * np.sin(2 * np.pi * 2.5 * speed * (t - react)) * np.minimum(env_a, env_r)
    actor.reach('right', meet + shake[:, None] * _UP, env_a, actor.arm_pole('right'))
    reactor.reach('right', actor.joint(R_PALM), env_r, reactor.arm_pole('right'))
  elif name == 'high_five':
    env_a = pulse(t, start, dur(0.4), dur(0.45) + delay, dur(0.5))
    env_r = pulse(t, react, dur(0.4), dur(0.15), dur(0.5))
    distance = rng.uniform(0.75, 0.95)
    actor, reactor = place(distance)
    top = (position + (distance / 2 - 0.05) * forward - rng.uniform(0.1, 0.2) * left +
           (_PELVIS_HEIGHT + 0.45 + rng.uniform(0.15, 0.3)) * _UP)
    actor.reach('right', np.broadcast_to(top, (frames, 3)), env_a, actor.arm_pole('right'))
    reactor.reach('left', actor.joint(R_PALM), env_r, reactor.arm_pole('left'))
  elif name == 'push':
    env_a = pulse(t, start, dur(0.3), dur(0.35), dur(0.5))
    _lean(a, env_a, forward=0.25)
    contact = start + dur(0.3)
    # Pushed back from the moment of contact (mechanics, not a decision), stepping backwards ...
    _walk(r, t, contact, dur(0.6), -rng.uniform(0.3, 0.55), backwards=True)
    # ... then, after a reaction time, it leans back and raises its hands.
    guard = pulse(t, contact + delay / 2, dur(0.25), dur(0.3), dur(0.5))
    _lean(r, guard, forward=-0.3)
    actor, reactor = place(rng.uniform(0.5, 0.62))
    chest = reactor.joint(SPINE3) + 0.1 * reactor.forward
    for side, sign in (('left', 1.0), ('right', -1.0)):
      actor.reach(side, chest - sign * 0.13 * reactor.left, env_a, actor.arm_pole(side))
      own = reactor.joint(SPINE3) + 0.3 * reactor.forward + sign * 0.15 * reactor.left + 0.1 * _UP
      reactor.reach(side, own, guard, reactor.arm_pole(side))
  elif name == 'punch':
    fist = str(rng.choice(['right', 'left']))
    # The reactor slips to the side away from the fist it sees coming: the actor's right fist
    # comes at the reactor's left, so it steps to its right (-x in its own frame), and vice versa.
    side = -1.0 if fist == 'right' else 1.0
    guard = pulse(t, start - 0.3, 0.25, dur(0.9), 0.3)
    strike = pulse(t, start, dur(0.15), dur(0.15), dur(0.35))
    _lean(a, strike, forward=0.2)
    env_r = pulse(t, react, dur(0.2), dur(0.3), dur(0.6))
    # Lean and step the same way (a positive roll about z tips the head towards -x).
    _lean(r, env_r, side=-0.45 * side, forward=-0.1)
    r.offset[:, 0] += 0.25 * side * smoothstep((t - react) / dur(0.3))
    actor, reactor = place(rng.uniform(0.55, 0.68))
    launch = min(int(start * FPS), frames - 1)
    head = reactor.joint(HEAD)[launch]  # the fist flies at where the head was at launch
    fists = actor.joint(SPINE3) + 0.25 * actor.forward + 0.12 * _UP
    sign = -1.0 if fist == 'right' else 1.0  # where that fist's guard is, along actor.left
    guard_at = fists + sign * 0.12 * actor.left
    actor.reach(fist, guard_at + strike[:, None] * (head - guard_at), guard, actor.arm_pole(fist))
    other = 'left' if fist == 'right' else 'right'
    actor.reach(other, fists - sign * 0.12 * actor.left, guard, actor.arm_pole(other))
  elif name == 'hug':
    approach = rng.uniform(0.4, 0.6)
    _walk(a, t, start, dur(0.8), approach)
    env_a = pulse(t, start + dur(0.3), dur(0.6), dur(1.0), dur(0.6))
    env_r = pulse(t, react + dur(0.3), dur(0.6), dur(0.9), dur(0.6))
    r.offset[:, 2] += 0.05 * smoothstep((t - react - dur(0.3)) / dur(0.5))
    actor, reactor = place(approach + rng.uniform(0.3, 0.36))
    for side, sign in (('left', 1.0), ('right', -1.0)):
      # Each hand ends on the partner's back, on its own side.
      back = reactor.joint(SPINE3) - 0.12 * reactor.forward + sign * 0.1 * actor.left
      actor.reach(side, back, env_a, actor.arm_pole(side, out=1.0, down=0.3, back=0.0))
    for side, sign in (('left', 1.0), ('right', -1.0)):
      back = actor.joint(SPINE3) - 0.12 * actor.forward + sign * 0.1 * reactor.left
      reactor.reach(side, back, env_r, reactor.arm_pole(side, out=1.0, down=0.3, back=0.0))
  elif name == 'wave':
    env_a = pulse(t, start, dur(0.4), dur(1.0), dur(0.4))
    env_r = pulse(t, react + dur(0.1), dur(0.4), dur(0.8), dur(0.4))
    actor, reactor = place(rng.uniform(1.2, 1.8))
    height = rng.uniform(0.25, 0.35)
    for body, env, t0 in ((actor, env_a, start), (reactor, env_r, react)):
      sway = 0.12 * np.sin(2 * np.pi * 2.0 * speed * (t - t0))
      hand = (body.joint(R_SHOULDER) + height * _UP + 0.1 * body.forward -
              (0.2 + sway)[:, None] * body.left)
      body.reach('right', hand, env, body.arm_pole('right', out=1.0, down=0.5, back=0.0))
  elif name == 'approach_retreat':
    walk = rng.uniform(0.6, 1.0)
    _walk(a, t, start, dur(1.2), walk)
    _walk(r, t, react, dur(1.2), -walk * rng.uniform(0.8, 1.0), backwards=True)
    actor, reactor = place(rng.uniform(1.3, 1.7))
  elif name == 'pass_object':
    grab = react + dur(0.5) + dur(0.3)  # the reactor's hand arrives, then closes on the object
    env_a = pulse(t, start, dur(0.5), max(grab - start - dur(0.5), 0.0), dur(0.5))
    env_r = pulse(t, react, dur(0.5), dur(0.3) + dur(0.5), dur(0.5))
    _lean(r, env_r, forward=0.1)
    distance = rng.uniform(0.85, 1.0)
    actor, reactor = place(distance)
    held = (position + (distance / 2 - 0.05) * forward - rng.uniform(0.0, 0.12) * left +
            (_PELVIS_HEIGHT + rng.uniform(0.05, 0.2)) * _UP)
    actor.reach('right', np.broadcast_to(held, (frames, 3)), env_a, actor.arm_pole('right'))
    pull = smoothstep((t - grab) / dur(0.4))[:, None]
    own = reactor.joint(SPINE3) + 0.3 * reactor.forward - 0.1 * _UP
    reactor.reach('right', (1 - pull) * actor.joint(R_PALM) + pull * own, env_r,
                  reactor.arm_pole('right'))
  else:  # pragma: no cover - ACTIONS and this table are edited together
    raise ValueError(f'unknown action {name!r}')
  return actor.motion(), reactor.motion()


def generate_sample(seed, index, min_frames=70, max_frames=110):
  """Sample `index` of the dataset with `seed`: dict(actor, reactor [T,56,3], label, name)."""
  rng = np.random.default_rng([seed, index])
  label = index % len(ACTIONS)
  frames = int(rng.integers(min_frames, max_frames + 1))
  actor, reactor = generate_pair(label, rng, frames)
  return {
      'actor': actor,
      'reactor': reactor,
      'label': label,
      'name': f'synthetic_{seed}_{index:06d}_{ACTIONS[label]}'
  }


def split_seed(seed, split):
  """The seed of a split's sequences: test sequences are new performances (another seed stream),
  not copies of training ones."""
  return seed if split == 'train' else seed + 1_000_003


def generate_split(seed, count, **kwargs):
  return [generate_sample(seed, i, **kwargs) for i in range(count)]

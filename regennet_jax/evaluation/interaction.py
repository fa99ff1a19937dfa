"""Interaction metrics that need no learned evaluator.

For each sequence: did the physical event of its class happen (hands meet, arms close around the
other body, the pushed body moves back, the punched body leaves the fist's path, the wave is
answered, the approached body backs away), how long after the actor started moving did the reactor
start (the reaction latency: > 0 for a causal reaction), do the two bodies pass through each other
(penetration frequency, depth and volume, as ARFlow reports), do the reactor's feet slide while
planted (foot skating) and does its body shake (jitter). The same functions score real and
generated reactors of the same actors, so real pairs give the reference values.

Inputs are world joints [T, 55, 3] (SMPL-X order, y up, metres; `render.world_joints` of a motion)
of one actor and one reactor, over the valid frames of a window. Every threshold is a named
physical constant below.
"""

import numpy as np

from regennet_jax.body import skeleton

HAND_POINTS = (20, 21, 28, 43)  # left/right wrist, left/right palm centre (middle-finger knuckle)
CONTACT_DISTANCE_M = 0.10  # hand points closer than this touch
ONSET_DISPLACEMENT_M = 0.15  # a person starts moving when a body joint has moved this far
EMBRACE_BAND_M = (0.35, 0.45, 0.25)  # |lateral|, below, above the partner's upper spine
PUSHED_BACK_M = 0.20  # the reactor's pelvis moves this far back (see event: from when)
RETREAT_M = 0.30
DODGE_M = 0.15  # the reactor's head leaves its starting line this far sideways
WAVE_MIN_SECONDS = 0.25  # a hand held above the head this long answers a wave
FLOOR_CONTACT_M = 0.05  # a foot this close to the person's lowest foot height is planted
FOOT_SKATE_SPEED = 0.5  # m/s of horizontal sliding while planted (2.5 cm at 20 fps)
JITTER_WINDOW = 5  # frames of the moving average whose residual counts as jitter
PENETRATION_TOLERANCE_M = 0.01  # overlaps shallower than this are not counted as penetration

BODY_JOINTS = tuple(range(22))
FOOT_JOINTS = skeleton.FOOT_JOINTS
_L_HIP, _R_HIP, _PELVIS, _SPINE3, _HEAD = 1, 2, 0, 9, 15
_UP = np.array([0.0, 1.0, 0.0])

# The physical event each class is about, by class name (lower case). The synthetic classes, and
# the classes of the real datasets whose event is one of these.
EVENT_OF_CLASS = {
    'handshake': 'hands_meet',
    'high_five': 'hands_meet',
    'pass_object': 'hands_meet',
    'hug': 'embrace',
    'push': 'pushed_back',
    'punch': 'dodge',
    'wave': 'wave_back',
    'approach_retreat': 'retreat',
    # NTU RGB+D 120 and CHI3D
    'handshaking': 'hands_meet',
    'high-five': 'hands_meet',
    'holdinghands': 'hands_meet',
    'giving something to other person': 'hands_meet',
    'exchange things with other person': 'hands_meet',
    'hugging other person': 'embrace',
    'pushing other person': 'pushed_back',
}
EVENTS = ('hands_meet', 'embrace', 'pushed_back', 'dodge', 'wave_back', 'retreat')

# ----------------------------------------------------------------------------- events


def hand_distance(actor, reactor):
  """[T]: the smallest distance between a hand point of each person."""
  a = actor[:, list(HAND_POINTS)]
  r = reactor[:, list(HAND_POINTS)]
  return np.linalg.norm(a[:, :, None] - r[:, None], axis=-1).min(axis=(1, 2))


def hands_meet(actor, reactor):
  """[T] bool: some hand of the reactor touches some hand of the actor."""
  return hand_distance(actor, reactor) < CONTACT_DISTANCE_M


def _body_frame(joints):
  """Per frame (forward, left) horizontal unit vectors of a person, from the hip line. [T, 3] each."""
  left = joints[:, _L_HIP] - joints[:, _R_HIP]
  left = left - left[:, 1:2] * _UP
  left = left / np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-9)
  return np.cross(left, _UP), left


def embraces(actor, reactor):
  """[T] bool: both of the reactor's palms are behind the actor's upper spine (on its back),
  within a band around it -- the reactor's arms are closed around the actor's body."""
  forward, left = _body_frame(actor)
  lateral, below, above = EMBRACE_BAND_M
  around = []
  for palm in (28, 43):
    rel = reactor[:, palm] - actor[:, _SPINE3]
    depth = np.sum(rel * forward, axis=-1)
    side = np.sum(rel * left, axis=-1)
    height = rel[:, 1]
    around.append((depth < 0) & (np.abs(side) < lateral) & (height > -below) & (height < above))
  return around[0] & around[1]


def _away_axis(actor, reactor, since=0):
  """Horizontal unit vector from the actor's pelvis to the reactor's, at frame `since`."""
  axis = reactor[since, _PELVIS] - actor[since, _PELVIS]
  axis = axis - axis[1] * _UP
  return axis / max(np.linalg.norm(axis), 1e-9)


def moved_away(actor, reactor, since=0):
  """[T]: how far (m) the reactor's pelvis has moved away from the actor since frame `since`."""
  return (reactor[:, _PELVIS] - reactor[since, _PELVIS]) @ _away_axis(actor, reactor, since)


def sideways(actor, reactor, since=0):
  """[T]: how far (m) the reactor's head has left the actor-reactor line of frame `since`."""
  side = np.cross(_UP, _away_axis(actor, reactor, since))
  return np.abs((reactor[:, _HEAD] - reactor[since, _HEAD]) @ side)


def hand_above_head(reactor):
  """[T] bool: a wrist of the reactor is above its head."""
  return np.max(reactor[:, [20, 21], 1], axis=1) > reactor[:, _HEAD, 1]


def event(kind, actor, reactor, fps):
  """(happened, first frame of the event or -1) for one sequence. actor, reactor: [T, 55, 3]."""
  if kind == 'hands_meet':
    hits = hands_meet(actor, reactor)
  elif kind == 'embrace':
    hits = embraces(actor, reactor)
  elif kind in ('pushed_back', 'retreat', 'dodge'):
    # Counted from the frame the actor starts to move, not from frame 0: before it an online
    # reactor cannot know which interaction is coming, while real reactors stand at the distance
    # their class needs (a push at 0.5-0.62 m, a wave at 1.3-1.7 m). A reactor that stands at a
    # typical distance, steps in when the push begins and is then pushed back 20 cm has been
    # pushed back; moving before the actor does is no response to it.
    since = max(onset(actor), 0)
    hits = np.zeros(len(reactor), bool)
    if kind == 'dodge':
      hits[since:] = sideways(actor, reactor, since)[since:] > DODGE_M
    else:
      away = moved_away(actor, reactor, since)[since:]
      back = away - np.minimum.accumulate(away)  # from the nearest it has come since
      hits[since:] = back > (PUSHED_BACK_M if kind == 'pushed_back' else RETREAT_M)
  elif kind == 'wave_back':
    up = hand_above_head(reactor)
    hits = up & (np.cumsum(up) >= WAVE_MIN_SECONDS * fps)
  else:
    raise ValueError(f'unknown interaction event {kind!r}; known: {EVENTS}')
  return bool(hits.any()), int(np.argmax(hits)) if hits.any() else -1


def onset(joints):
  """First frame at which some body joint is ONSET_DISPLACEMENT_M from where it was at frame 0
  (-1 if the person never moves that much)."""
  moved = np.linalg.norm(joints[:, BODY_JOINTS] - joints[:1, BODY_JOINTS], axis=-1).max(-1)
  hits = moved > ONSET_DISPLACEMENT_M
  return int(np.argmax(hits)) if hits.any() else -1


# ----------------------------------------------------------------------------- body contact

# The body as spheres along bones: (from joint, to joint, radius m). A coarse adult volume model
# that needs only joints, so it works without the (licensed) SMPL-X mesh.
_BODY_SEGMENTS = ((0, 3, 0.12), (3, 6, 0.12), (6, 9, 0.12), (9, 12, 0.09), (12, 15, 0.06),
                  (15, 15, 0.10), (0, 1, 0.09), (0, 2, 0.09), (1, 4, 0.07), (2, 5, 0.07),
                  (4, 7, 0.05), (5, 8, 0.05), (7, 10, 0.04), (8, 11, 0.04), (13, 16, 0.05),
                  (14, 17, 0.05), (16, 18, 0.045), (17, 19, 0.045), (18, 20, 0.035),
                  (19, 21, 0.035), (20, 28, 0.03), (21, 43, 0.03),
                 )


def _sphere_layout(rest=None):
  """(joint a [S], joint b [S], fraction along a->b [S], radius [S]) of the body spheres."""
  rest = skeleton.builtin_rest_joints() if rest is None else rest
  a, b, frac, radius = [], [], [], []
  for j0, j1, r in _BODY_SEGMENTS:
    length = np.linalg.norm(rest[j1] - rest[j0])
    # Neighbours 1.5 radii apart overlap: the surface between them dips by a third of a radius.
    count = 1 if length == 0 else int(np.ceil(length / (1.5 * r))) + 1
    for f in np.linspace(0.0, 1.0, count):
      a.append(j0)
      b.append(j1)
      frac.append(f)
      radius.append(r)
  return np.array(a), np.array(b), np.array(frac), np.array(radius)


_SPHERES = _sphere_layout()


def body_spheres(joints):
  """(centres [..., S, 3], radii [S]) of the body model posed by joints [..., 55, 3]."""
  a, b, frac, radius = _SPHERES
  centres = joints[..., a, :] + frac[:, None] * (joints[..., b, :] - joints[..., a, :])
  return centres, radius


def _halton(count, bases=(2, 3, 5)):
  """The first `count` points [count, len(bases)] of the Halton sequence: evenly spread in the unit
  cube without a grid's alignment (each axis is the index's digits, mirrored, in its own base)."""
  points = []
  for base in bases:
    index, value, scale = np.arange(1, count + 1), np.zeros(count), 1.0
    while index.any():
      scale /= base
      value += scale * (index % base)
      index //= base
    points.append(value)
  return np.stack(points, -1)


def _unit_ball_points(count=512):
  """Fixed, evenly spread points filling the unit ball (for volume integrals): a Halton sequence
  in the cube, kept where it falls inside the ball (about half of `count`). Shifted (modulo 1) by
  fixed irrational fractions so that no point row lines up with the axes: unshifted, a lens cut
  along x is off by 14%; shifted, overlaps in any direction are within a few percent on average,
  as with scipy's scrambled Sobol points, without scipy.stats's second of import time."""
  shift = np.array([np.sqrt(0.5), np.sqrt(3) - 1, np.sqrt(5) - 2])
  cube = (_halton(count) + shift) % 1 * 2 - 1
  return cube[np.sum(cube * cube, axis=1) <= 1]


_BALL = _unit_ball_points()


def _sq_distances(x, y):
  """Squared distances [B, N, M] between points x [B, N, 3] and y [B, M, 3] (a batched matmul)."""
  return np.maximum(
      np.sum(x * x, -1)[:, :, None] + np.sum(y * y, -1)[:, None] -
      2 * np.einsum('bnd,bmd->bnm', x, y), 0.0)


def _touching(centres_a, radii_a, centres_b, radii_b):
  """[F, Sa] bool: which spheres of A overlap some sphere of B."""
  d = np.sqrt(_sq_distances(centres_a, centres_b))
  return np.any(d < radii_a[:, None] + radii_b[None], axis=2)


def _integrate_over(frame_of, sphere_of, centres_a, radii_a, centres_b, radii_b, frames, chunk):
  """vol(A & B) [frames] from points spread through the listed (frame, sphere of A) pairs."""
  volume = np.zeros(frames)
  for lo in range(0, len(frame_of), chunk):
    f, s = frame_of[lo:lo + chunk], sphere_of[lo:lo + chunk]
    pts = centres_a[f, s][:, None] + radii_a[s][:, None, None] * _BALL[None]  # [P, K, 3]
    in_b = np.any(_sq_distances(pts, centres_b[f]) < radii_b**2, axis=-1)
    cover = np.sum(_sq_distances(pts, centres_a[f]) < radii_a**2, axis=-1)
    weight = 4.0 / 3.0 * np.pi * radii_a[s]**3 / len(_BALL)
    np.add.at(volume, f, np.sum(weight[:, None] * in_b / np.maximum(cover, 1), axis=1))
  return volume


def overlap_volumes(centres_a, radii_a, centres_b, radii_b, chunk=512):
  """Volume (m^3) of the intersection of two unions of spheres, per frame.

  centres_a [F, Sa, 3] with radii_a [Sa]; centres_b [F, Sb, 3] with radii_b [Sb]. Returns [F].
  Integrates the indicator of one union over the other: fixed points spread through each of its
  spheres that overlaps the other body, weighted by the sphere's volume share and divided by how
  many of its own body's spheres cover the point (so a union is counted once). Per frame it
  integrates over whichever body has less volume near the contact, where the points are densest.
  Within ~10% of the analytic lens volume for two balls overlapping by a tenth of the smaller one.
  """
  frames = centres_a.shape[0]
  touch_a = _touching(centres_a, radii_a, centres_b, radii_b)
  touch_b = _touching(centres_b, radii_b, centres_a, radii_a)
  over_a = (touch_a * radii_a**3).sum(1) <= (touch_b * radii_b**3).sum(1)  # [F]
  fa, sa = np.nonzero(touch_a & over_a[:, None])
  fb, sb = np.nonzero(touch_b & ~over_a[:, None])
  return (_integrate_over(fa, sa, centres_a, radii_a, centres_b, radii_b, frames, chunk) +
          _integrate_over(fb, sb, centres_b, radii_b, centres_a, radii_a, frames, chunk))


def penetration(actor, reactor):
  """Per frame (depth m [T], volume m^3 [T]) of overlap between the two body models.

  actor, reactor: joints [T, 55, 3]. Depth is the deepest sphere-sphere overlap; the volume is
  counted on frames deeper than PENETRATION_TOLERANCE_M (0 elsewhere).
  """
  ca, radii = body_spheres(actor)
  cr, _ = body_spheres(reactor)
  d = np.sqrt(_sq_distances(ca, cr))  # [T, S, S]
  depth = np.max(radii[:, None] + radii[None] - d, axis=(1, 2)).clip(min=0.0)
  volume = np.zeros(len(depth))
  deep = depth > PENETRATION_TOLERANCE_M  # shallower overlaps count as touching, not penetrating
  volume[deep] = overlap_volumes(ca[deep], radii, cr[deep], radii)
  return depth, volume


def foot_skating(joints, fps):
  """[T-1] bool: some foot is planted (within FLOOR_CONTACT_M of this person's lowest foot height,
  in both frames) and slides horizontally faster than FOOT_SKATE_SPEED."""
  feet = joints[:, list(FOOT_JOINTS)]
  floor = feet[..., 1].min()
  planted = feet[..., 1] < floor + FLOOR_CONTACT_M
  planted = planted[1:] & planted[:-1]
  step = feet[1:] - feet[:-1]
  speed = np.hypot(step[..., 0], step[..., 2]) * fps
  return np.any(planted & (speed > FOOT_SKATE_SPEED), axis=-1)


def shake(points, fps):
  """[T - JITTER_WINDOW, 3]: a point's velocity (m/s; points [T, 3]) minus its JITTER_WINDOW-frame
  moving average, at the average's centre frames. None below JITTER_WINDOW + 1 frames."""
  velocity = np.diff(points, axis=0) * fps  # [T - 1, 3]
  if len(velocity) < JITTER_WINDOW:
    return None
  kernel = np.ones(JITTER_WINDOW) / JITTER_WINDOW
  smooth = np.stack([np.convolve(velocity[:, k], kernel, 'valid') for k in range(3)], axis=-1)
  half = JITTER_WINDOW // 2
  return velocity[half:half + len(smooth)] - smooth


def path_jitter(points, fps):
  """Mean speed (m/s) of a point's motion [T, 3] that a JITTER_WINDOW-frame moving average of its
  velocity removes (`shake`): frame-to-frame shaking, ~0.01 for captured or smooth motion, while a
  point jumping 1 cm back and forth every frame at 30 fps scores 0.48. None below
  JITTER_WINDOW + 1 frames."""
  residual = shake(points, fps)
  return None if residual is None else float(np.linalg.norm(residual, axis=-1).mean())


def jitter(joints, fps):
  """path_jitter of the pelvis of world joints [T, 55, 3]: how much the body shakes."""
  return path_jitter(joints[:, 0], fps)


# ----------------------------------------------------------------------------- per class


def sequence_metrics(actor, reactor, kind, fps):
  """Everything for one sequence (valid frames only): a dict of floats (None where undefined)."""
  out = {}
  if kind is not None:
    happened, _ = event(kind, actor, reactor, fps)
    out['success'] = float(happened)
  start_a, start_r = onset(actor), onset(reactor)
  out['latency_ms'] = (start_r - start_a) * 1000.0 / fps if start_a >= 0 and start_r >= 0 else None
  depth, volume = penetration(actor, reactor)
  out['penetration_frequency'] = float(np.mean(depth > PENETRATION_TOLERANCE_M))
  out['penetration_depth_cm'] = float(np.mean(depth) * 100)
  out['penetration_volume_cm3'] = float(np.mean(volume) * 1e6)
  out['foot_skate_ratio'] = float(np.mean(foot_skating(reactor, fps))) if len(reactor) > 1 else 0.0
  out['jitter_m_s'] = jitter(reactor, fps)
  return out


SUMMARY_FIELDS = ('success_rate', 'latency_ms', 'penetration_frequency', 'penetration_depth_cm',
                  'penetration_volume_cm3', 'foot_skate_ratio', 'jitter_m_s')


def _mean(values):
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def per_class(actor, reactor, labels, class_names, fps, lengths=None):
  """Metrics per class of a set of pairs.

  Args:
    actor, reactor: world joints [N, T, 55, 3].
    labels: [N] int class of each pair.
    lengths: [N] valid frames of each window (default: all T).
  Returns:
    {class name: {event, count, success_rate (None for classes without a known event),
     latency_ms (mean over sequences where both people start moving), penetration_frequency,
     penetration_depth_cm, penetration_volume_cm3, foot_skate_ratio, jitter_m_s}} for classes
     present, plus 'all' over every pair.
  """
  frames = actor.shape[1]
  lengths = np.full(len(actor), frames) if lengths is None else np.asarray(lengths)
  rows = {}
  for i in range(len(actor)):
    name = class_names[int(labels[i])]
    kind = EVENT_OF_CLASS.get(name.lower())
    n = int(lengths[i])
    rows.setdefault(name,
                    (kind, []))[1].append(sequence_metrics(actor[i, :n], reactor[i, :n], kind, fps))
  out = {}
  everything = []
  for name, (kind, seqs) in rows.items():
    everything += seqs
    out[name] = _summarize(seqs, kind)
  out['all'] = _summarize(everything, 'any')
  return out


def _summarize(seqs, kind):
  summary = {
      'event': kind,
      'count': len(seqs),
      'success_rate': _mean([s.get('success') for s in seqs]) if kind else None
  }
  for field in SUMMARY_FIELDS[1:]:
    summary[field] = _mean([s[field] for s in seqs])
  return summary


def compare(actor, real, generated, labels, class_names, fps, lengths=None):
  """{class: {'real': per_class row, 'generated': per_class row}} for the same actors."""
  return side_by_side(per_class(actor, real, labels, class_names, fps, lengths),
                      per_class(actor, generated, labels, class_names, fps, lengths))


def side_by_side(real_rows, gen_rows):
  """compare's table from the two per_class results (real rows may be computed once, reused)."""
  return {name: {'real': real_rows[name], 'generated': gen_rows[name]} for name in real_rows}


def markdown_table(table):
  """A markdown table of `compare`'s result: real vs generated per class."""
  fmt = lambda v, spec: '–' if v is None else format(v, spec)
  lines = [
      '| class | event | n | success real / gen | latency ms real / gen | '
      'penetration freq real / gen | penetration cm³ real / gen | foot skate real / gen | '
      'jitter m/s real / gen |', '|---|---|---|---|---|---|---|---|---|'
  ]
  for name, rows in table.items():
    r, g = rows['real'], rows['generated']
    pair = lambda field, spec: f"{fmt(r[field], spec)} / {fmt(g[field], spec)}"
    lines.append(f"| {name} | {r['event'] or '–'} | {r['count']} | {pair('success_rate', '.2f')} | "
                 f"{pair('latency_ms', '.0f')} | {pair('penetration_frequency', '.2f')} | "
                 f"{pair('penetration_volume_cm3', '.0f')} | {pair('foot_skate_ratio', '.2f')} | "
                 f"{pair('jitter_m_s', '.2f')} |")
  return '\n'.join(lines) + '\n'

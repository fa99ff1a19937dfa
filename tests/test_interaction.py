"""Interaction metrics on constructed motions with known answers."""

import numpy as np

from regennet_jax import render
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.data import synthetic
from regennet_jax.evaluation import interaction

REST = skeleton.builtin_rest_joints().astype(np.float64)
FPS = 30


def _still(frames=20, at=(0.0, 0.0, 0.0), turn=False):
  """A T-posed person standing at `at` for `frames` frames ([T, 55, 3]); turn: facing -z."""
  joints = REST * ([-1.0, 1.0, -1.0] if turn else 1.0)
  return np.repeat((joints + np.asarray(at))[None], frames, axis=0)


def test_wrists_3cm_apart_touch_and_50cm_apart_do_not():
  # Two T-poses side by side along x: the actor's left wrist faces the reactor's right wrist.
  gap = lambda g: REST[20] - REST[21] + [g, 0, 0]  # shift that leaves the wrists g metres apart
  actor = _still()
  near, far = _still(at=gap(0.03)), _still(at=gap(0.50))
  np.testing.assert_allclose(np.linalg.norm(near[0, 21] - actor[0, 20]), 0.03, atol=1e-9)
  assert interaction.hands_meet(actor, near).all()
  assert not interaction.hands_meet(actor, far).any()
  assert interaction.event('hands_meet', actor, near, FPS) == (True, 0)
  assert interaction.event('hands_meet', actor, far, FPS) == (False, -1)


def _lens_volume(r1, r2, d):
  """Analytic volume of the intersection of two balls."""
  if d >= r1 + r2:
    return 0.0
  if d <= abs(r1 - r2):
    return 4 / 3 * np.pi * min(r1, r2)**3
  return (np.pi * (r1 + r2 - d)**2 * (d * d + 2 * d * (r1 + r2) - 3 * (r1 - r2)**2)) / (12 * d)


def test_overlap_volume_of_two_balls_matches_the_lens_formula():
  ball = lambda r: 4 / 3 * np.pi * r**3
  cases = ((0.1, 0.1, 0.05), (0.12, 0.05, 0.1), (0.1, 0.1, 0.14), (0.05, 0.05, 0.03),
           (0.12, 0.04, 0.05), (0.12, 0.05, 0.14), (0.1, 0.1, 0.25))
  for r1, r2, d in cases:
    got = interaction.overlap_volumes(np.array([[[0.0, 0, 0]]]), np.array([r1]),
                                      np.array([[[d, 0, 0]]]), np.array([r2]))[0]
    want = _lens_volume(r1, r2, d)
    assert want == 0 or want > 0.1 * ball(min(r1, r2))  # the cases the docstring promises
    assert abs(got - want) <= 0.1 * want, (r1, r2, d, got, want)


def test_two_bodies_in_the_same_place_overlap_by_a_whole_body():
  body = _still(frames=2)
  depth, volume = interaction.penetration(body, body)
  centres, radii = interaction.body_spheres(body[0])
  np.testing.assert_allclose(depth, 2 * radii.max())  # the torso spheres coincide
  # The body's volume by plain Monte Carlo in its bounding box: an independent estimate.
  rng = np.random.default_rng(0)
  lo, hi = (centres - radii[:, None]).min(0), (centres + radii[:, None]).max(0)
  pts = rng.uniform(lo, hi, size=(400_000, 3))
  inside = np.zeros(len(pts), bool)
  for c, r in zip(centres, radii):
    inside |= np.sum((pts - c)**2, axis=1) < r * r
  body_volume = inside.mean() * np.prod(hi - lo)
  np.testing.assert_allclose(volume, body_volume, rtol=0.05)
  # Apart, nothing overlaps.
  depth, volume = interaction.penetration(body, _still(frames=2, at=(3.0, 0, 0)))
  assert depth.max() == 0 and volume.max() == 0


def test_pushed_back_dodge_retreat_and_wave_are_recognised():
  frames = 30
  actor = _still(frames)
  reactor = _still(frames, at=(0, 0, 1.0), turn=True)
  backwards = reactor + np.linspace(0, 0.4, frames)[:, None, None] * [0, 0, 1.0]
  assert interaction.event('pushed_back', actor, backwards, FPS)[0]
  assert interaction.event('retreat', actor, backwards, FPS)[0]
  assert not interaction.event('pushed_back', actor, reactor, FPS)[0]
  # Moving towards the actor is not being pushed back; a 25 cm retreat is a push but no retreat.
  assert not interaction.event('pushed_back', actor, reactor - (backwards - reactor), FPS)[0]
  short = reactor + np.linspace(0, 0.25, frames)[:, None, None] * [0, 0, 1.0]
  assert interaction.event('pushed_back', actor, short, FPS)[0]
  assert not interaction.event('retreat', actor, short, FPS)[0]
  aside = reactor + np.linspace(0, 0.3, frames)[:, None, None] * [1.0, 0, 0]
  assert interaction.event('dodge', actor, aside, FPS)[0]
  assert not interaction.event('dodge', actor, backwards, FPS)[0]
  raised = reactor.copy()
  raised[10:, 21] = raised[10:, 15] + [0, 0.2, 0]  # right wrist above the head from frame 10
  happened, frame = interaction.event('wave_back', actor, raised, FPS)
  assert happened and frame == 10 + int(np.ceil(interaction.WAVE_MIN_SECONDS * FPS)) - 1
  brief = reactor.copy()
  brief[10:13, 21] = brief[10:13, 15] + [0, 0.2, 0]  # 0.1 s: a gesture too short for a wave
  assert not interaction.event('wave_back', actor, brief, FPS)[0]


def test_being_pushed_back_counts_from_the_actors_onset_not_from_frame_0():
  frames = 40
  # Moved along x or z by a path through (frame, metres) knots.
  path = lambda knots, axis: np.interp(np.arange(frames), *zip(*knots))[:, None, None] * axis
  x, z = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
  actor = _still(frames) + path([(0, 0), (10, 0), (16, 0.3), (39, 0.3)], z)
  assert 10 < interaction.onset(actor) < 16  # the actor steps in
  reactor = _still(frames, at=(0, 0, 1.0), turn=True)
  # It stands where an online reactor cannot yet know a push is coming, steps 30 cm in once the
  # actor has started, then is pushed back 25 cm: 5 cm short of where it began.
  stepped_in = reactor + path([(0, 0), (16, 0), (22, -0.3), (32, -0.05), (39, -0.05)], z)
  assert interaction.event('pushed_back', actor, stepped_in, FPS)[0]
  assert not interaction.event('retreat', actor, stepped_in, FPS)[0]  # 25 cm: too short
  further = reactor + path([(0, 0), (16, 0), (22, -0.3), (32, 0.1), (39, 0.1)], z)
  assert interaction.event('retreat', actor, further, FPS)[0]  # 40 cm back
  # Backing away (or stepping aside) before the actor moves answers nothing.
  early = reactor + path([(0, 0), (8, 0.4), (39, 0.4)], z)
  assert not interaction.event('pushed_back', actor, early, FPS)[0]
  assert not interaction.event('retreat', actor, early, FPS)[0]
  assert not interaction.event('dodge', actor, reactor + path([(0, 0), (8, 0.3),
                                                               (39, 0.3)], x), FPS)[0]
  assert interaction.event('dodge', actor, reactor + path([(0, 0), (20, 0), (30, 0.3),
                                                           (39, 0.3)], x), FPS)[0]


def test_embrace_needs_both_palms_on_the_partners_back():
  actor = _still(5)
  reactor = _still(5, at=(0, 0, 0.35), turn=True)
  back = actor[0, 9] - [0, 0, 0.12]  # the actor faces +z: its back is at -z
  hugging = reactor.copy()
  hugging[:, 28] = back + [0.1, 0, 0]
  hugging[:, 43] = back - [0.1, 0, 0]
  assert interaction.embraces(actor, hugging).all()
  one_arm = hugging.copy()
  one_arm[:, 43] = actor[0, 9] + [0, 0, 0.2]  # in front of the chest
  assert not interaction.embraces(actor, one_arm).any()
  assert not interaction.embraces(actor, reactor).any()


def test_latency_is_the_gap_between_the_two_onsets():
  frames = 40
  actor = _still(frames)
  reactor = _still(frames, at=(0, 0, 1.0), turn=True)
  actor[5:] += [0, 0, 0.3]  # the actor steps at frame 5
  reactor[12:] += [0, 0, 0.3]  # the reactor 7 frames later
  assert interaction.onset(actor) == 5 and interaction.onset(reactor) == 12
  metrics = interaction.sequence_metrics(actor, reactor, 'retreat', FPS)
  np.testing.assert_allclose(metrics['latency_ms'], 7 * 1000 / FPS)
  assert interaction.sequence_metrics(actor, _still(frames), None, FPS)['latency_ms'] is None


def test_foot_skating_counts_sliding_planted_feet_only():
  frames = 10
  still = _still(frames)
  assert not interaction.foot_skating(still, FPS).any()
  sliding = still + np.arange(frames)[:, None, None] * [1.0 / FPS, 0, 0]  # 1 m/s along the floor
  assert interaction.foot_skating(sliding, FPS).all()
  slow = still + np.arange(frames)[:, None, None] * [0.2 / FPS, 0, 0]
  assert not interaction.foot_skating(slow, FPS).any()


def test_jitter_is_shaking_not_steady_motion():
  frames = 12
  still = _still(frames)
  walking = still + np.arange(frames)[:, None, None] * [1.2 / FPS, 0, 0]  # a steady 1.2 m/s
  speeding_up = still + (np.arange(frames)**2)[:, None, None] * [0.5 / FPS**2, 0, 0]
  for steady in (still, walking, speeding_up):
    assert interaction.jitter(steady, FPS) < 1e-9
  shaking = still + ((-1.0)**np.arange(frames))[:, None, None] * [0.01, 0, 0]  # 1 cm each side
  # Velocity 0.02 m x 30 fps alternating in sign: a 5-frame average keeps 1/5 of it, 4/5 remain.
  np.testing.assert_allclose(interaction.jitter(shaking, FPS), 0.6 * 4 / 5)
  assert interaction.jitter(still[:5], FPS) is None
  row = interaction.per_class(still[None], shaking[None], [0], ['handshake'], FPS)['handshake']
  np.testing.assert_allclose(row['jitter_m_s'], 0.48)


def test_every_synthetic_event_is_recognised_in_the_real_data():
  src = synthetic.generate_split(5, 64, min_frames=50, max_frames=60)
  batch = pipeline.stack_windows(src, range(len(src)), pipeline.Windowing(48, 'start'),
                                 np.random.default_rng(0))
  actor, reactor = render.world_joints(batch['actor']), render.world_joints(batch['reactor'])
  table = interaction.compare(actor, reactor, reactor, batch['label'], synthetic.ACTIONS, FPS,
                              batch['mask'].sum(1))
  assert set(table) == set(synthetic.ACTIONS) | {'all'}
  for name in synthetic.ACTIONS:
    real = table[name]['real']
    assert real['event'] == interaction.EVENT_OF_CLASS[name] and real['count'] == 8
    assert real['success_rate'] == 1.0, name
    # The reactor responds after the actor: a human reaction time on average, never anticipation.
    assert 100 < real['latency_ms'] < 800, name
    assert table[name]['generated'] == real
  # A reactor that just stands still does none of it.
  still = np.repeat(reactor[:, :1], reactor.shape[1], axis=1)
  rows = interaction.per_class(actor, still, batch['label'], synthetic.ACTIONS, FPS)
  assert max(rows[name]['success_rate'] for name in synthetic.ACTIONS) == 0.0
  assert '| handshake | hands_meet | 8 | 1.00 / 1.00 |' in interaction.markdown_table(table)

import numpy as np
import pytest
from PIL import Image

from regennet_jax import render
from regennet_jax.data import pipeline
from tests import fake_files


def test_gif_animation_and_contact_sheet(tmp_path):
  a, r = fake_files.synthetic_people(0, 1, frames=30)
  people = {
      'actor': render.world_joints(pipeline.to_model_motion(a[:6], 0)),
      'reactor': render.world_joints(pipeline.to_model_motion(r[:6], 0))
  }
  path = render.animate(people, tmp_path / 'clip.gif', title='high_five', fps=10)
  with Image.open(path) as im:
    assert im.n_frames == 6
    im.seek(3)
    pixels = np.asarray(im.convert('RGB'))
  # Skeleton colours are drawn (not a blank canvas): the actor's blue and the reactor's red.
  assert (np.abs(pixels.astype(int) - [31, 119, 180]).sum(-1) < 60).sum() > 20
  assert (np.abs(pixels.astype(int) - [214, 39, 40]).sum(-1) < 60).sum() > 20
  sheet = render.contact_sheet([('high_five', people)], tmp_path / 'sheet.png', num_frames=3)
  with Image.open(sheet) as im:
    assert im.size[0] > im.size[1] > 50


def test_mp4_from_the_pinned_encoder(tmp_path):
  import imageio_ffmpeg
  a, r = fake_files.synthetic_people(0, 3, frames=30)
  people = {
      'actor': render.world_joints(pipeline.to_model_motion(a[:8], 0)),
      'reactor': render.world_joints(pipeline.to_model_motion(r[:8], 0))
  }
  gif, mp4 = render.animate(people, [tmp_path / 'clip.gif', tmp_path / 'clip.mp4'], fps=10)
  reader = imageio_ffmpeg.read_frames(mp4)
  meta = reader.__next__()
  frames = list(reader)
  assert len(frames) == 8 and meta['fps'] == 10 and meta['size'][0] > 100
  with Image.open(gif) as im:
    assert im.n_frames == 8


def test_unsupported_or_unavailable_formats_are_explained(tmp_path, monkeypatch):
  people = {'actor': np.zeros((2, 55, 3))}
  with pytest.raises(ValueError, match='.gif or .mp4'):
    render.animate(people, tmp_path / 'clip.avi')
  monkeypatch.setattr(render, 'mp4_encoder', lambda: None)
  with pytest.raises(ValueError, match='needs the imageio-ffmpeg package'):
    render.animate(people, tmp_path / 'clip.mp4')


def test_mesh_frames_draw_bodies_not_sticks(smplx_npz):
  from regennet_jax.body import mesh
  body = mesh.SmplxMesh.load(smplx_npz)
  a, r = fake_files.synthetic_people(0, 1, frames=30)
  motions = {
      'actor': pipeline.to_model_motion(a[:3], 0),
      'reactor': pipeline.to_model_motion(r[:3], 0)
  }
  people = {name: render.world_joints(m, body.rest_joints) for name, m in motions.items()}
  im16 = lambda im: im.astype(np.int32)
  red = lambda im: np.sum((im16(im)[..., 0] > 60) & (im16(im)[..., 0] > 2 * im16(im)[..., 1]) &
                          (im16(im)[..., 0] > 2 * im16(im)[..., 2]))
  sticks = render.render_frames(people)
  bodies = render.render_frames(people,
                                meshes={
                                    n: (body.pose(m), body.faces) for n, m in motions.items()
                                })
  assert bodies.shape == sticks.shape == (3,) + sticks.shape[1:]
  # The reactor's surface covers far more of the picture than its bones.
  assert red(bodies[1]) > 3 * red(sticks[1]) > 0


def test_the_contact_dot_is_drawn_over_the_bodies_it_marks():
  a, _ = fake_files.synthetic_people(0, 1, frames=30)
  actor = render.world_joints(pipeline.to_model_motion(a[:2], 0))
  # The reactor 5 cm beside the actor: hands touch, and both bodies cover the dot's spot.
  people = {'actor': actor, 'reactor': actor + np.array([0.05, 0.0, 0.0], np.float32)}
  frame = render.render_frames(people)[0].astype(np.int32)
  gold = (np.abs(frame - [242, 183, 5]).sum(-1) < 60).sum()
  # A marker 8 points wide at 80 dpi covers about 60 pixels; drawn behind the bones, none show.
  assert gold > 30


def _closed_surface(points=800, radii=(1.0, 1.0, 1.0), seed=0):
  """A closed convex surface: vertices [V, 3] on an ellipsoid, faces [F, 3] counter-clockwise
  seen from outside."""
  from scipy.spatial import ConvexHull
  d = np.random.default_rng(seed).normal(size=(points, 3))
  vertices = (d / np.linalg.norm(d, axis=1, keepdims=True) * radii).astype(np.float32)
  faces = ConvexHull(vertices).simplices
  corners = vertices[faces]
  normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  inward = np.einsum('fi,fi->f', normal, corners.mean(1)) < 0
  faces[inward] = faces[inward][:, [0, 2, 1]]
  return vertices, faces


def test_mesh_winding_tells_outside_from_inside(smplx_npz):
  from regennet_jax.body import mesh
  vertices, faces = _closed_surface()
  assert render.mesh_winding(vertices, faces) == 1
  assert render.mesh_winding(vertices, faces[:, [0, 2, 1]]) == -1
  one_flipped = faces.copy()
  one_flipped[7] = one_flipped[7, [0, 2, 1]]
  assert render.mesh_winding(vertices, one_flipped) == 0  # not consistent: draw every face
  body = mesh.SmplxMesh.load(smplx_npz)  # the generated model's faces are random
  assert render.mesh_winding(body.v_shaped, body.faces) == 0


def test_only_faces_towards_the_camera_are_kept():
  import matplotlib.pyplot as plt
  vertices, faces = _closed_surface()
  tri = vertices[faces][..., [0, 2, 1]]  # plot coordinates, as render draws them
  for elev, azim in ((12, -60), (12, 100), (40, 200), (-20, 30)):
    fig = plt.figure()
    ax = fig.add_subplot(projection='3d')
    for set_lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
      set_lim(-3, 3)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    kept = render.facing_camera(ax, tri, 1)
    plt.close(fig)
    e, a = np.radians(elev), np.radians(azim)
    towards_eye = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    front = tri.mean(1) @ towards_eye > 0  # the near half of a sphere (far camera)
    # Perspective moves the rim a little: near the outline the two can differ.
    assert np.mean(kept == front) > 0.95, (elev, azim)
    assert np.array_equal(render.facing_camera(ax, tri, -1), ~kept)


def test_drawing_only_the_front_faces_keeps_the_outline(monkeypatch):
  a, r = fake_files.synthetic_people(0, 1, frames=30)
  people = {
      n: render.world_joints(pipeline.to_model_motion(m[:2], 0))
      for n, m in (('actor', a), ('reactor', r))
  }
  vertices, faces = _closed_surface(3000, radii=(0.2, 0.8, 0.15))
  meshes = {n: (joints[:, :1] + vertices, faces) for n, joints in people.items()}
  covered = lambda frames: (frames.astype(np.int32).sum(-1) < 600)  # not the white background
  culled = render.render_frames(people, meshes=meshes)
  monkeypatch.setattr(render, 'mesh_winding', lambda vertices, faces: 0)
  every_face = render.render_frames(people, meshes=meshes)
  assert covered(every_face).sum() > 0.03 * covered(every_face).size  # the bodies are drawn
  # The same pixels covered, whichever faces are drawn behind the front ones.
  assert np.mean(covered(culled) != covered(every_face)) < 0.002

"""Rendering: actor and reactor animated side by side to GIF/MP4, and contact sheets (PNG), as
skeletons or, with an SMPL-X model file, as body meshes (body/mesh.py).

Input motions are [T, 56, 6] rot6d + translation (or joints [T, 55, 3] already); joints come from the
same forward kinematics as training.
"""

import matplotlib

matplotlib.use('Agg')  # headless: renders to files only
import matplotlib.pyplot as plt  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Line3DCollection  # noqa: E402

from regennet_jax import errors
from regennet_jax.body import kinematics  # noqa: E402
from regennet_jax.body import skeleton  # noqa: E402
from regennet_jax.evaluation import interaction  # noqa: E402

# Bones of the body and the first knuckle of each finger; full finger chains are too small to see.
_DRAWN = [(j, p) for j, p in skeleton.BONES if j < 22 or (j >= 25 and (j - 25) % 3 == 0)]
COLORS = {'actor': '#1f77b4', 'reactor': '#d62728', 'real reactor': '#999999'}

_world_fk = jax.jit(
    lambda motion, rest: kinematics.motion_to_joints(motion, rest, with_translation=True))


def world_joints(motion, rest_joints=None):
  """[..., T, 56, 6] -> [..., T, 55, 3] world joints (numpy)."""
  rest = skeleton.builtin_rest_joints() if rest_joints is None else rest_joints
  return np.asarray(_world_fk(np.asarray(motion, np.float32), np.asarray(rest, np.float32)))


def _view(people):
  """(center, half-size, camera azimuth) that keep every person in frame all the time and look
  across the line between the first two people, so the space between them (where contact happens)
  is visible rather than hidden behind one body."""
  pts = np.concatenate([p.reshape(-1, 3) for p in people.values()])
  center = (pts.max(0) + pts.min(0)) / 2
  half = max((pts.max(0) - pts.min(0)).max() / 2, 0.9) * 1.05
  azim = -60.0
  tracks = [p[:, 0] for p in people.values()]
  if len(tracks) > 1:
    axis = tracks[1].mean(0) - tracks[0].mean(0)
    if np.hypot(axis[0], axis[2]) > 0.05:  # plot axes are (world x, world z, world y)
      azim = float(np.degrees(np.arctan2(axis[2], axis[0]))) - 70.0
  return center, half, azim, float(pts[:, 1].min())


_CHILDREN, _PARENTS = (list(ends) for ends in zip(*_DRAWN))


class _Floor(Line3DCollection):
  """Lines that mplot3d's depth sort always puts behind everything (it draws collections from
  the largest sort key down), so the floor never covers a body standing on it."""
  def do_3d_projection(self):
    super().do_3d_projection()
    return np.inf


def _lines(ax, segments, kind=Line3DCollection, **style):
  """Segments [N, 2, 3] in world (x, y, z) as one artist: one per bone costs matplotlib a
  draw call each, and most of a run's rendering time."""
  # SMPL-X is y-up; matplotlib 3D is z-up: plot (x, z, y).
  ax.add_collection3d(kind(np.asarray(segments)[..., [0, 2, 1]], **style))


def _draw(ax, joints, color, label=None):
  """A skeleton [55, 3]: its bones and first knuckles."""
  _lines(ax,
         np.stack([joints[_CHILDREN], joints[_PARENTS]], 1),
         colors=color,
         linewidths=2,
         label=label)


def _draw_contacts(ax, people, frame):
  """A gold dot where a hand of the first person touches a hand of another (hand points closer
  than interaction.CONTACT_DISTANCE_M)."""
  names = list(people)
  first = people[names[0]][frame, list(interaction.HAND_POINTS)]
  for name in names[1:]:
    other = people[name][frame, list(interaction.HAND_POINTS)]
    d = np.linalg.norm(first[:, None] - other[None], axis=-1)
    i, j = np.unravel_index(d.argmin(), d.shape)
    if d[i, j] < interaction.CONTACT_DISTANCE_M:
      p = (first[i] + other[j]) / 2
      # A line marker, not a scatter: mplot3d depth-sorts collections (the bodies are) and
      # would hide the dot behind the hand it marks; a line keeps its zorder, above them all.
      ax.plot([p[0]], [p[2]], [p[1]],
              marker='o',
              markersize=8,
              markerfacecolor='#f2b705',
              markeredgecolor='k',
              markeredgewidth=0.5,
              zorder=100)


def _setup(ax, view, title):
  center, half, azim, floor = view
  ax.cla()
  ax.set_xlim(center[0] - half, center[0] + half)
  ax.set_ylim(center[2] - half, center[2] + half)
  ax.set_zlim(center[1] - half, center[1] + half)
  ax.set_box_aspect((1, 1, 1))
  ax.view_init(elev=12, azim=azim)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_zticks([])
  ax.set_axis_off()
  # The floor: a grey square with a 0.5 m grid under the people.
  edge = np.arange(-half, half + 1e-6, 0.5)
  xs, zs = center[0] + edge, center[2] + edge
  grid = [[[x, floor, zs[0]], [x, floor, zs[-1]]] for x in xs]
  grid += [[[xs[0], floor, z], [xs[-1], floor, z]] for z in zs]
  _lines(ax, grid, _Floor, colors='#cccccc', linewidths=0.6)
  ax.set_title(title, fontsize=9)


_LIGHT = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])


def mesh_winding(vertices, faces):
  """How the faces [F, 3] of a surface (vertices [V, 3]) turn seen from outside: +1
  counter-clockwise, -1 clockwise, 0 not consistently (some neighbours disagree)."""
  edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).astype(np.int64)
  directed = edges[:, 0] * len(vertices) + edges[:, 1]
  if len(np.unique(directed)) != len(directed):  # an edge walked the same way by two faces
    return 0
  corners = vertices[faces].astype(np.float64) - vertices.mean(0)
  volume = np.einsum('fi,fi->', corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))
  return int(np.sign(volume))


def facing_camera(ax, tri, winding):
  """[F] bool: which triangles [F, 3, 3] (plot coordinates) of a surface whose faces turn
  `winding` (mesh_winding) face the camera of `ax`, seen in its perspective."""
  from mpl_toolkits.mplot3d import proj3d  # pylint: disable=g-import-not-at-top
  x, y, _ = proj3d.proj_transform(*tri.reshape(-1, 3).T, ax.get_proj())
  screen = np.stack([x, y], -1).reshape(-1, 3, 2)
  a, b = screen[:, 1] - screen[:, 0], screen[:, 2] - screen[:, 0]
  # Plotting (x, z, y) mirrors the world, so an outside that turns counter-clockwise in the
  # world turns clockwise on the screen.
  return (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) * winding < 0


def _draw_mesh(ax, vertices, faces, color, label=None, winding=0):
  """A body surface [V, 3] with faces [F, 3], flat-shaded by one light (painter's algorithm).

  winding: mesh_winding(vertices, faces). Unless 0, only the faces towards the camera are drawn:
  on a closed surface the others lie behind them, and they are half of matplotlib's work (an
  SMPL-X body has 20,908 faces).
  """
  from matplotlib import colors as mcolors  # pylint: disable=g-import-not-at-top
  from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # pylint: disable=g-import-not-at-top
  tri = vertices[faces][..., [0, 2, 1]]  # y-up world -> matplotlib's z-up (x, z, y)
  if winding:
    tri = tri[facing_camera(ax, tri, winding)]
  normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True) + 1e-12
  shade = 0.35 + 0.65 * np.abs(normals @ _LIGHT)
  rgb = np.asarray(mcolors.to_rgb(color or '#777777'))
  ax.add_collection3d(
      Poly3DCollection(tri,
                       facecolors=np.clip(rgb * shade[:, None], 0, 1),
                       edgecolors='none',
                       linewidths=0,
                       label=label))


def render_frames(people, title='', size=4.0, dpi=80, meshes=None):
  """[T, H, W, 3] uint8 frames of several people (dict name -> [T, 55, 3] joints).

  meshes: optional dict name -> (vertices [T, V, 3], faces [F, 3]) (body/mesh.py): those people
  are drawn as body surfaces instead of skeletons.
  """
  names = list(people)
  meshes = meshes or {}
  view = _view(people)
  frames = min(len(p) for p in people.values())
  fig = plt.figure(figsize=(size, size), dpi=dpi)
  ax = fig.add_subplot(projection='3d')
  fig.subplots_adjust(0, 0, 1, 0.93)
  windings = {name: mesh_winding(v[0], faces) for name, (v, faces) in meshes.items()}
  images = []
  for f in range(frames):
    _setup(ax, view, f'{title}  frame {f + 1}/{frames}')
    for name in names:
      if name in meshes:
        vertices, faces = meshes[name]
        _draw_mesh(ax, vertices[f], faces, COLORS.get(name, None), name, windings[name])
      else:
        _draw(ax, people[name][f], COLORS.get(name, None), name)
    _draw_contacts(ax, people, f)
    ax.legend(loc='upper right', fontsize=7)
    fig.canvas.draw()
    images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
  plt.close(fig)
  return np.stack(images)


def mp4_encoder():
  """The ffmpeg binary of the imageio-ffmpeg package (requirements.txt), or None."""
  try:
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    return imageio_ffmpeg.get_ffmpeg_exe()
  except (ImportError, RuntimeError):
    return None


def write_video(images, path, fps=30):
  """Writes [T, H, W, 3] uint8 frames to a .gif (Pillow) or .mp4 (H.264, imageio-ffmpeg)."""
  path = str(path)
  if path.endswith('.gif'):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    first, *rest = [Image.fromarray(im) for im in images]
    first.save(path, save_all=True, append_images=rest, duration=int(round(1000 / fps)), loop=0)
  elif path.endswith('.mp4'):
    if mp4_encoder() is None:
      raise errors.ConfigError(f'{path}: writing MP4 needs the imageio-ffmpeg package '
                               '(pip install -r requirements.txt); or write a .gif.')
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    height, width = images.shape[1:3]
    writer = imageio_ffmpeg.write_frames(path, (width, height),
                                         fps=fps,
                                         macro_block_size=8,
                                         quality=7)
    writer.send(None)
    for im in images:
      writer.send(np.ascontiguousarray(im))
    writer.close()
  else:
    raise errors.ConfigError(f'{path}: animations are written as .gif or .mp4.')
  return path


def animate(people, path, title='', fps=30, meshes=None):
  """Writes an animation of several people (dict name -> [T, 55, 3] joints; `meshes` as in
  render_frames) to `path` (.gif or .mp4), or to each of several paths (a list), drawing the frames
  once."""
  paths = [str(p) for p in path] if isinstance(path, (list, tuple)) else [str(path)]
  for p in paths:
    if not p.endswith(('.gif', '.mp4')):
      raise errors.ConfigError(f'{p}: animations are written as .gif or .mp4.')
  images = render_frames(people, title, meshes=meshes)
  for p in paths:
    write_video(images, p, fps)
  return paths if isinstance(path, (list, tuple)) else paths[0]


def contact_sheet(rows, path, num_frames=6, meshes=None):
  """A PNG grid: one row per (title, {name: [T, 55, 3]}), `num_frames` evenly spaced frames each.
  meshes: optional, one per row, as in render_frames."""
  fig = plt.figure(figsize=(2.2 * num_frames, 2.2 * len(rows)), dpi=70)
  for r, (title, people) in enumerate(rows):
    view = _view(people)
    frames = min(len(p) for p in people.values())
    row_meshes = meshes[r] if meshes else {}
    windings = {name: mesh_winding(v[0], faces) for name, (v, faces) in row_meshes.items()}
    for c, f in enumerate(np.linspace(0, frames - 1, num_frames).astype(int)):
      ax = fig.add_subplot(len(rows), num_frames, r * num_frames + c + 1, projection='3d')
      _setup(ax, view, f'{title} f{f}' if c == 0 else f'f{f}')
      for name, joints in people.items():
        if name in row_meshes:
          _draw_mesh(ax,
                     row_meshes[name][0][f],
                     row_meshes[name][1],
                     COLORS.get(name, None),
                     winding=windings[name])
        else:
          _draw(ax, joints[f], COLORS.get(name, None))
      _draw_contacts(ax, people, f)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path

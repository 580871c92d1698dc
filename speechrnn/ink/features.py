"""Ink features: normalisation, resampling, per-point features and augmentation.

Features (`ink_features`, float32 (T, F)), one row per point after normalising and resampling, in this order:
  0 dx, 1 dy   offset from the previous point (0 at the first), in units of the writing's height; the offset
               into a stroke's first point is the pen-up jump from the previous stroke
  2 pen_up     1 at the last point of each stroke, else 0
  3 cos, 4 sin writing direction (of the chord from the previous to the next point in the stroke); 0, 0 for a
               stroke of one point
  5 cos, 6 sin turning angle at the point (curvature); 1, 0 at stroke ends
  7 y          height above the writing's centre line (its median y; along a line of words, the windows' medians),
               in heights (tells ascenders from descenders)
  8 dt         (use_time only) log(1 + dt / 10 ms), dt the time since the previous point, pen-up gaps included
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .limits import max_ink_points, too_many_points
from .readers import Ink, InkError

FEATURE_NAMES = ("dx", "dy", "pen_up", "dir_cos", "dir_sin", "curv_cos", "curv_sin", "y")
TIME_FEATURE = "dt"
DEFAULT_SPACING = 0.15  # resampling step in normalised heights (see writing_box): ~23 points per letter on UNIPEN



def num_ink_features(use_time: bool = False) -> int:
    return len(FEATURE_NAMES) + (1 if use_time else 0)



# ---------------------------------------------------------------------------------------------------- features

def _stroke_list(ink: Ink) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.float64) for s in ink.strokes if len(s)]


def _resample_stroke(stroke: np.ndarray, spacing: float) -> np.ndarray:
    if len(stroke) < 2:
        return stroke.copy()
    steps = np.hypot(*np.diff(stroke[:, :2], axis=0).T)
    keep = np.concatenate([[True], steps > 0])  # drop repeated points so arc length strictly increases
    stroke, steps = stroke[keep], steps[steps > 0]
    if len(stroke) < 2:
        return stroke[:1].copy()
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    n = max(int(math.ceil(arc[-1] / spacing - 1e-9)), 1)
    at = np.linspace(0.0, arc[-1], n + 1)
    return np.column_stack([np.interp(at, arc, stroke[:, c]) for c in range(stroke.shape[1])])


def resampled_points(ink: Ink, spacing: float) -> int:
    """How many points `resample(ink, spacing)` gives, without making them."""
    total = 0
    for stroke in _stroke_list(ink):
        arc = float(np.hypot(*np.diff(stroke[:, :2], axis=0).T).sum()) if len(stroke) > 1 else 0.0
        total += max(int(math.ceil(arc / spacing - 1e-9)), 1) + 1 if arc > 0 else 1
    return total


def resample(ink: Ink, spacing: float) -> Ink:
    """Each stroke resampled at equal arc length (step <= `spacing`, as close as divides the stroke evenly; end
    points kept; time interpolated too). A stroke without extent becomes one point."""
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    return Ink([_resample_stroke(s, spacing) for s in _stroke_list(ink)], ink.text)


LINE_WINDOW = 8.0  # heights: ink wider than two such windows (a line of words) is measured window by window
LINE_SPAN = 3.0  # ink wider than this many windows of its letters' height along the pen path is a line, however
# tilted (its whole height, and so the windows' width, would be overestimated)
MIN_WINDOW_POINTS = 30  # of the evenly spaced points: fewer (a gap between words) and a window is not measured


def _even_points(strokes: list[np.ndarray], count: int) -> np.ndarray:
    """About `count` points (N, 2) spaced evenly along the pen path: percentiles of them do not depend on the
    tablet's sampling rate."""
    length = sum(float(np.hypot(*np.diff(s, axis=0).T).sum()) for s in strokes if len(s) > 1)
    if length > 0:
        return np.concatenate([_resample_stroke(s, length / count) for s in strokes])
    return np.concatenate(strokes)


def _height(pts: np.ndarray) -> float:
    """Twice the interquartile y range of `pts`, at least 1/20 of their 10-90 % x extent."""
    (x10, x90), (y25, y75) = np.percentile(pts[:, 0], [10, 90]), np.percentile(pts[:, 1], [25, 75])
    return max(2.0 * (y75 - y25), 0.05 * (x90 - x10))


def _path_height(pts: np.ndarray, run: int = 50) -> float:
    """The median height (_height) of runs of `run` consecutive evenly spaced points: the size of the letters
    along the pen path, whatever the baseline does between them."""
    runs = [pts[k: k + run] for k in range(0, len(pts) - run + 1, run)] or [pts]
    return float(np.median([2.0 * np.subtract(*np.percentile(r[:, 1], [75, 25])) for r in runs]))


def writing_frame(ink: Ink) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(x origin, centre-line knots x (K,), their y (K,), height) of the writing, robust to outliers and to the
    sampling rate (percentiles of points spaced evenly along the pen path). The height is twice the interquartile
    y range, about the height of the lower-case letters (of the estimates tried on UNIPEN it varies least between
    one writer's words, so words with and without ascenders come out the same size); at least 1/20 of the 10-90 %
    x extent (so a dash gets a size), and 1 when the ink has no extent at all. The centre line is the median y (one
    knot). A line of words, wider than 2 LINE_WINDOWs (or than LINE_SPAN windows of the letters' height along the
    pen path, _path_height, when it is tilted), is measured in windows about LINE_WINDOW heights wide: the height is
    the median of the windows' heights about the centre line, which runs through each window's median y, so a
    baseline that drifts or tilts along the line is followed, not counted as height."""
    strokes = [s[:, :2] for s in _stroke_list(ink)]
    pts = _even_points(strokes, 400)
    x0 = float(pts[:, 0].min())
    height = _height(pts)
    knots_x, knots_y = np.array([float(np.median(pts[:, 0]))]), np.array([float(np.median(pts[:, 1]))])
    local = _path_height(pts)  # a tilted line's whole height grows with its length; along the pen path it does not
    guess = local if np.ptp(pts[:, 0]) >= LINE_SPAN * LINE_WINDOW * local else height
    for _ in range(3):  # the windows' width depends on the height, and the height on the windows
        windows = int(np.ptp(pts[:, 0]) // (LINE_WINDOW * guess)) if guess > 0 else 0
        if windows < 2:
            break
        if len(pts) < 400 * windows:
            pts = _even_points(strokes, 400 * windows)
        edges = np.linspace(pts[:, 0].min(), pts[:, 0].max(), windows + 1)
        which = np.clip(np.searchsorted(edges, pts[:, 0], side="right") - 1, 0, windows - 1)
        parts = [pts[which == w] for w in range(windows)]
        parts = [part for part in parts if len(part) >= MIN_WINDOW_POINTS]
        if len(parts) < 2:
            break
        knots_x = np.array([float(np.median(part[:, 0])) for part in parts])
        knots_y = np.array([float(np.median(part[:, 1])) for part in parts])
        # heights about the centre line: the tilt within a window is not height either
        level = [np.column_stack([part[:, 0], part[:, 1] - np.interp(part[:, 0], knots_x, knots_y)]) for part in parts]
        # never under half the letters' height along the pen path: a long flat scribble would otherwise come out
        # a few points high and hundreds of heights long
        height = guess = max(float(np.median([_height(part) for part in level])), 0.5 * local)
    if not height > 0:
        extent = float(np.ptp(pts, axis=0).max())
        height = extent if extent > 0 else 1.0
    return x0, knots_x, knots_y, float(height)


def writing_box(ink: Ink) -> tuple[float, float, float]:
    """(x origin, y centre, height) of the writing (writing_frame; the centre is its centre line's middle knot)."""
    x0, _, knots_y, height = writing_frame(ink)
    return x0, float(np.median(knots_y)), height


def normalize(ink: Ink, flip_y: bool = False) -> Ink:
    """Translate (x from 0, y from the writing's centre line) and scale by the writing's robust height (see
    `writing_frame`), so that size, position and the drift of a line's baseline do not matter; `flip_y` first turns
    y-down (screen) coordinates into y-up. Time is kept as is."""
    strokes = _stroke_list(ink)
    if flip_y:
        strokes = [s * np.array([1.0, -1.0] + [1.0] * (s.shape[1] - 2)) for s in strokes]
    x0, knots_x, knots_y, height = writing_frame(Ink(strokes))
    out = []
    for s in strokes:
        s = s.copy()
        s[:, 1] = (s[:, 1] - np.interp(s[:, 0], knots_x, knots_y)) / height
        s[:, 0] = (s[:, 0] - x0) / height
        out.append(s)
    return Ink(out, ink.text)


def ink_features(ink: Ink, spacing: float = DEFAULT_SPACING, use_time: bool = False,
                 flip_y: bool = False) -> np.ndarray:
    """Normalise, resample every `spacing` heights, and compute the per-point features listed in the module
    docstring: float32 (T, 8), or (T, 9) with `use_time` (which needs inks with a time channel). An ink whose
    resampled pen path is over max_ink_points() long (points far apart for the writing's size) is refused."""
    where = ink.source or "ink"
    if use_time and not ink.has_time:
        raise InkError(f"{where}: ink has no time channel, so use_time cannot be used; set use_time false for "
                       f"this data")
    normalized = normalize(ink, flip_y)
    count, limit = resampled_points(normalized, spacing), max_ink_points()
    if count > limit:
        raise too_many_points(where, count, limit, "points once resampled (a long pen path for the writing's size)")
    strokes = resample(normalized, spacing).strokes
    if not strokes:
        raise InkError("ink has no points")
    pts = np.concatenate([s[:, :2] for s in strokes])
    n = len(pts)
    lengths = np.array([len(s) for s in strokes])
    ends = np.cumsum(lengths) - 1
    starts = ends - lengths + 1
    out = np.zeros((n, num_ink_features(use_time)), dtype=np.float64)
    delta = np.zeros_like(pts)
    delta[1:] = np.diff(pts, axis=0)
    out[:, 0:2] = delta
    out[ends, 2] = 1.0
    # neighbours within the stroke (clamped at stroke ends)
    stroke_of = np.repeat(np.arange(len(strokes)), lengths)
    idx = np.arange(n)
    prev = np.maximum(idx - 1, starts[stroke_of])
    nxt = np.minimum(idx + 1, ends[stroke_of])
    chord = pts[nxt] - pts[prev]
    norm = np.hypot(chord[:, 0], chord[:, 1])
    ok = norm > 0
    out[ok, 3] = chord[ok, 0] / norm[ok]
    out[ok, 4] = chord[ok, 1] / norm[ok]
    a = pts[idx] - pts[prev]
    b = pts[nxt] - pts[idx]
    na, nb = np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1])
    inner = (na > 0) & (nb > 0)
    out[:, 5] = 1.0
    out[inner, 5] = (a[inner] * b[inner]).sum(axis=1) / (na[inner] * nb[inner])
    out[inner, 6] = (a[inner, 0] * b[inner, 1] - a[inner, 1] * b[inner, 0]) / (na[inner] * nb[inner])
    out[:, 7] = pts[:, 1]
    if use_time:
        t = np.concatenate([s[:, 2] for s in strokes])
        dt = np.zeros(n)
        dt[1:] = np.maximum(np.diff(t), 0.0)
        out[:, 8] = np.log1p(dt / 0.01)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------- augmentation

@dataclass
class InkFeatureConfig:
    spacing: float = DEFAULT_SPACING  # resampling step, in normalised heights
    use_time: bool = False  # add the dt feature (needs a time channel)
    flip_y: bool = False  # the training data is y-down (screen coordinates, IAM-OnDB); UNIPEN is y-up. An ink
    # that states its orientation (Ink.y_down) is read as it says
    stack: int = 1  # consecutive points concatenated into one frame by the model's front-end (features.StrokeFrames)
    augment: bool = False  # apply `augment` to training inks
    aug_scale: float = 0.15  # std of the log aspect-ratio change (x stretched, y squeezed or vice versa)
    aug_shear: float = 0.25  # slant change: x += U(-s, s) * y
    aug_rotate: float = 5.0  # rotation: U(-r, r) degrees
    aug_jitter: float = 0.01  # point jitter std, in heights
    aug_gap: float = 0.15  # std of the change of each gap between letters/words, in heights

    @property
    def num_features(self) -> int:
        return num_ink_features(self.use_time)


def augment(ink: Ink, rng: np.random.Generator, config: InkFeatureConfig | None = None) -> Ink:
    """A randomly distorted copy of `ink`, deterministic given `rng`'s state: horizontal gaps between strokes
    widened or narrowed (delayed strokes such as i-dots move with the ink they sit on), then a random affine
    (aspect ratio, slant, small rotation) about the writing's centre, then per-point jitter. Strengths (in units
    of the writing's height) come from `config`; zero turns one off. With jitter, strokes come back resampled at
    half of `config.spacing` (time interpolated)."""
    config = config or InkFeatureConfig()
    strokes = _stroke_list(ink)
    if not strokes:
        return Ink([], ink.text)
    _, yc, height = writing_box(Ink(strokes))
    xy = [s[:, :2].copy() for s in strokes]
    # stroke spacing: a stroke starting right of everything before it (in x order) opens a gap
    if config.aug_gap > 0 and len(xy) > 1:
        lo = np.array([p[:, 0].min() for p in xy])
        hi = np.array([p[:, 0].max() for p in xy])
        order = np.argsort(lo, kind="stable")
        reach = -np.inf
        shift, shifts = 0.0, np.zeros(len(xy))
        draws = rng.normal(0.0, config.aug_gap * height, size=len(xy))
        for rank, k in enumerate(order):
            if rank > 0 and lo[k] > reach:
                gap = lo[k] - reach
                shift += max(draws[rank], -0.8 * gap)
            shifts[k] = shift
            reach = max(reach, hi[k])
        for k, p in enumerate(xy):
            p[:, 0] += shifts[k]
    allxy = np.concatenate(xy)
    centre = np.array([np.median(allxy[:, 0]), yc])
    aspect = math.exp(rng.normal(0.0, config.aug_scale)) if config.aug_scale > 0 else 1.0
    shear = rng.uniform(-config.aug_shear, config.aug_shear) if config.aug_shear > 0 else 0.0
    angle = math.radians(rng.uniform(-config.aug_rotate, config.aug_rotate)) if config.aug_rotate > 0 else 0.0
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1.0 / aspect])
    out = []
    for stroke, p in zip(strokes, xy):
        stroke = np.column_stack([(p - centre) @ matrix.T + centre, stroke[:, 2:]])
        if config.aug_jitter > 0:
            # jitter points half a resampling step apart: jittering the tablet's dense raw points would lengthen
            # the pen path, and with it the resampled sequence, up to twice
            stroke = _resample_stroke(stroke, 0.5 * config.spacing * height)
            stroke[:, :2] += rng.normal(0.0, config.aug_jitter * height, size=(len(stroke), 2))
        out.append(stroke)
    return Ink(out, ink.text)


def featurize(ink: Ink, config: InkFeatureConfig, rng: np.random.Generator | None = None,
              y_down: bool | None = None) -> np.ndarray:
    """Features per `config`; with `rng` and `config.augment`, of an augmented copy. The ink is turned y-up when
    it is y-down: as `y_down` says, else as the ink states (Ink.y_down), else as `config.flip_y` says of the
    data the model was trained on."""
    if y_down is None:
        y_down = ink.y_down if ink.y_down is not None else config.flip_y
    if rng is not None and config.augment:
        ink = augment(ink, rng, config)
    return ink_features(ink, spacing=config.spacing, use_time=config.use_time, flip_y=y_down)

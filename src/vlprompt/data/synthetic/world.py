"""A procedurally generated world of captioned images.

Every image is a scene of one to four objects that share a shape, a color, a fill and a
size, placed on a background. Scenes are drawn from a seeded generator, rendered with
anti-aliasing (2x supersampling) and described by captions in varied phrasings. The
world is the offline stand-in for web image-text pairs: the bundled tiny CLIP is trained
on it and the synthetic benchmark suite is cut from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
_SS = 2  # supersampling factor for anti-aliasing

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "heart",
    "cross", "diamond", "hexagon", "crescent", "arrow",
)
SHAPE_PLURALS = {s: s + "s" for s in SHAPES} | {"cross": "crosses"}

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 50),
    "blue": (30, 80, 230),
    "purple": (140, 40, 190),
    "pink": (250, 120, 190),
    "brown": (130, 80, 35),
}
#: Rare words for each color; captions use them now and then (and the rare-name task uses them).
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet"),
    "orange": ("amber", "tangerine"),
    "yellow": ("golden", "lemon"),
    "green": ("emerald", "lime"),
    "blue": ("azure", "cobalt"),
    "purple": ("violet", "lilac"),
    "pink": ("magenta", "rose"),
    "brown": ("chocolate", "bronze"),
}
#: Real color words that no caption ever uses (a test guards this): the rare-name task
#: names half its classes with them, so zero-shot cannot know them.
UNSEEN_COLOR_WORDS: dict[str, str] = {
    "red": "ruby", "orange": "apricot", "yellow": "mustard", "green": "olive",
    "blue": "navy", "purple": "plum", "pink": "salmon", "brown": "umber",
}
FILLS: tuple[str, ...] = ("solid", "striped", "dotted", "checkered", "outline")
#: Real texture words that no caption ever uses (a test guards this): the textures task
#: names half its classes with them.
UNSEEN_FILL_WORDS: dict[str, str] = {
    "solid": "uniform", "striped": "banded", "dotted": "speckled", "checkered": "tartan",
    "outline": "contour",
}
FILL_WORDS = {
    "solid": ("solid", "plain", "filled"),
    "striped": ("striped", "stripy", "lined"),
    "dotted": ("dotted", "spotted", "polka dot"),
    "checkered": ("checkered", "checked", "chequered"),
    "outline": ("outline", "hollow", "outlined"),
}
SIZES: dict[str, float] = {"small": 0.16, "medium": 0.24, "large": 0.34}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": ("medium", "medium-sized"),
              "large": ("large", "big", "huge")}
COUNT_WORDS = ("one", "two", "three", "four")
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "beige": (225, 205, 165),
    "light blue": (170, 205, 240),
    "dark green": (20, 70, 40),
}
#: Backgrounds never seen in pretraining: the "new backgrounds" test domain uses them.
NOVEL_BACKGROUNDS: tuple[str, ...] = ("gradient", "noise", "grid")

DOMAINS: tuple[str, ...] = ("clean", "noise", "sketch", "new_background", "inverted")


def held_out_combos() -> frozenset[tuple[str, str]]:
    """(shape, color) pairs that pretraining never shows, to measure composition."""
    colors = list(COLORS)
    return frozenset((shape, colors[(3 * i + 1) % len(colors)]) for i, shape in enumerate(SHAPES))


@dataclass(frozen=True)
class Scene:
    """Everything that decides one image; captions and labels are read off it."""

    shape: str
    color: str
    fill: str
    size: str
    count: int
    position: str
    background: str
    seed: int
    domain: str = "clean"

    def as_labels(self) -> dict[str, int]:
        """Integer labels of each attribute (used by pretraining's auxiliary heads)."""
        return {
            "shape": SHAPES.index(self.shape),
            "color": list(COLORS).index(self.color),
            "fill": FILLS.index(self.fill),
            "size": list(SIZES).index(self.size),
            "count": self.count - 1,
            "position": list(POSITIONS).index(self.position),
            "background": list(BACKGROUNDS).index(self.background)
            if self.background in BACKGROUNDS else 0,
        }


ATTRIBUTE_SIZES = {
    "shape": len(SHAPES), "color": len(COLORS), "fill": len(FILLS), "size": len(SIZES),
    "count": len(COUNT_WORDS), "position": len(POSITIONS), "background": len(BACKGROUNDS),
}


def sample_scene(rng: np.random.Generator, *, exclude: frozenset[tuple[str, str]] = frozenset(),
                 **fixed: object) -> Scene:
    """Draw a scene; keyword arguments pin attributes, `exclude` bans (shape, color) pairs."""
    while True:
        count = int(fixed.get("count", rng.choice([1, 1, 1, 2, 3, 4])))
        values = {
            "shape": fixed.get("shape", SHAPES[rng.integers(len(SHAPES))]),
            "color": fixed.get("color", list(COLORS)[rng.integers(len(COLORS))]),
            "fill": fixed.get("fill", FILLS[rng.integers(len(FILLS))]),
            "size": fixed.get("size", list(SIZES)[rng.integers(len(SIZES))]),
            "count": count,
            "position": fixed.get("position", "center" if count > 1 else
                                  list(POSITIONS)[rng.integers(len(POSITIONS))]),
            "background": fixed.get("background", list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]),
            "domain": fixed.get("domain", "clean"),
            "seed": int(rng.integers(2**31 - 1)),
        }
        if count > 1 and values["size"] == "large" and "size" not in fixed:
            values["size"] = "small" if rng.random() < 0.5 else "medium"
        if (values["shape"], values["color"]) not in exclude:
            return Scene(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- shapes as polygons

def _regular(n: int, phase: float = -math.pi / 2, radius: float = 1.0) -> list[tuple[float, float]]:
    return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _star() -> list[tuple[float, float]]:
    pts = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.45
        a = -math.pi / 2 + math.pi * k / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -y / 17.0 + 0.1))
    return pts


_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)],
    "star": _star(),
    "heart": _heart(),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "diamond": [(0.0, -1.0), (0.7, 0.0), (0.0, 1.0), (-0.7, 0.0)],
    "hexagon": _regular(6, phase=0.0),
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
}


def _shape_mask(shape: str, cx: float, cy: float, radius: float, angle: float, n: int) -> np.ndarray:
    """Binary mask (n, n) of one shape centred at (cx, cy) in pixels of the supersampled canvas."""
    canvas = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(canvas)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "crescent":
        draw.ellipse(box, fill=255)
        off = 0.45 * radius
        draw.ellipse((cx - radius + off, cy - radius - 0.15 * radius, cx + radius + off,
                      cy + radius - 0.15 * radius), fill=0)
    else:
        ca, sa = math.cos(angle), math.sin(angle)
        pts = [(cx + radius * (x * ca - y * sa), cy + radius * (x * sa + y * ca))
               for x, y in _POLYGONS[shape]]
        draw.polygon(pts, fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        shifted = [np.roll(out, s, axis=a) for a in (0, 1) for s in (-1, 1)]
        out = np.minimum.reduce([out, *shifted])
    return out


def _fill_pattern(fill: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Where the object's own color shows (1) versus its pale gaps (0), on the whole canvas."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    period = 8.0 * _SS * (n / (IMAGE_SIZE * _SS))
    phase = rng.uniform(0, period)
    if fill == "striped":
        angle = rng.choice([0.0, math.pi / 4, math.pi / 2, -math.pi / 4])
        u = xx * math.cos(angle) + yy * math.sin(angle) + phase
        return ((u % period) < period / 2).astype(np.float32)
    if fill == "dotted":
        gx = (xx + phase) % period - period / 2
        gy = (yy + phase) % period - period / 2
        return ((gx**2 + gy**2) < (period * 0.3) ** 2).astype(np.float32)
    if fill == "checkered":
        cx = ((xx + phase) // (period / 2)).astype(np.int64)
        cy = ((yy + phase) // (period / 2)).astype(np.int64)
        return ((cx + cy) % 2 == 0).astype(np.float32)
    return np.ones((n, n), dtype=np.float32)


def _background(scene: Scene, n: int, rng: np.random.Generator) -> np.ndarray:
    if scene.background in BACKGROUNDS:
        rgb = np.array(BACKGROUNDS[scene.background], dtype=np.float32) / 255.0
        return np.broadcast_to(rgb, (n, n, 3)).copy()
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    if scene.background == "gradient":
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]).astype(np.float32)
    if scene.background == "noise":
        low = rng.uniform(0, 1, (8, 8, 3)).astype(np.float32)
        return np.kron(low, np.ones((n // 8, n // 8, 1), dtype=np.float32))
    if scene.background == "grid":
        base = rng.uniform(0.3, 0.9, 3).astype(np.float32)
        lines = (((xx * n) % (n / 6) < 2 * _SS) | ((yy * n) % (n / 6) < 2 * _SS)).astype(np.float32)
        return base[None, None] * (1 - 0.5 * lines[..., None])
    raise ValueError(f"unknown background {scene.background!r}")


def _object_centres(scene: Scene, radius: float, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    if scene.count == 1:
        px, py = POSITIONS[scene.position]
        jitter = 0.05 * n
        return [(px * n + rng.uniform(-jitter, jitter), py * n + rng.uniform(-jitter, jitter))]
    slots = [(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)]
    chosen = rng.permutation(len(slots))[: scene.count]
    jitter = 0.04 * n
    return [(slots[i][0] * n + rng.uniform(-jitter, jitter), slots[i][1] * n + rng.uniform(-jitter, jitter))
            for i in chosen]


def render(scene: Scene) -> Image.Image:
    """Draw a scene as a 64x64 RGB image; the same scene always gives the same pixels."""
    rng = np.random.default_rng(scene.seed)
    n = IMAGE_SIZE * _SS
    bg = _background(scene, n, rng)
    img = bg.copy()
    color = np.array(COLORS[scene.color], dtype=np.float32) / 255.0
    color = np.clip(color + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32)
    scale = SIZES[scene.size] if scene.count == 1 else min(SIZES[scene.size], 0.2)
    radius = scale * n * rng.uniform(0.9, 1.1)
    pattern = _fill_pattern(scene.fill, n, rng)
    mask = np.zeros((n, n), dtype=np.float32)
    for cx, cy in _object_centres(scene, radius, n, rng):
        angle = rng.uniform(-0.2, 0.2)
        mask = np.maximum(mask, _shape_mask(scene.shape, cx, cy, radius, angle, n))
    if scene.fill == "outline" or scene.domain == "sketch":
        ink = mask - _erode(mask, 3 * _SS)
        gap = None
    else:
        ink = mask * pattern
        gap = mask - ink
    pale = 0.5 * color + 0.5 * 0.85  # a light tint of the color for pattern gaps
    img = img * (1 - ink[..., None]) + color * ink[..., None]
    if gap is not None:
        img = img * (1 - gap[..., None]) + pale * gap[..., None]
    if scene.domain == "sketch":  # black strokes on white paper: no color, no background
        ink = np.clip(1.0 - np.abs(img - bg).sum(-1, keepdims=True) * 4, 0, 1)
        img = np.broadcast_to(ink, img.shape).copy()
    # downsample (anti-aliasing)
    img = img.reshape(IMAGE_SIZE, _SS, IMAGE_SIZE, _SS, 3).mean(axis=(1, 3))
    if scene.domain == "noise":
        img = img + rng.normal(0, 0.18, img.shape)
    elif scene.domain == "clean":
        img = img + rng.normal(0, 0.02, img.shape)
    if scene.domain == "inverted":
        img = 1.0 - img
    img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(img, mode="RGB")


# ---------------------------------------------------------------- captions

def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def color_word(color: str, rng: np.random.Generator, synonym_rate: float = 0.08) -> str:
    """The color's plain name, or now and then one of its rarer synonyms."""
    if rng.random() < synonym_rate:
        return _pick(rng, COLOR_SYNONYMS[color])
    return color


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One caption of a scene, in one of many phrasings; attributes are mentioned at random."""
    col = color_word(scene.color, rng)
    fill = _pick(rng, FILL_WORDS[scene.fill])
    size = _pick(rng, SIZE_WORDS[scene.size])
    bg = scene.background
    art = "an" if (col[0] in "aeiou") else "a"
    if scene.count > 1:
        num = COUNT_WORDS[scene.count - 1]
        noun = SHAPE_PLURALS[scene.shape]
        phrasings = [
            f"{num} {col} {noun}.",
            f"a photo of {num} {col} {noun}.",
            f"{num} {fill} {noun} on a {bg} background.",
            f"a picture of {num} {size} {col} {noun}.",
            f"there are {num} {col} {noun} in the image.",
            f"{num} {noun}.",
            f"a photo of {num} {noun}, all of them {col}.",
            f"{num} {size} {fill} {col} {noun} on {bg}.",
        ]
    else:
        shape = scene.shape
        pos = scene.position
        phrasings = [
            f"a photo of a {shape}.",
            f"a {col} {shape}.",
            f"a photo of {art} {col} {shape}.",
            f"a photo of a {size} {col} {fill} {shape}.",
            f"a {fill} {shape} on a {bg} background.",
            f"{art} {col} {shape} in the {pos} of the image.",
            f"a {shape} in the {pos}.",
            f"an image of a {shape}, colored {col}.",
            f"a {size} {shape}.",
            f"this is a photo of a {col} {shape}.",
            f"one {fill} {col} {shape} on {bg}.",
            f"a {shape} shape, {col} and {fill}.",
            f"a {col} shape.",
            f"a {fill} shape.",
        ]
    text = _pick(rng, phrasings)
    if rng.random() < 0.25:  # longer captions, so that positions up to ~40 tokens are trained
        extra = [
            f" the background is {bg}.",
            f" it is {size} and {fill}.",
            " a simple synthetic picture with plain geometric objects drawn on a flat canvas.",
            f" the color is {col}.",
        ]
        text += _pick(rng, extra)
    return text


def with_domain(scene: Scene, domain: str, rng: np.random.Generator) -> Scene:
    """The same scene seen in a shifted domain (noise, sketch, new background, inverted)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {DOMAINS}")
    if domain == "new_background":
        return replace(scene, background=_pick(rng, NOVEL_BACKGROUNDS), domain=domain)
    return replace(scene, domain=domain)

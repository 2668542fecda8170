"""Scene of one synthetic video: objects, their motion, the camera, the lighting, the occlusion plan.

World coordinates are pixels of the frame at rest (camera centred, zoom 1), origin at the frame
centre, x right, y down. The camera maps world to frame with one global affine
``frame = z(t) (world - c(t)) + (W/2, H/2)`` applied to everything (background and objects).

Motion is simulated step by step (velocity + acceleration, rotation, log-scale drift); the scene
holds only the current state, so memory does not grow with the video length. Object kinds:

* ``stay``: bounces inside the region every camera view shows, so it is always in frame;
* ``roam``: bounces in a box larger than any view, so it enters and leaves the frame;
* ``guided``: a scheduled occluder whose position is set each frame from its target's state so
  that it passes fully over it (see :class:`OcclusionPlan`), then ``flee``: it flies on at constant
  velocity and is removed once outside every view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tubelet.data.synth.config import SynthConfig
from tubelet.data.synth.shapes import (CATEGORIES, CATEGORY_BY_ID, DISTRACTOR_SHAPES, SHAPES,
                                       TEXTURES, ShapeFn, occluder_shapes)


@dataclass
class Camera:
    """Pan ``c(t) = A sin(2 pi t / P + phi)`` per axis and zoom ``z(t) = exp(Z sin(...))``:
    closed-form in t, so nothing is stored per frame and the extremes are known up front."""
    amp: np.ndarray          # [2] pan amplitude (x, y) in world pixels
    period: np.ndarray       # [3] periods (x, y, zoom) in frames
    phase: np.ndarray        # [3]
    zoom_amp: float          # max |log z|

    def at(self, t: int) -> tuple[np.ndarray, float]:
        s = np.sin(2 * np.pi * t / self.period + self.phase)        # [3]
        return self.amp * s[:2], float(np.exp(self.zoom_amp * s[2]))

    def always_visible_half(self, height: int, width: int) -> np.ndarray:
        """[2] half extent (x, y) of the world region that every view shows."""
        zmax = math.exp(self.zoom_amp)
        return np.maximum(np.array([width / 2, height / 2]) / zmax - self.amp, 0.0)

    def max_view_half(self, height: int, width: int) -> np.ndarray:
        """[2] half extent (x, y) of the world region that some view may show."""
        zmin = math.exp(-self.zoom_amp)
        return np.array([width / 2, height / 2]) / zmin + self.amp


@dataclass
class Lighting:
    """Global drift applied to the whole frame: ``img * gain_c(t) + offset(t)`` (values 0..255)."""
    gain_amp: float
    color_amp: np.ndarray    # [3] per-channel gain drift amplitudes
    offset_amp: float        # in 0..255 units
    period: np.ndarray       # [5] gain, colour (shared), offset periods in frames (+ spare)
    phase: np.ndarray        # [5]

    def at(self, t: int) -> tuple[np.ndarray, float]:
        s = np.sin(2 * np.pi * t / self.period + self.phase)        # [5]
        gain = 1.0 + self.gain_amp * s[0] + self.color_amp * s[1:4]  # [3]
        return gain.astype(np.float32), float(self.offset_amp * s[4])


@dataclass
class OcclusionPlan:
    """An occluder passes over ``target``, hiding it fully for frames ``f0 .. f0 + n - 1``.

    At frame t the occluder sits at ``p_target + dir * rel * (t - t_c)``, ``t_c = f0 + (n-1)/2``,
    with inscribed radius ``R_occ = R_t + rel * (n-1)/2 + eps`` (``R_t`` the target's current
    circumscribed radius). Full cover holds when ``|t - t_c| rel + R_t <= R_occ``, i.e. on exactly
    the n planned frames; ``rel`` is chosen so the target pokes out on the frames just before and
    after: ``rel (m + 1) + h_min s_t > R_occ / r_in`` with ``m = (n-1)/2``.
    """
    target: "SceneObject"
    f0: int
    n: int
    direction: np.ndarray    # [2] unit vector
    extra: float             # visible margin on neighbour frames, fraction of R_t
    end: int                 # last guided frame; afterwards the occluder flees


@dataclass
class SceneObject:
    shape: str
    fn: ShapeFn
    texture: str
    tex_angle: float         # texture orientation in local coordinates (radians)
    color_a: np.ndarray      # [3] float32, 0..255
    color_b: np.ndarray      # [3] float32, 0..255
    depth: float             # painter's order: larger is nearer
    mode: str                # stay | roam | guided | flee
    pos: np.ndarray          # [2] world (x, y)
    vel: np.ndarray          # [2] world pixels / frame
    acc: np.ndarray          # [2] world pixels / frame^2
    angle: float
    omega: float             # radians / frame
    log_size: float          # log of the circumscribed radius (world pixels)
    dlog: float              # log-size change per frame
    instance_id: int = 0     # 1.. for annotated instances, 0 for distractors
    category_id: int = 0
    birth: int = 0           # first frame the object exists
    next_accel: int = 0      # frame at which the acceleration is redrawn
    plan: OcclusionPlan | None = None
    dead: bool = False

    @property
    def size(self) -> float:
        return math.exp(self.log_size)


@dataclass
class Scene:
    length: int
    camera: Camera
    lighting: Lighting
    objects: list[SceneObject]            # in painter's order (far to near)
    instances: list[SceneObject]          # annotated objects, ordered by instance_id
    stay_half: np.ndarray                 # [2] always-visible half extent
    view_half: np.ndarray                 # [2] half extent of the union of all views
    roam_half: np.ndarray                 # [2] roaming box: beyond it, outside every view
    size_bounds: tuple[float, float]      # log-size bounce range
    max_speed: float
    max_accel: float
    accel_every: int
    palette: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def draw_length(cfg: SynthConfig, rng: np.random.Generator) -> int:
    """The video length; always the first draw of a video's generator."""
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    return cfg.length if cfg.length > 0 else n


def _periods(rng: np.random.Generator, length: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    # Periods scale with the video so short clips still see drift and long ones drift slowly.
    period = max(length, 24) * rng.uniform(0.7, 2.0, size=k)
    return period, rng.uniform(0, 2 * np.pi, size=k)


def _unit(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    return np.array([math.cos(a), math.sin(a)])


def plan_scene(cfg: SynthConfig, rng: np.random.Generator) -> Scene:
    """Draw everything about a video that is fixed in time (O(objects) memory)."""
    H, W = cfg.height, cfg.width
    length = draw_length(cfg, rng)
    per, ph = _periods(rng, length, 3)
    camera = Camera(rng.uniform(0.3, 1.0, size=2) * cfg.camera_pan * H, per, ph,
                    cfg.camera_zoom * rng.uniform(0.3, 1.0))
    per, ph = _periods(rng, length, 5)
    lighting = Lighting(cfg.light_gain_drift * rng.uniform(0.5, 1.0),
                        cfg.light_color_drift * rng.uniform(-1.0, 1.0, size=3),
                        cfg.light_offset_drift * 255 * rng.uniform(0.5, 1.0), per, ph)
    stay_half = camera.always_visible_half(H, W)
    lo, hi = math.log(0.7 * cfg.min_size * H), math.log(1.3 * cfg.max_size * H)
    view_half = camera.max_view_half(H, W)
    scene = Scene(length, camera, lighting, [], [], stay_half, view_half,
                  view_half + math.exp(hi) * 1.05, (lo, hi),
                  cfg.max_speed * H, cfg.max_accel * H, cfg.accel_every)

    # Palette per category for this video; every instance of a category jitters it slightly.
    # Categories sharing a palette (the confusable pairs) share the shift too, so colour never
    # tells them apart.
    shifts: dict[tuple, np.ndarray] = {}
    for c in CATEGORIES:
        if c.colors not in shifts:
            shifts[c.colors] = rng.normal(0.0, cfg.video_color_jitter, size=3)
        scene.palette[c.id] = tuple(np.clip(np.asarray(col) + shifts[c.colors], 0, 1) * 255
                                    for col in c.colors)

    objects: list[SceneObject] = []
    n_inst = int(rng.integers(cfg.min_instances, cfg.max_instances + 1))
    cats: list[int] = []
    for i in range(n_inst):
        if cats and rng.random() < cfg.same_category_prob:
            cid = cats[int(rng.integers(len(cats)))]      # a look-alike of an earlier instance
        else:
            cid = CATEGORIES[int(rng.integers(len(CATEGORIES)))].id
        cats.append(cid)
        roam = rng.random() < cfg.exit_prob
        birth = int(rng.integers(1, max(2, length - 2))) if rng.random() < cfg.birth_prob else 0
        obj = _new_object(cfg, scene, rng, roam, cid=cid, instance_id=i + 1)
        obj.birth = min(birth, length - 1)
        objects.append(obj)
    for _ in range(int(rng.integers(cfg.min_distractors, cfg.max_distractors + 1))):
        objects.append(_new_object(cfg, scene, rng, rng.random() < cfg.exit_prob, cid=0))

    occluders = _schedule_occlusions(cfg, scene, rng, [o for o in objects if o.instance_id])
    for k, occ in enumerate(occluders):
        occ.instance_id = n_inst + k + 1
    scene.objects = sorted(objects + occluders, key=lambda o: o.depth)
    scene.instances = sorted((o for o in scene.objects if o.instance_id), key=lambda o: o.instance_id)
    return scene


def _appearance(cfg: SynthConfig, scene: Scene, rng: np.random.Generator, cid: int):
    """(shape, fn, texture, angle, color_a, color_b) of a category (cid > 0) or a distractor."""
    if cid:
        cat = CATEGORY_BY_ID[cid]
        a, b = scene.palette[cid]
        jit = rng.normal(0.0, cfg.instance_color_jitter * 255, size=3)   # same shift on A and B
        return (cat.shape, SHAPES[cat.shape].fn, cat.texture, 0.0,
                np.clip(a + jit, 0, 255).astype(np.float32), np.clip(b + jit, 0, 255).astype(np.float32))
    names = sorted(DISTRACTOR_SHAPES)
    shape = names[int(rng.integers(len(names)))]
    tex = TEXTURES[int(rng.integers(len(TEXTURES)))]
    return (shape, DISTRACTOR_SHAPES[shape], tex, float(rng.uniform(0, np.pi)),
            rng.uniform(0, 255, size=3).astype(np.float32), rng.uniform(0, 255, size=3).astype(np.float32))


def _new_object(cfg: SynthConfig, scene: Scene, rng: np.random.Generator, roam: bool, cid: int,
                instance_id: int = 0) -> SceneObject:
    shape, fn, tex, tex_angle, ca, cb = _appearance(cfg, scene, rng, cid)
    H, T = cfg.height, scene.length
    size = rng.uniform(cfg.min_size, cfg.max_size) * H
    speed = rng.uniform(0.0, 1.0) * scene.max_speed
    direction = _unit(rng)
    if roam:
        # Enter (start outside every view, heading in) or leave (start inside, outside by frame k).
        speed = rng.uniform(0.5, 1.0) * scene.max_speed
        axis = int(rng.integers(2))
        side = 1.0 if rng.random() < 0.5 else -1.0
        edge = scene.view_half[axis] + 1.02 * size            # just outside every view
        inside = scene.stay_half.copy()
        pos = rng.uniform(-inside, inside)
        tilt = rng.uniform(-0.5, 0.5)
        direction = np.zeros(2)
        direction[axis], direction[1 - axis] = math.cos(tilt), math.sin(tilt)
        if rng.random() < 0.5:   # enter after k frames
            k = rng.uniform(0, max(1.0, T / 4))
            pos[axis] = side * (edge + speed * k)
            direction *= -side
        else:                    # leave around frame k
            k = rng.uniform(T / 2, max(T / 2 + 1, T - 1))
            pos[axis] = np.clip(side * edge - side * speed * k * direction[axis],
                                -inside[axis], inside[axis])
            direction *= side
        acc = np.zeros(2)
    else:
        pos = rng.uniform(-1.0, 1.0, size=2) * np.maximum(scene.stay_half - size - 1.0, 0.0)
        acc = _unit(rng) * rng.uniform(0, scene.max_accel)
    return SceneObject(
        shape=shape, fn=fn, texture=tex, tex_angle=tex_angle, color_a=ca, color_b=cb,
        depth=float(rng.random()), mode="roam" if roam else "stay", pos=pos.astype(np.float64),
        vel=direction * speed, acc=acc, angle=float(rng.uniform(0, 2 * np.pi)),
        omega=float(rng.uniform(-cfg.max_rot_speed, cfg.max_rot_speed)),
        log_size=math.log(size), dlog=float(rng.uniform(-cfg.max_scale_rate, cfg.max_scale_rate)),
        instance_id=instance_id, category_id=cid,
        next_accel=int(rng.geometric(1.0 / scene.accel_every)))


def _schedule_occlusions(cfg: SynthConfig, scene: Scene, rng: np.random.Generator,
                         instances: list[SceneObject]) -> list[SceneObject]:
    """One occluder per (staying instance, slot of ``occlusion_period`` frames) with probability
    ``full_occlusion_prob``; the hidden run needs a visible frame before and after it."""
    T, P = scene.length, cfg.occlusion_period
    shapes = occluder_shapes()
    out: list[SceneObject] = []
    for target in instances:
        if target.mode != "stay":
            continue
        for j in range(max(1, T // P)):
            if rng.random() >= cfg.full_occlusion_prob:
                continue
            n = int(rng.integers(cfg.min_occluded_frames, cfg.max_occluded_frames + 1))
            lo = max(target.birth + 1, j * P)                   # a visible frame before
            hi = min(T - 1 - n, (j + 1) * P - n)                # and one after
            if lo > hi:
                continue
            f0 = int(rng.integers(lo, hi + 1))
            # A shape sticking out of its inscribed disc by kappa needs rel (1 - m kappa) > gap:
            # keep 1 - m kappa >= 0.4 (a hexagon hides up to 8 frames, a disc any number).
            m = (n - 1) / 2.0
            occ_cats = [c.id for c in CATEGORIES if c.shape in shapes
                        and 1.0 - m * (1.0 / SHAPES[c.shape].r_in - 1.0) >= 0.4]
            cid = occ_cats[int(rng.integers(len(occ_cats)))]
            occ = _new_object(cfg, scene, rng, False, cid=cid)
            occ.mode, occ.depth = "guided", target.depth + 1e-9 * (len(out) + 1)  # just above
            occ.birth = max(0, f0 - int(rng.integers(1, 4)))
            occ.plan = OcclusionPlan(target, f0, n, _unit(rng), float(rng.uniform(0.25, 0.5)),
                                     end=f0 + n + 1)
            out.append(occ)
    return out


# ----------------------------------------------------------------------------------- motion
def _bounce(obj: SceneObject, half: np.ndarray, mirror: bool) -> None:
    """Reflect the velocity on the walls of ``[-half, half]`` when heading outwards (so an object
    that starts outside can come in); ``mirror`` also reflects the position back inside."""
    for a in range(2):
        for wall in (half[a], -half[a]):
            out = obj.pos[a] - wall
            if out * wall > 0 or (wall == 0 and out != 0):      # beyond this wall
                if mirror:
                    obj.pos[a] = float(np.clip(wall - out, -half[a], half[a]))
                if obj.vel[a] * out > 0:
                    obj.vel[a] = -obj.vel[a]
                    obj.acc[a] = -obj.acc[a]


def step(scene: Scene, t: int, rng: np.random.Generator) -> None:
    """Advance every free object from frame t-1 to t (none at t = 0), then place the guided
    occluders at t."""
    lo, hi = scene.size_bounds
    for obj in scene.objects if t > 0 else ():
        if obj.dead or obj.mode == "guided":
            continue
        if obj.mode == "stay" and t >= obj.next_accel:
            obj.acc = _unit(rng) * rng.uniform(0, scene.max_accel)
            obj.next_accel = t + int(rng.geometric(1.0 / scene.accel_every))
        elif obj.mode == "roam":  # along the velocity only, so the enter/leave plan holds
            sp = float(np.hypot(*obj.vel))
            obj.acc = obj.vel / sp * min(scene.max_accel, 0.05 * sp) if sp > 0 else obj.acc
        obj.vel = obj.vel + obj.acc
        sp = float(np.hypot(*obj.vel))
        if obj.mode != "flee" and sp > scene.max_speed:
            obj.vel *= scene.max_speed / sp
        obj.pos = obj.pos + obj.vel
        obj.angle += obj.omega
        obj.log_size += obj.dlog
        if obj.mode != "flee" and not lo <= obj.log_size <= hi:
            obj.dlog = -obj.dlog
            obj.log_size = min(max(obj.log_size, lo), hi)
        if obj.mode == "stay":  # 1 px margin: a staying object never touches the frame border
            _bounce(obj, np.maximum(scene.stay_half - obj.size - 1.0, 0.0), mirror=True)
        elif obj.mode == "roam":
            _bounce(obj, scene.roam_half, mirror=False)
        elif np.any(np.abs(obj.pos) > scene.roam_half + obj.size):
            obj.dead = True                                     # fled outside every view
    for obj in scene.objects:
        if obj.mode == "guided":
            _guide(obj, t)


def _guide(occ: SceneObject, t: int) -> None:
    """Place a scheduled occluder from its target's state at frame t (see OcclusionPlan)."""
    plan = occ.plan
    tgt = plan.target
    geo_t, geo_o = SHAPES[tgt.shape], SHAPES[occ.shape]
    r_t = tgt.size                                   # circumscribed radius (r_out = 1)
    m = (plan.n - 1) / 2.0
    kappa = 1.0 / geo_o.r_in - 1.0                   # how far the occluder sticks out of its disc
    eps = 0.02 * r_t
    gap = r_t * (1.0 - geo_t.h_min) + kappa * r_t + eps * (1 + kappa)
    rel = (gap + plan.extra * r_t) / (1.0 - m * kappa)     # >= 0.4 by the scheduler
    r_occ = r_t + rel * m + eps                      # inscribed radius of the occluder
    occ.pos = tgt.pos + plan.direction * rel * (t - (plan.f0 + m))
    occ.log_size = math.log(r_occ / geo_o.r_in)
    occ.angle += occ.omega
    if t >= plan.end:                                # fly on, then leave the view for good
        occ.mode, occ.vel, occ.dlog = "flee", tgt.vel + plan.direction * rel, 0.0
        occ.acc = np.zeros(2)

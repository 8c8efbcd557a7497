"""A stylised demo head with all 52 ARKit shape keys, built from code.

    python scripts/demo_head.py [--out assets/demo_head.blend]

`build_head()` makes one head in the current scene; the CLI builds one in an empty file and saves
it compressed. Built from code (not sculpted) so the shipped file can be rebuilt, reviewed and
changed in one place, and so every key is a deformation that does what its ARKit name says.

Conventions (the add-on relies on them): the head faces -Y with Z up; "Left" is the character's
own left, +X (ARKit names describe the face's own sides); the object origin is the neck pivot, so
the add-on's head yaw/pitch/roll (object rotation) turns the head on its neck. The shoulders are a
second object that follows the head's location but not its rotation, so a turn reads as a turn.

Geometry is numpy in "head units" (cranium radius ~1), scaled to metres at the end. The skin is one
closed surface with the pole of its rings at the mouth: the rings run from the back of the mouth
cavity, over the lips, across the face to the back of the head, so the lips and the dark mouth
interior are part of the skin and the mouth opens without holes or seams.

Each shape key is a row of `KEYS`: named regions of the face (`_regions`) moved by set amounts, an
eye pose or a turn of the jaw; each Right key is its Left row mirrored.
"""

import argparse
import os
import sys
from typing import NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository

from model_runtime.channels import ARKIT_NAMES  # noqa: E402
from model_runtime.paths import ASSETS  # noqa: E402

UNIT = 0.105                            # metres per head unit: the head is ~0.24 m chin to crown
PIVOT = np.array([0.0, 0.10, -1.12])    # neck pivot in head units = the object origin
NPHI = 48                               # segments around the mouth (even: corners at 0 and pi)
EYE_R = 0.19                            # eyeball radius
EYE_C = np.array([0.33, -0.80, 0.04])   # left eye centre (the right one is mirrored)
HINGE = np.array([0.0, -0.05, -0.27])   # jaw hinge, in front of and below the ears
JAW_ANGLE = 0.34                        # jawOpen = 1 rotates the jaw this far (radians)

# Lid edges as angles about the eye's X axis (0 = straight ahead, + = up).
UP_EDGE, LOW_EDGE = 0.62, -0.70         # neutral: the whole iris shows (bright, readable eyes)
UP_CLOSED, LOW_CLOSED = -0.30, -0.40    # blink: the lids meet below the centre, upper overlaps lower
LID_TOP = 2.3                           # where the lids end, behind the eyeball (inside the skin)

# Material name suffixes and viewport display colours (linear RGBA: what Workbench shows in MATERIAL
# colour mode). None: from build_head's arguments (lips and brows are derived from skin and hair).
MATERIALS = (
    ("Skin", None), ("Lips", None), ("Mouth", (0.10, 0.02, 0.03, 1.0)), ("Teeth", (0.95, 0.94, 0.90, 1.0)),
    ("Tongue", (0.80, 0.30, 0.32, 1.0)), ("Sclera", (0.97, 0.97, 0.97, 1.0)), ("Iris", (0.18, 0.42, 0.62, 1.0)),
    ("Pupil", (0.02, 0.02, 0.03, 1.0)), ("Brow", None), ("Lash", (0.08, 0.05, 0.05, 1.0)),
    ("Hair", None),
)
M = {name: i for i, (name, _) in enumerate(MATERIALS)}


# ---------------------------------------------------------------- small numpy helpers

def _ss(e0, e1, x):
    """Smoothstep from e0 to e1 (either order)."""
    t = np.clip((np.asarray(x, float) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blob(p, centre, radii):
    """Compact smooth falloff: 1 at centre, exactly 0 outside the ellipsoid (so keys stay local)."""
    d2 = (((p - centre) / np.asarray(radii, float)) ** 2).sum(-1)
    return np.clip(1.0 - d2, 0.0, 1.0) ** 2


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate(p, pivot, axis, angle):
    """Rotate points about an axis through pivot; angle may be per point (Rodrigues)."""
    k = _unit(axis)
    v = p - pivot
    a = np.broadcast_to(np.asarray(angle, float), v.shape[:1])[:, None]
    c, s = np.cos(a), np.sin(a)
    return pivot + v * c + np.cross(k, v) * s + k * (v @ k)[:, None] * (1.0 - c)


def _skull(dirs):
    """Skin point along unit directions from the cranium centre: an ellipsoid, then the face warp."""
    axes = np.array([0.88, 0.96, 1.0])
    p = dirs / np.sqrt(((dirs / axes) ** 2).sum(-1))[..., None]
    return _warp(p)


def _warp(p):
    """Narrow the jaw and bring the lower face forward: a flat cartoon face under a big cranium."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    low = _ss(0.05, -1.0, z)
    x = x * (1.0 - 0.20 * low)
    y = y - 0.18 * _ss(-0.15, -0.75, z) * _ss(0.1, -0.6, y)
    z = z * (1.0 + 0.10 * low)
    # chubby cheeks: a little fullness beside the mouth
    out = np.stack([x, y, z], -1)
    for side in (1.0, -1.0):
        out = out + _unit(out) * (0.05 * _blob(out, [0.5 * side, -0.62, -0.35], [0.35, 0.4, 0.3]))[..., None]
    return out


def _front_y(x, z):
    """Y of the skin's front surface at (x, z) (inverts the warp by a few fixed-point steps)."""
    axes = np.array([0.88, 0.96, 1.0])
    x, z = np.asarray(x, float), np.asarray(z, float)
    gx, gz = x.copy(), z.copy()
    for _ in range(8):
        rr = np.clip(1.0 - (gx / axes[0]) ** 2 - (gz / axes[2]) ** 2, 1e-4, None)
        q = _warp(np.stack([gx, -axes[1] * np.sqrt(rr), gz], -1))
        gx, gz = gx + (x - q[..., 0]), gz + (z - q[..., 2])
    return q[..., 1]


def _normals(verts, faces):
    """Area-weighted vertex normals (numpy), for keys that push skin outwards."""
    n = np.zeros_like(verts)
    for f in faces:
        f = np.asarray(f)
        fn = np.cross(verts[f[1]] - verts[f[0]], verts[f[-1]] - verts[f[0]])
        if len(f) == 4:
            fn = fn + np.cross(verts[f[3]] - verts[f[2]], verts[f[1]] - verts[f[2]])
        n[f] += fn
    return _unit(n + 1e-12)


class _Mesh:
    """Parts accumulate here: vertices, faces, a material per face, named vertex groups."""

    def __init__(self):
        self.verts, self.faces, self.mats = [], [], []
        self.groups = {}
        self.n = 0

    def add(self, verts, faces, mats, group, outward=None):
        """Add a part; `outward(face_centres) -> directions` orients its faces so normals point out."""
        verts = np.asarray(verts, float).reshape(-1, 3)
        mats = np.broadcast_to(np.asarray(mats), (len(faces),))
        if outward is not None:
            fc = np.array([verts[list(f)].mean(0) for f in faces])
            fn = np.array([np.cross(verts[f[1]] - verts[f[0]], verts[f[2]] - verts[f[0]]) for f in faces])
            if (np.einsum("ij,ij->i", fn, outward(fc)) < 0).mean() > 0.5:
                faces = [tuple(reversed(f)) for f in faces]
        idx = np.arange(self.n, self.n + len(verts))
        self.verts.append(verts)
        self.faces += [tuple(int(i) + self.n for i in f) for f in faces]
        self.mats += list(mats)
        self.groups[group] = idx
        self.n += len(verts)
        return idx


def _rings_surface(rings, start=None, end=None, closed=True):
    """Quads between consecutive rings (R, K, 3), optionally capped by pole points.

    Returns vertices, faces and each face's band: band i lies between ring i and i+1; the start
    cap is band -1 and the end cap band R-1 (so materials can be chosen per band)."""
    rings = np.asarray(rings, float)
    r, k = rings.shape[:2]
    verts = rings.reshape(-1, 3)
    faces, bands = [], []
    off = 0
    if start is not None:
        verts = np.vstack([start, verts])
        off = 1
    kk = k if closed else k - 1
    if start is not None:
        for j in range(kk):
            faces.append((0, off + (j + 1) % k, off + j))
            bands.append(-1)
    for i in range(r - 1):
        for j in range(kk):
            a, b = off + i * k + j, off + i * k + (j + 1) % k
            faces.append((a, b, b + k, a + k))
            bands.append(i)
    if end is not None:
        e = len(verts)
        verts = np.vstack([verts, end])
        last = off + (r - 1) * k
        for j in range(kk):
            faces.append((last + j, last + (j + 1) % k, e))
            bands.append(r - 1)
    return verts, faces, np.asarray(bands)


def _ellipsoid(centre, radii, n_rings, n_seg, poles_on_z=False, rot_z=0.0):
    """A UV ellipsoid (poles on Y, the front pole first, or on Z), turned by rot_z about Z."""
    th = np.linspace(0, np.pi, n_rings + 2)[1:-1]
    ps = np.linspace(0, 2 * np.pi, n_seg, endpoint=False)
    t, p = np.meshgrid(th, ps, indexing="ij")
    a, b, c = np.sin(t) * np.cos(p), -np.cos(t), np.sin(t) * np.sin(p)
    poles = np.array([[0, -1, 0], [0, 1, 0]], float)
    if poles_on_z:
        a, b, c = a, c, -b
        poles = poles[:, [0, 2, 1]]
    r = np.asarray(radii, float)
    rz = np.array([[np.cos(rot_z), -np.sin(rot_z), 0], [np.sin(rot_z), np.cos(rot_z), 0], [0, 0, 1]])
    rings = (np.stack([a, b, c], -1) * r) @ rz.T + centre
    poles = (poles * r) @ rz.T + centre
    v, f, _ = _rings_surface(rings, poles[0], poles[1])
    return v, f


def _away_from(point):
    return lambda fc: fc - point


# ---------------------------------------------------------------- the parts

def _mouth_frame():
    """Pole direction of the skin rings (the mouth) and the two in-plane axes (u: +X, v: up)."""
    d = _unit([0.0, -1.0, -0.58])
    u = np.array([1.0, 0.0, 0.0])
    v = _unit(np.array([0.0, 0.0, 1.0]) - d[2] * d)
    return d, u, v


def _skin_shell():
    """Mouth cavity -> lips -> skin, one closed surface. Returns its data and per-vertex params."""
    d, u, v = _mouth_frame()
    phi = np.linspace(0, 2 * np.pi, NPHI, endpoint=False)   # 0: the left corner (+X), pi/2: up
    cphi, sphi = np.cos(phi), np.sin(phi)

    # Skin rings: an ellipse around the mouth in angle space that widens to the back pole. Rings
    # are dense near the mouth, where the face moves, and sparse on the back of the head.
    ns = 30
    s = np.linspace(0.0, 1.0, ns + 1)[:-1]
    grow = s ** 1.25
    half_w, half_h = 0.36, 0.085                 # the lips' outer edge, in radians
    alpha = half_w + (np.pi - half_w) * grow
    beta = half_h + (np.pi - half_h) * grow
    smile = 0.035 * np.exp(-s / 0.06)             # corners turned up a little: a friendly neutral
    a = alpha[:, None] * cphi[None]
    b = beta[:, None] * sphi[None] + smile[:, None] * (cphi[None] ** 2)
    theta = np.hypot(a, b)
    psi = np.arctan2(b, a)
    dirs = (np.cos(theta)[..., None] * d + np.sin(theta)[..., None]
            * (np.cos(psi)[..., None] * u + np.sin(psi)[..., None] * v))
    skin = _skull(dirs)
    back_pole = _skull(-d[None])[0]

    # Lips: from the skin's edge B bulge out and meet the partner lip on the slit line S.
    edge = skin[0]
    t_s = skin[1] - skin[0]
    t_p = np.roll(edge, -1, 0) - np.roll(edge, 1, 0)
    nrm = _unit(np.cross(t_p, t_s))
    nrm = np.where((np.einsum("ij,ij->i", nrm, edge) < 0)[:, None], -nrm, nrm)
    top, low = NPHI // 4, 3 * NPHI // 4
    zc = edge[low, 2] + 0.52 * (edge[top, 2] - edge[low, 2])     # slit: upper lip a little thinner
    corner = edge[0]
    mirror = (-np.arange(NPHI)) % NPHI                           # phi -> -phi (upper <-> lower)
    # (the slit stops just short of the corner so the corner's lip vertices never coincide)
    slit = np.stack([0.97 * corner[0] * cphi,
                     0.5 * (edge[:, 1] + edge[mirror, 1]) - 0.03 * sphi ** 2,
                     zc + (corner[2] - zc) * cphi ** 2 - 0.012 * sphi ** 2], -1)
    lip_h = np.where(sphi >= 0, 0.045, 0.055) * np.abs(sphi) ** 0.5
    taus = np.arange(1, 8) / 7.0
    lips = np.array([edge + tau * (slit - edge) + nrm * (lip_h * np.sin(np.pi * tau) ** 0.6)[:, None]
                     for tau in taus])

    # Mouth cavity behind the slit: a dark bag, roomy enough for teeth and tongue.
    cav = np.array([0.0, slit[top, 1] + 0.32, zc - 0.03])
    cw, ch, cd = 0.28, 0.17, 0.30
    inner = slit + np.array([0.0, 0.035, 0.0]) + np.outer(sphi, [0.0, 0.0, 0.012])
    bag = [inner]
    for g in (0.30, 0.48, 0.66, 0.84):
        g *= np.pi
        bag.append(cav + np.stack([cw * np.sin(g) * cphi, -cd * np.cos(g) * np.ones(NPHI),
                                   ch * np.sin(g) * sphi], -1))
    bag_pole = cav + np.array([0.0, cd, 0.0])

    rings = np.concatenate([np.array(bag[::-1]), lips[::-1], skin])   # lips reversed: slit -> edge
    nb = len(bag)
    # rho per ring: < 0 cavity, 0..1 lips (0 at the slit, 1 at the skin edge), > 1 skin (1 + s)
    rho = np.concatenate([-np.arange(nb, 0, -1) / nb, 1.0 - taus[::-1], 1.0 + s])
    verts, faces, bands = _rings_surface(rings, bag_pole, back_pole)
    band_rho = np.where(bands < 0, -2.0, rho[np.clip(bands, 0, len(rho) - 1)])
    mats = np.where(band_rho < -1e-6, M["Mouth"], np.where(band_rho < 1.0 - 1e-6, M["Lips"], M["Skin"]))

    prm = {
        "phi": np.concatenate([[np.pi * 1.5], np.tile(phi, len(rings)), [np.pi * 0.5]]),
        "rho": np.concatenate([[-1.0], np.repeat(rho, NPHI), [2.0]]),
        "lip_h": np.concatenate([[0.0], np.tile(lip_h, len(rings)), [0.0]]),
        "slit": slit, "zc": zc, "corner": corner, "cav": cav, "edge": edge, "nrm": nrm,
    }
    return verts, faces, mats, prm


def _teeth(prm, upper):
    """A rounded arch of teeth behind the lips (hidden while the mouth is closed)."""
    zc, y0 = prm["zc"], prm["slit"][NPHI // 4, 1] + 0.075
    ts = np.linspace(-1, 1, 13)
    x = 0.20 * ts
    y = y0 + 1.1 * x ** 2 + (0.0 if upper else 0.012)
    z0, z1 = (zc + 0.006, zc + 0.062) if upper else (zc - 0.058, zc - 0.006)
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    zm, hz, hy = 0.5 * (z0 + z1), 0.5 * (z1 - z0), 0.018
    rings = np.stack([np.repeat(x[:, None], 8, 1),
                      y[:, None] + hy * np.clip(1.4 * np.cos(ang), -1, 1)[None],
                      zm + hz * np.clip(1.4 * np.sin(ang), -1, 1)[None] * np.ones_like(x)[:, None]], -1)
    # squash the arch ends in so the caps are small
    rings[[0, -1]] = rings[[1, -2]] * 0.5 + rings[[0, -1]] * 0.5
    centre = np.array([0.0, y0 + 0.02, zm])
    return _rings_surface(rings, rings[0].mean(0), rings[-1].mean(0)), centre


def _lid(eye_c, upper):
    """An eyelid: a strip of a sphere around the eyeball, swung about the eye's X axis.

    Rows run from behind the eyeball (row param 0) to the lid edge (1); a last row tucks the edge in
    to the eyeball so the lid has visible thickness (dark on the upper lid: the lash line)."""
    r = EYE_R * (1.16 if upper else 1.09)
    beta = np.linspace(0.22, np.pi - 0.22, 15)
    t = np.linspace(0.0, 1.0, 8)
    edge = UP_EDGE if upper else LOW_EDGE
    far = LID_TOP if upper else -LID_TOP
    a = far + t * (edge - far)
    rows = [_lid_row(eye_c, r, beta, ai) for ai in a]
    rows.append(_lid_row(eye_c, EYE_R * 1.015, beta, edge))
    rows = np.array(rows)
    verts, faces, bands = _rings_surface(rows, closed=False)
    nrow = len(t)
    mats = np.where(bands == nrow - 1, M["Lash"] if upper else M["Skin"], M["Skin"])
    tpar = np.concatenate([np.repeat(t, len(beta)), np.ones(len(beta))])
    rpar = np.concatenate([np.full(len(t) * len(beta), r), np.full(len(beta), EYE_R * 1.015)])
    return verts, faces, mats, {"t": tpar, "r": rpar, "beta": np.tile(beta, nrow + 1), "far": far}


def _lid_row(eye_c, r, beta, a):
    return eye_c + r * np.stack([np.cos(beta), -np.sin(beta) * np.cos(a), np.sin(beta) * np.sin(a)], -1)


def _lid_pos(eye_c, lp, a_edge, scale=1.0):
    """Lid vertices for another edge angle (rows keep their share of the arc)."""
    a = lp["far"] + lp["t"] * (a_edge - lp["far"])
    r = lp["r"] * (1.0 + (scale - 1.0) * lp["t"])       # swell towards the edge only
    beta = lp["beta"]
    p = eye_c + r[:, None] * np.stack([np.cos(beta), -np.sin(beta) * np.cos(a), np.sin(beta) * np.sin(a)], -1)
    return p


def _brow(side):
    """A thick cartoon brow swept along an arch over the eye, lying on the forehead."""
    t = np.linspace(0.0, 1.0, 12)
    x = side * (0.11 + 0.40 * t)
    z = EYE_C[2] + 0.30 + 0.07 * np.sin(np.pi * (0.25 + 0.75 * t)) - 0.01 * t
    y = _front_y(x, z) - 0.012
    line = np.stack([x, y, z], -1)
    tan = _unit(np.gradient(line, axis=0))
    nrm = _unit(line * np.array([1 / 0.88 ** 2, 1 / 0.96 ** 2, 1.0]))      # ellipsoid normal
    up = _unit(np.cross(nrm, tan) * side)
    hb = 0.05 * np.sin(np.pi * (0.04 + 0.92 * t)) ** 0.35 * (1.0 - 0.25 * t)
    tb = 0.028 * np.sin(np.pi * (0.04 + 0.92 * t)) ** 0.35
    ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    rings = (line[:, None] + up[:, None] * (hb[:, None] * np.cos(ang)[None])[..., None]
             + nrm[:, None] * (tb[:, None] * np.sin(ang)[None])[..., None])
    v, f, _ = _rings_surface(rings, line[0] - tan[0] * 0.01, line[-1] + tan[-1] * 0.01)
    tpar = np.concatenate([[0.0], np.repeat(t, len(ang)), [1.0]])
    return v, f, tpar


def _hair():
    """A cap over the cranium: low at the back, a hairline high on the forehead, above the ears."""
    n_seg, n_rings = 48, 11
    psi = np.linspace(0, 2 * np.pi, n_seg, endpoint=False)          # 0 = front (-Y)
    th_max = 1.30 - 0.55 * np.cos(psi) + 0.10 * np.cos(2 * psi)
    f = np.linspace(0, 1, n_rings + 1)[1:]
    th = f[:, None] * th_max[None]
    dirs = np.stack([np.sin(th) * np.sin(psi)[None], -np.sin(th) * np.cos(psi)[None], np.cos(th)], -1)
    axes = np.array([0.88, 0.96, 1.0])
    base = dirs / np.sqrt(((dirs / axes) ** 2).sum(-1))[..., None]
    puff = 1.0 + 0.075 * (1.0 - f ** 3)[:, None] + 0.02 * np.cos(psi)[None] * (1 - f[:, None])
    rings = _warp(base * puff[..., None])
    rings[-1] = _warp(base[-1] * 0.985)                              # tuck the edge into the skin
    top = np.array([0.0, 0.0, 1.0 * 1.075])
    return _rings_surface(rings, top)


def _build_geometry():
    """All parts in head units. Returns the mesh data, per-vertex parameters and the shape keys."""
    mesh = _Mesh()
    sv, sf, smat, prm = _skin_shell()
    shell = mesh.add(sv, sf, smat, "shell", _away_from(np.array([0.0, 0.0, 0.0])))

    (tv, tf, _), tc = _teeth(prm, True)
    teeth_u = mesh.add(tv, tf, M["Teeth"], "teeth_upper", _away_from(tc))
    (tv, tf, _), tc = _teeth(prm, False)
    teeth_l = mesh.add(tv, tf, M["Teeth"], "teeth_lower", _away_from(tc))

    cav = prm["cav"]
    tongue_c = cav + np.array([0.0, 0.02, -0.075])
    v, f = _ellipsoid(tongue_c, (0.15, 0.22, 0.05), 8, 14)
    tongue = mesh.add(v, f, M["Tongue"], "tongue", _away_from(tongue_c))

    eyes, lids, brows = {}, {}, {}
    for side, tag in ((1.0, "L"), (-1.0, "R")):
        ec = EYE_C * np.array([side, 1.0, 1.0])
        # the front rings at fixed angles so the pupil and iris edges are crisp circles
        th = np.array([0.13, 0.26, 0.40, 0.54, 0.68, 0.85, 1.05, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.0])
        ps = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        tt, pp = np.meshgrid(th, ps, indexing="ij")
        rings = ec + EYE_R * np.stack([np.sin(tt) * np.cos(pp), -np.cos(tt), np.sin(tt) * np.sin(pp)], -1)
        v, f, bands = _rings_surface(rings, ec + [0, -EYE_R, 0], ec + [0, EYE_R, 0])
        mid = np.concatenate([[0.0], (th[:-1] + th[1:]) / 2, [np.pi]])[bands + 1]
        mats = np.where(mid < 0.26, M["Pupil"], np.where(mid < 0.54, M["Iris"], M["Sclera"]))
        eyes[tag] = (mesh.add(v, f, mats, f"eye_{tag}", _away_from(ec)), ec)
        for upper, part in ((True, "lid_upper"), (False, "lid_lower")):
            v, f, mats, lp = _lid(ec, upper)
            lids[(tag, upper)] = (mesh.add(v, f, mats, f"{part}_{tag}", _away_from(ec)), lp)
        v, f, tpar = _brow(side)
        brows[tag] = (mesh.add(v, f, M["Brow"], f"brow_{tag}", _away_from(v.mean(0) + [0, 0.1, 0])), tpar)

    nose_c = np.array([0.0, _front_y(0.0, -0.20) - 0.035, -0.20])
    v, f = _ellipsoid(nose_c, (0.115, 0.12, 0.12), 9, 16)
    v[:, 2] -= 0.04 * _ss(0.0, -0.12, v[:, 1] - nose_c[1])                # the tip droops a little
    nose = mesh.add(v, f, M["Skin"], "nose", _away_from(nose_c))

    for side, tag in ((1.0, "L"), (-1.0, "R")):
        c = np.array([0.90 * side, 0.08, -0.06])        # flat ovals, turned so their backs stand out
        v, f = _ellipsoid(c, (0.16, 0.06, 0.23), 7, 12, poles_on_z=True, rot_z=side * 1.12)
        mesh.add(v, f, M["Skin"], f"ear_{tag}", _away_from(c))

    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    zs = np.linspace(-1.95, -0.55, 5)
    neck_c = np.array([0.0, 0.12])
    rings = np.stack([np.broadcast_to(0.40 * np.cos(ang), (5, 24)),
                      np.broadcast_to(neck_c[1] + 0.37 * np.sin(ang), (5, 24)),
                      np.broadcast_to(zs[:, None], (5, 24))], -1)
    v, f, _ = _rings_surface(rings, closed=True)
    mesh.add(v, f, M["Skin"], "neck", lambda fc: (fc - [0.0, neck_c[1], 0.0]) * [1.0, 1.0, 0.0])

    v, f, _ = _hair()
    mesh.add(v, f, M["Hair"], "hair", _away_from(np.array([0.0, 0.0, 0.0])))

    verts = np.vstack(mesh.verts)
    parts = dict(mesh=mesh, prm=prm, shell=shell, teeth_u=teeth_u, teeth_l=teeth_l, tongue=tongue,
                 tongue_c=tongue_c, eyes=eyes, lids=lids, brows=brows, nose=nose, nose_c=nose_c)
    keys, jaw_w = _shape_keys(verts, parts)
    return mesh, verts, keys, jaw_w


# ---------------------------------------------------------------- shape keys

class Key(NamedTuple):
    """One shape key as data; `_key_target` applies it, in this order:

    moves  (weight, amount) pairs, summed. The weight is the product of the regions it names
           (`_regions`, e.g. "mouth_area * rel_z"); the amount is a displacement (x, y, z) in head
           units or, where the weight names a per-vertex direction (normal, jaw_open), its scale.
    eye    this side's eye pose (`_pose_eye`): lid edge angles, the eyeball's turn.
    jaw    the jaw-weighted vertices turn about the hinge by jaw * JAW_ANGLE.
    """
    moves: tuple = ()
    eye: dict = None
    jaw: float = 0.0


# The 52 ARKit keys. A "...Left" key is the character's own left (+X); its "...Right" twin is the
# mirror image: the same row with every region taken on the right side and every X flipped.
KEYS = {
    # ---- jaw
    "jawOpen": Key(jaw=1.0),
    "jawForward": Key([("jaw", (0.0, -0.09, 0.0))]),
    "jawLeft": Key([("jaw", (0.09, 0.0, 0.0))]),
    # lips meet while the jaw is open: it cancels jawOpen's lip motion, mostly the lower lip's
    "mouthClose": Key([("jaw_open * lower_lips", -0.8), ("lip_gap * upper_lips", (0.0, 0.0, 0.2))]),

    # ---- lips: funnel (open "O", lips flared forward), pucker (closed, narrow, pushed forward)
    "mouthFunnel": Key([("mouth_or_lips * rel_x", (-0.38, 0.0, 0.0)), ("mouth_area", (0.0, -0.10, 0.0)),
                        ("bulge", (0.0, -0.05, 0.0)), ("lip_opening", (0.0, 0.0, 0.085)),
                        ("lip_flare", (0.0, 0.0, 0.05))]),
    "mouthPucker": Key([("mouth_or_lips * rel_x", (-0.55, 0.0, 0.0)), ("mouth_area", (0.0, -0.11, 0.0)),
                        ("bulge", (0.0, -0.05, 0.0)), ("mouth_area * off_lips * rel_z", (0.0, 0.0, -0.25)),
                        ("normal * bulge", 0.03)]),
    "mouthLeft": Key([("mouth_shift", (0.10, 0.02, 0.0))]),

    # ---- corners: smile (up and back), frown (down), dimple (back), stretch (out and down)
    "mouthSmileLeft": Key([("corner", (0.07, 0.08, 0.14)), ("smile_cheek", (0.015, -0.03, 0.05))]),
    "mouthFrownLeft": Key([("corner", (0.01, 0.01, -0.12))]),
    "mouthDimpleLeft": Key([("dimple", (0.04, 0.06, 0.0))]),
    "mouthStretchLeft": Key([("stretch", (0.08, 0.03, -0.045))]),
    # press: lips flatten and squeeze together on this side
    "mouthPressLeft": Key([("normal * lip_h * bulge * press", -0.8), ("press * is_lip * rel_z", (0.0, 0.0, -0.35)),
                           ("press", (0.02, 0.0, 0.0))]),
    # lower lip down / upper lip up on this side (shows the teeth)
    "mouthLowerDownLeft": Key([("lower_lip_side", (0.0, 0.01, -0.085))]),
    "mouthUpperUpLeft": Key([("upper_lip_side", (0.0, -0.01, 0.07))]),

    # ---- rolls (lips turn in and thin out) and shrugs (lip pushed up)
    "mouthRollLower": Key([("lower_lips * lips_and_skin * bulge", (0.0, 0.06, 0.0)),
                           ("lower_lips * lips_and_skin", (0.0, 0.02, 0.0)),
                           ("lower_lips * is_lip * rel_z", (0.0, 0.0, -0.55)),
                           ("lower_lips * is_skin", (0.0, 0.0, 0.02))]),
    "mouthRollUpper": Key([("upper_lips * lips_and_skin * bulge", (0.0, 0.06, 0.0)),
                           ("upper_lips * lips_and_skin", (0.0, 0.02, 0.0)),
                           ("upper_lips * is_lip * rel_z", (0.0, 0.0, -0.55)),
                           ("upper_lips * is_skin", (0.0, 0.0, -0.02))]),
    "mouthShrugLower": Key([("lower_lip_and_chin", (0.0, -0.03, 0.06))]),
    "mouthShrugUpper": Key([("upper_lips * lips_and_skin", (0.0, -0.025, 0.045))]),

    # ---- cheeks
    "cheekPuff": Key([("normal * cheeks", 0.16), ("is_lip", (0.0, -0.02, 0.0))]),
    # cheek squint: the cheek rises under the eye and pushes the lower lid up
    "cheekSquintLeft": Key([("cheek_squint", (0.01, -0.01, 0.06))], eye=dict(low=LOW_EDGE + 0.25)),

    # ---- eyes: the ball turns, the lids swing about the eye's X axis. A blink splits the travel
    # over both lids (and the upper swells a little) so that half a blink keeps the lid outside the
    # eyeball even though shape keys move in straight lines.
    "eyeBlinkLeft": Key(eye=dict(up=UP_CLOSED, up_scale=1.07, low=LOW_CLOSED)),
    "eyeWideLeft": Key(eye=dict(up=UP_EDGE + 0.42, low=LOW_EDGE - 0.12)),
    "eyeSquintLeft": Key(eye=dict(up=UP_EDGE - 0.16, low=LOW_EDGE + 0.36)),
    "eyeLookUpLeft": Key(eye=dict(pitch=0.38, up=UP_EDGE + 0.18)),
    "eyeLookDownLeft": Key(eye=dict(pitch=-0.38, up=UP_EDGE - 0.38, low=LOW_EDGE - 0.08)),
    "eyeLookOutLeft": Key(eye=dict(yaw=0.50)),
    "eyeLookInLeft": Key(eye=dict(yaw=-0.50)),

    # ---- brows (they slide on the forehead: `_key_target` keeps them on the skin)
    "browOuterUpLeft": Key([("brow * outer_end", (0.0, 0.0, 0.09))]),
    "browDownLeft": Key([("brow * brow_drop", (0.0, 0.0, -0.07)), ("brow * inner_side", (-0.035, 0.0, 0.0))],
                        eye=dict(up=UP_EDGE - 0.12)),
    "browInnerUp": Key([("brows * inner_end", (0.0, 0.0, 0.10)), ("forehead", (0.0, 0.0, 0.025))]),

    # ---- nose sneer: that side of the nose and the skin beside it pull up, the lip follows a little
    "noseSneerLeft": Key([("sneer", (0.012, -0.012, 0.08))]),

    # ---- tongue: out over the lower teeth, thinner as it comes out (the jaw drops a little)
    "tongueOut": Key([("tongue", (0.0, -0.28, 0.13)), ("tongue_tip", (0.0, -0.08, 0.0)),
                      ("tongue_tip * tongue_tip", (0.0, 0.0, -0.05)), ("tongue_tip * tongue_rel_z", (0.0, 0.0, -0.3))],
                     jaw=0.5),
}


def _regions(base, P, nrm, sign):
    """The named per-vertex weights `KEYS` moves, on one side of the face (sign +1: the
    character's left, -1: the right; regions without a side are the same either way).

    (n,) arrays, except `normal` and `jaw_open` (n, 3 directions) and `lip_gap` (a number)."""
    n = len(base)
    prm = P["prm"]
    shell = P["shell"]
    on_shell = np.zeros(n, bool)
    on_shell[shell] = True
    phi = np.zeros(n)
    rho = np.full(n, 9.0)
    lip_h = np.zeros(n)
    phi[shell], rho[shell], lip_h[shell] = prm["phi"], prm["rho"], prm["lip_h"]
    sphi = np.sin(phi)
    x, y, z = base[:, 0], base[:, 1], base[:, 2]
    zc = prm["zc"]
    corner = prm["corner"] * np.array([sign, 1.0, 1.0])
    mouth_c = np.array([0.0, prm["slit"][NPHI // 4, 1], zc])
    rel = base - mouth_c

    def side(soft):
        """0 on the other side of the face, 1 on this side (soft across the middle)."""
        return _ss(-soft, soft, sign * x)

    is_lip = on_shell & (rho >= 0) & (rho <= 1)
    is_bag = on_shell & (rho < 0)
    is_skin = on_shell & (rho > 1)
    lower = 0.5 * (1.0 - np.tanh(4.0 * sphi) / np.tanh(4.0))        # 1 on the lower lip, 0.5 at corners
    upper = 1.0 - lower
    # how much of the lips' motion a shell vertex shares: full on lips and the cavity's mouth,
    # fading over the first skin rings and deeper into the cavity
    lipness = np.where(is_lip, 1.0, 0.0) + np.where(is_skin, _ss(1.12, 1.0, rho), 0.0) \
        + np.where(is_bag, _ss(-0.6, 0.0, rho), 0.0)
    bulge = np.where(is_lip, np.sin(np.pi * np.clip(1.0 - rho, 0, 1)) ** 0.6, 0.0)   # lip bulge profile
    mouth_area = _blob(base, mouth_c + [0, 0.05, 0], [0.55, 0.45, 0.36]) * on_shell

    # jaw weight: the lower lip, the cavity floor, the chin and jaw below a line to the hinge
    z_line = zc + 0.33 * (y - prm["corner"][1])
    w_pos = _ss(z_line + 0.03, z_line - 0.22, z) * _ss(0.40, 0.0, y)
    near = _ss(1.14, 1.02, rho)
    jaw = np.zeros(n)
    jaw[on_shell] = (near * lower + (1.0 - near) * w_pos)[on_shell]
    jaw[is_lip | is_bag] = lower[is_lip | is_bag]
    jaw[P["teeth_l"]] = 1.0
    jaw[P["tongue"]] = 1.0
    jaw_open = _rotate(base, HINGE, [1.0, 0.0, 0.0], JAW_ANGLE * jaw) - base   # the jawOpen key's motion

    # lips: where the mouth opens (funnel) and how far up or down a lip vertex lies from the slit
    opening = np.where(is_lip, (1.0 - rho), 0.0) + is_bag * _ss(-0.6, 0.0, rho)
    lip_opening = np.abs(np.sin(phi)) ** 0.7 * np.sign(sphi) * opening * on_shell
    lip_flare = np.sign(sphi) * is_lip * rho * np.abs(sphi)
    lower_lip_side = np.maximum(
        lipness * lower * side(0.18) * np.abs(sphi) ** 0.3,
        _blob(base, mouth_c + [0.1 * sign, 0, -0.15], [0.3, 0.3, 0.15]) * is_skin * side(0.18) * 0.5)
    upper_lip_side = np.maximum(
        lipness * upper * side(0.18) * np.abs(sphi) ** 0.3,
        _blob(base, mouth_c + [0.1 * sign, 0, 0.13], [0.28, 0.3, 0.12]) * is_skin * side(0.18) * 0.5)

    # cheeks, eyes, brows, nose, tongue
    cheeks = sum(_blob(base, [0.42 * s, -0.62, zc + 0.04], [0.32, 0.45, 0.3]) * is_skin for s in (1.0, -1.0))
    forehead = np.clip(sum(_blob(base, [0.15 * s, -0.8, EYE_C[2] + 0.42], [0.2, 0.3, 0.18]) * is_skin
                           for s in (1.0, -1.0)), 0, 1)
    brows, brow, brow_t = np.zeros(n), np.zeros(n), np.zeros(n)    # brow_t: 0 inner end, 1 outer end
    for tag, s in (("L", 1.0), ("R", -1.0)):
        bidx, t = P["brows"][tag]
        brows[bidx], brow_t[bidx] = 1.0, t
        if s == sign:
            brow[bidx] = 1.0
    nidx = P["nose"]
    nose = np.zeros(n)
    nose[nidx] = _ss(-0.06, 0.10, sign * x[nidx]) * (0.4 + 0.6 * _ss(0.10, -0.12, z[nidx] - P["nose_c"][2]))
    sneer = np.maximum(np.maximum(nose, _blob(base, [0.14 * sign, -0.86, -0.22], [0.16, 0.3, 0.2]) * is_skin),
                       lipness * upper * _ss(-0.05, 0.15, sign * x) * 0.35)
    tg = P["tongue"]
    tongue, tongue_tip, tongue_rel_z = np.zeros(n), np.zeros(n), np.zeros(n)
    tongue[tg] = 1.0
    tongue_tip[tg] = _ss(0.15, -0.22, base[tg, 1] - P["tongue_c"][1])
    tongue_rel_z[tg] = base[tg, 2] - P["tongue_c"][2]

    return {
        # jaw: its weights, the jawOpen key's motion, and how far that drops the lowest lip vertex
        "jaw": jaw, "jaw_open": jaw_open, "lip_gap": jaw_open[:, 2].min(), "normal": nrm,
        # masks of the skin shell's parts; offsets from the mouth's centre; lip thickness profiles
        "is_lip": is_lip, "is_skin": is_skin, "lips_and_skin": is_lip | is_skin,
        "rel_x": rel[:, 0], "rel_z": rel[:, 2], "lip_h": lip_h, "bulge": bulge,
        # the share of the lips' motion (`lipness`) on the lower and upper lip, and what is left
        "lower_lips": lipness * lower, "upper_lips": lipness * upper, "off_lips": 1 - lipness,
        # the mouth as a whole
        "mouth_area": mouth_area, "mouth_or_lips": np.maximum(mouth_area, lipness),
        "mouth_shift": _blob(base, mouth_c + [0, 0.05, 0], [0.5, 0.45, 0.32]) * on_shell,
        "lip_opening": lip_opening, "lip_flare": lip_flare,
        # this side's mouth corner and lips
        "corner": _blob(base, corner, [0.30, 0.30, 0.26]) * on_shell * side(0.05),
        "smile_cheek": _blob(base, corner + [0.08 * sign, -0.02, 0.22], [0.28, 0.3, 0.2]) * is_skin * side(0.05),
        "dimple": _blob(base, corner, [0.2, 0.2, 0.18]) * on_shell * side(0.05),
        "stretch": _blob(base, corner + [0, 0, -0.03], [0.32, 0.3, 0.3]) * on_shell * side(0.05),
        "press": lipness * side(0.15) * _blob(base, mouth_c + [0.1 * sign, 0, 0], [0.55, 0.5, 0.4]),
        "lower_lip_side": lower_lip_side, "upper_lip_side": upper_lip_side,
        "lower_lip_and_chin": np.maximum(lipness * lower,
                                         _blob(base, mouth_c + [0, 0.05, -0.25], [0.35, 0.35, 0.25]) * is_skin),
        # cheeks, brows (this side's, both, and profiles from the inner to the outer end), nose, tongue
        "cheeks": cheeks, "cheek_squint": _blob(base, [0.36 * sign, -0.72, -0.22], [0.3, 0.35, 0.22]) * is_skin,
        "brow": brow, "brows": brows, "outer_end": brow_t ** 1.3, "inner_end": (1.0 - brow_t) ** 1.3,
        "inner_side": 1.0 - brow_t, "brow_drop": 1.0 - 0.4 * brow_t, "forehead": forehead,
        "sneer": sneer, "tongue": tongue, "tongue_tip": tongue_tip, "tongue_rel_z": tongue_rel_z,
    }


def _shape_keys(base, P):
    """Target positions of the 52 ARKit keys (head units), and the jaw weights."""
    nrm = _normals(base, P["mesh"].faces)
    regions = {sign: _regions(base, P, nrm, sign) for sign in (1.0, -1.0)}
    targets = {}
    for name in ARKIT_NAMES:
        sign = -1.0 if name.endswith("Right") else 1.0
        key = KEYS[name[:-5] + "Left" if sign < 0 else name]
        targets[name] = _key_target(key, sign, base, regions[sign], P)
    return targets, regions[1.0]["jaw"]


def _key_target(key, sign, base, reg, P):
    flip = np.array([sign, 1.0, 1.0])
    d = np.zeros_like(base)
    for weight, amount in key.moves:
        w = 1.0
        for name in weight.split(" * "):
            r = reg[name]
            w = w * (r[:, None] if np.ndim(r) == 1 else r)
        d += w * (np.asarray(amount) * flip if isinstance(amount, tuple) else amount)
    pos = base + d
    brows = reg["brows"] > 0
    if d[brows].any():      # a brow slides on the forehead: its depth follows the skin's
        p, p0 = pos[brows], base[brows]
        pos[brows, 1] += _front_y(p[:, 0], p[:, 2]) - _front_y(p0[:, 0], p0[:, 2])
    if key.eye:
        _pose_eye(pos, P, sign, key.eye)
    if key.jaw:
        pos = _rotate(pos, HINGE, [1.0, 0.0, 0.0], key.jaw * JAW_ANGLE * reg["jaw"])
    return pos


def _pose_eye(pos, P, sign, pose):
    """Set this side's eyeball and lids in `pos`: `yaw` (+ looks to the key's side, outwards) and
    `pitch` (+ up) turn the ball; `up`, `low` are the lid edges' angles (`up_scale` swells the upper)."""
    tag = "L" if sign > 0 else "R"
    eidx, ec = P["eyes"][tag]
    (uidx, up_p), (lidx, lo_p) = P["lids"][(tag, True)], P["lids"][(tag, False)]
    if "yaw" in pose:
        pos[eidx] = _rotate(pos[eidx], ec, [0, 0, 1], pose["yaw"] * sign)
    if "pitch" in pose:
        pos[eidx] = _rotate(pos[eidx], ec, [-1, 0, 0], pose["pitch"])
    if "up" in pose:
        pos[uidx] = _lid_pos(ec, up_p, pose["up"], pose.get("up_scale", 1.0))
    if "low" in pose:
        pos[lidx] = _lid_pos(ec, lo_p, pose["low"])


# ---------------------------------------------------------------- Blender

def _to_object(p):
    return (np.asarray(p) - PIVOT) * UNIT


def _material(bpy, name, colour):
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = colour                       # what Workbench (MATERIAL colour) shows
    mat.roughness = 0.6
    mat.specular_intensity = 0.25
    tree = getattr(mat, "node_tree", None)           # 5.0 materials always have nodes: match them
    if tree is not None:
        for node in tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                node.inputs["Base Color"].default_value = colour
    return mat


def _lips_colour(skin):
    r, g, b = skin[:3]
    return (0.35 * r + 0.65 * 0.72, 0.35 * g + 0.65 * 0.16, 0.35 * b + 0.65 * 0.17, 1.0)


def build_head(name="DemoHead", skin=(0.80, 0.48, 0.34, 1.0), collection=None, hair=(0.22, 0.13, 0.08, 1.0),
               iris=None, shirt=(0.25, 0.38, 0.62, 1.0), body=True):
    """Build a demo head (one mesh, Basis + the 52 ARKit keys) and its shoulders into the scene.

    Returns the head object: origin at the neck pivot, facing -Y. Colours are linear RGBA.
    Materials are named after the head (`<name>_Skin` ...) so heads with other colours can share a
    file. The shoulders (`<name>_Body`, unless body=False) copy the head's location, not its
    rotation. Vertex groups name the parts (shell, lid_upper_L, tongue, ...) and hold the jaw
    weights ("jaw")."""
    import bpy

    skin = tuple(skin)
    mesh_data, verts, keys, jaw_w = _build_geometry()
    brow = tuple(0.7 * c for c in hair[:3]) + (1.0,)                 # brows match the hair, darker
    colours = {"Skin": skin, "Lips": _lips_colour(skin), "Hair": tuple(hair), "Brow": brow}
    if iris is not None:
        colours["Iris"] = tuple(iris)

    me = bpy.data.meshes.new(name)
    me.from_pydata(_to_object(verts).tolist(), [], mesh_data.faces)
    for mname, colour in MATERIALS:
        me.materials.append(_material(bpy, f"{name}_{mname}", colours.get(mname, colour)))
    me.polygons.foreach_set("material_index", np.asarray(mesh_data.mats, np.int32))
    me.polygons.foreach_set("use_smooth", np.ones(len(me.polygons), bool))
    me.validate()
    me.update()

    obj = bpy.data.objects.new(name, me)
    coll = collection or bpy.context.scene.collection
    coll.objects.link(obj)
    for group, idx in mesh_data.groups.items():
        obj.vertex_groups.new(name=group).add(idx.tolist(), 1.0, "REPLACE")
    vg = obj.vertex_groups.new(name="jaw")                   # the jawOpen weights, for artists
    for w in np.unique(np.round(jaw_w[jaw_w > 0.01], 2)):
        vg.add(np.flatnonzero(np.abs(np.round(jaw_w, 2) - w) < 1e-9).tolist(), float(w), "REPLACE")

    obj.shape_key_add(name="Basis", from_mix=False)
    for kname in ARKIT_NAMES:
        kb = obj.shape_key_add(name=kname, from_mix=False)
        kb.data.foreach_set("co", _to_object(keys[kname]).astype(np.float32).ravel())
    me.shape_keys.name = f"{name}_Key"

    if body:
        _body(bpy, obj, name, coll, shirt)
    return obj


def _body(bpy, head, name, coll, shirt):
    """Shoulders and chest: a separate object that follows the head's location only."""
    # horizontal rounded-rectangle sections, from the base of the neck down: sloping shoulders
    u = np.linspace(0.0, 1.0, 14) ** 1.2
    grow = np.sin(np.minimum(u / 0.42, 1.0) * np.pi / 2)
    half_x = 0.50 + 1.22 * grow ** 0.8 - 0.08 * u
    half_y = 0.46 + 0.36 * grow
    zs = -1.40 - 1.9 * u
    ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    c, sn = np.cos(ang), np.sin(ang)
    sq = np.sign(c) * np.abs(c) ** 0.7, np.sign(sn) * np.abs(sn) ** 0.8    # squarish corners
    rings = np.stack([half_x[:, None] * sq[0][None], 0.12 + half_y[:, None] * sq[1][None],
                      np.broadcast_to(zs[:, None], (len(u), len(ang)))], -1)
    v, f, _ = _rings_surface(rings, [0.0, 0.12, -1.36], [0.0, 0.12, zs[-1] - 0.05])
    me = bpy.data.meshes.new(f"{name}_Body")
    me.from_pydata(_to_object(v).tolist(), [], f)
    me.materials.append(_material(bpy, f"{name}_Shirt", tuple(shirt)))
    me.polygons.foreach_set("use_smooth", np.ones(len(me.polygons), bool))
    me.validate()
    body = bpy.data.objects.new(f"{name}_Body", me)
    coll.objects.link(body)
    con = body.constraints.new("COPY_LOCATION")
    con.target = head
    return body


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ASSETS / "demo_head.blend"))
    args = ap.parse_args(argv)
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = build_head()
    bpy.context.view_layer.objects.active = obj
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)                  # else Blender keeps the old one as a .blend1 backup beside it
    bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)
    print(f"{args.out}: {len(obj.data.vertices)} vertices, {len(obj.data.shape_keys.key_blocks) - 1} keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

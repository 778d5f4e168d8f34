"""Procedural whole-body anatomy: paints the tissue label volume of one phantom.

Geometry is stylised (ellipsoids, super-ellipses, tapered tubes along splines, shells) but sized and placed
from adult anthropometry (fractions of standing height for levels, mm for widths) and scaled:

* z levels: an adult table of fractions of height (``ADULT_LEVELS``) remapped piecewise-linearly for
  children, whose head is a larger and legs a smaller fraction of their height.
* widths: trunk by height (and sex: narrower shoulders, wider hips in women), head by head height,
  lean (muscle) size by BMI, sex and age (sarcopenia); subcutaneous fat thickness by BMI and sex with a
  regional distribution; visceral fat by enlarging the abdominal cavity.
* seeded variation: organ sizes and positions, diaphragm level, bladder filling, bowel gas.

Coordinates are patient LPS mm: x towards the patient's left, y towards posterior, z towards the head,
z = 0 at the soles. Precedence (one tissue per voxel) is the painting order: the body wall first, then the
skeleton, then organs, each organ painted only into the tissue it displaces (lung, visceral or internal
fat), so organs painted earlier win. The order is: table, trunk wall and cavities, breasts, limbs, head,
skeleton, spinal canal and cord, brain, thoracic organs (great vessels, heart, airway, esophagus, thymus,
thyroid), abdominal organs (vessels, kidneys, adrenals, liver, gallbladder, spleen, pancreas, stomach,
duodenum, colon, rectum, bladder, pelvic organs, small bowel), skin rim last.

``gi_tract`` (organ 21): one label per voxel cannot hold the paper's summed GI segment (duodenum + small
intestine + colon), so ``gi_tract`` labels the duodenum, the only GI segment without a label of its own
(from the pylorus to the duodenojejunal flexure). The paper's summed segment is the union of labels
gi_tract, small_intestine and colon (``phantom.gi_union_mask``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .geometry import Canvas, catmull_rom, ellipsoid_points, rotation
from .params import PhantomParams
from .tissues import T

# Adult levels as fractions of standing height (z / height; sole = 0). Landmark names as in
# operators.common.labels.LANDMARKS; other levels used to build the anatomy.
ADULT_LEVELS = {
    "vertex": 1.0, "orbit_roof": 0.954, "orbit_floor": 0.935, "skull_base": 0.918, "hard_palate": 0.905,
    "mandible_bottom": 0.872, "thyroid_top": 0.866, "c7": 0.855, "thyroid_bottom": 0.846,
    "lung_apex": 0.838, "shoulder_top": 0.830, "carina": 0.785, "diaphragm_dome": 0.722,
    "iliac_crest": 0.600, "femoral_heads": 0.523, "pubic_symphysis": 0.505, "ischial_tuberosity": 0.488,
    "crotch": 0.475, "knees": 0.285, "ankles": 0.045, "sole": 0.0,
    "elbow": 0.630, "wrist": 0.485, "fingertip": 0.377,
}

# Trunk profile, adult male, lean body (outer boundary of the muscle layer), mm at 1750 mm height:
# f, half-width A, anterior y, posterior y, spine depth (body centre to posterior boundary), exponent.
TRUNK = np.array([
    # f      A     ya     yp    dsp   p
    [0.905, 50.0, -38.0, 60.0, 55.0, 2.1],
    [0.872, 54.0, -46.0, 60.0, 55.0, 2.1],
    [0.855, 60.0, -54.0, 63.0, 58.0, 2.2],
    [0.842, 85.0, -62.0, 72.0, 64.0, 2.3],
    [0.832, 122.0, -75.0, 84.0, 70.0, 2.5],
    [0.815, 138.0, -90.0, 94.0, 72.0, 2.5],
    [0.790, 142.0, -100.0, 99.0, 74.0, 2.4],
    [0.760, 144.0, -108.0, 101.0, 75.0, 2.3],
    [0.730, 143.0, -112.0, 100.0, 75.0, 2.3],
    [0.705, 141.0, -111.0, 99.0, 76.0, 2.3],
    [0.685, 139.0, -106.0, 97.0, 78.0, 2.3],
    [0.665, 136.0, -100.0, 94.0, 82.0, 2.4],
    [0.630, 133.0, -95.0, 92.0, 85.0, 2.4],
    [0.600, 140.0, -93.0, 93.0, 85.0, 2.5],
    [0.575, 150.0, -92.0, 99.0, 87.0, 2.6],
    [0.545, 160.0, -88.0, 107.0, 90.0, 2.7],
    [0.520, 160.0, -84.0, 108.0, 90.0, 2.7],
    [0.500, 155.0, -80.0, 103.0, 90.0, 2.7],
    [0.485, 145.0, -74.0, 96.0, 90.0, 2.7],
    [0.477, 110.0, -60.0, 82.0, 90.0, 2.7],
    [0.472, 50.0, -30.0, 50.0, 90.0, 2.7],
])[::-1]  # ascending f

# Subcutaneous fat distribution (multiples of the abdominal thickness) by level: f, ant, lat, post (M, F).
SF_DIST_M = np.array([[0.470, 0.7, 0.8, 0.9], [0.50, 0.7, 0.9, 1.0], [0.55, 0.8, 0.9, 0.9], [0.60, 0.95, 0.9, 0.8],
                      [0.64, 1.0, 0.9, 0.6], [0.69, 0.8, 0.8, 0.5], [0.74, 0.45, 0.45, 0.4], [0.80, 0.4, 0.35, 0.4],
                      [0.84, 0.3, 0.3, 0.3], [0.87, 0.25, 0.25, 0.25], [0.91, 0.2, 0.2, 0.2]])
SF_DIST_F = np.array([[0.470, 1.0, 1.1, 1.3], [0.50, 1.0, 1.3, 1.35], [0.55, 0.9, 1.2, 1.2], [0.60, 1.0, 1.0, 0.9],
                      [0.64, 1.0, 0.9, 0.7], [0.69, 0.8, 0.8, 0.6], [0.74, 0.5, 0.5, 0.45], [0.80, 0.45, 0.4, 0.4],
                      [0.84, 0.3, 0.3, 0.3], [0.87, 0.25, 0.25, 0.25], [0.91, 0.2, 0.2, 0.2]])

class Anatomy:
    """Builds the tissue volume for ``params`` on ``canvas`` and records landmarks (mm, LPS z)."""

    def __init__(self, params: PhantomParams, rng: np.random.Generator):
        p = params
        self.p = p
        self.rng = rng
        self.H = float(p.height_cm) * 10.0
        age = float(p.age_years)
        self.age = age
        self.female = p.sex == "F"
        self.head_f = float(np.interp(age, [2, 5, 10, 15, 18], [0.20, 0.18, 0.155, 0.14, 0.13]))
        self.crotch_f = float(np.interp(age, [2, 5, 10, 15, 18], [0.40, 0.435, 0.46, 0.472, 0.475]))
        self.s = self.H / 1750.0  # trunk scale
        adult_head = 0.13 * (1760.0 if not self.female else 1630.0 * 1.03)
        self.hs = self.head_f * self.H / adult_head  # head scale
        bmi = float(p.bmi)
        self.bmi = bmi
        sarcopenia = 1.0 - 0.004 * max(age - 50.0, 0.0)
        self.lean = float(np.clip((bmi / 22.0) ** 0.18, 0.88, 1.18)) * (0.93 if self.female else 1.0) * sarcopenia
        base = (3.8 * (bmi - 15.5)) if self.female else (3.0 * (bmi - 16.0))
        self.sf_mm = float(max(base, 3.0)) * (self.H / 1750.0) ** 0.5
        vat = (2.5 * (bmi - 21.0)) if self.female else (4.5 * (bmi - 20.0))
        self.vat_mm = float(np.clip(vat, 0.0, 120.0)) * self.s
        v = float(p.variation)
        self.jit = lambda sd: float(rng.normal(0.0, sd * v))  # noqa: E731
        self.fac = lambda sd: float(np.exp(rng.normal(0.0, sd * v)))  # noqa: E731
        self.L: dict[str, float] = {}
        self.y_back = 110.0 * self.s  # y of the skin of the back where it rests on the table
        self.table_y: float | None = None

    # --- levels and profiles -------------------------------------------------------------------------

    def zf(self, f):
        """z (mm) of an adult height fraction, remapped for the child's proportions."""
        knots_a = [0.0, 0.475, 0.87, 1.0]
        knots_c = [0.0, self.crotch_f, 1.0 - self.head_f, 1.0]
        return np.interp(f, knots_a, knots_c) * self.H

    def fz(self, z):
        """Inverse of ``zf``: adult fraction for z (mm)."""
        knots_a = [0.0, 0.475, 0.87, 1.0]
        knots_c = [0.0, self.crotch_f, 1.0 - self.head_f, 1.0]
        return np.interp(np.asarray(z, float) / self.H, knots_c, knots_a)

    def _sex_width(self, f):
        if not self.female:
            return np.ones_like(np.asarray(f, float))
        return np.interp(f, [0.47, 0.50, 0.55, 0.60, 0.66, 0.75, 0.90], [1.04, 1.06, 1.06, 1.0, 0.93, 0.92, 0.92])

    def trunk_profile(self, z):
        """Lean-trunk profile at z (array): dict of A, ya, yp, ys (vertebral body centre y), p."""
        f = self.fz(z)
        cols = [np.interp(f, TRUNK[:, 0], TRUNK[:, i]) for i in range(1, 6)]
        A, ya, yp, dsp, pe = cols
        sw = self._sex_width(f)
        ys = (yp - dsp) * self.s  # spine position independent of the lean factor
        A = A * self.s * sw * self.lean
        ya = ya * self.s * (0.95 if self.female else 1.0)
        yp = yp * self.s * (0.95 if self.female else 1.0)
        # lean factor grows the muscle layer about the spine
        ya = ys + (ya - ys) * self.lean
        yp = ys + (yp - ys) * self.lean
        # visceral fat enlarges the abdomen anteriorly and laterally
        bump = np.clip(1.0 - np.abs(f - 0.625) / 0.07, 0.0, 1.0) ** 0.7
        ya = ya - self.vat_mm * bump
        A = A + 0.4 * self.vat_mm * bump
        # supine on the table: shift each level so that the back (skin) rests on the table top, except
        # the small lumbar lordosis gap and the neck (the head rests on the head holder)
        _, _, tp = self.sf_thickness(z)
        gap = np.interp(f, [0.47, 0.50, 0.56, 0.62, 0.68, 0.80, 0.83, 0.86, 0.91],
                        [0, 0, 6, 12, 4, 0, 8, 35, 45]) * self.s
        shift = (self.y_back - gap) - (yp + tp)
        return dict(A=A, ya=ya + shift, yp=yp + shift, ys=ys + shift, p=pe, f=f)

    def sf_thickness(self, z):
        f = self.fz(z)
        d = SF_DIST_F if self.female else SF_DIST_M
        return tuple(np.interp(f, d[:, 0], d[:, i]) * self.sf_mm for i in (1, 2, 3))

    def ys(self, z):
        return float(self.trunk_profile(np.array([z]))["ys"][0])

    def level(self, name):
        return float(self.zf(ADULT_LEVELS[name]))

    # --- the whole body -------------------------------------------------------------------------------

    def extent(self, z0: float | None = None, z1: float | None = None) -> dict:
        """Approximate body extent (mm) between z0 and z1 for choosing the field of view: x half-width
        without and with arms down, y range."""
        lo, hi = self.zf(0.47), self.zf(0.90)
        z0 = lo if z0 is None else min(max(z0, lo), hi)
        z1 = hi if z1 is None else max(min(z1, hi), lo)
        zs = np.linspace(z0, z1, 60)
        pr = self.trunk_profile(zs)
        ta, tl, tp = self.sf_thickness(zs)
        half = float(np.max(pr["A"] + tl))
        y0 = float(np.min(pr["ya"] - ta))
        y1 = float(np.max(pr["yp"] + tp))
        arm = 2 * (45 * self.s * self.lean + 0.45 * self.sf_mm) + 12
        return dict(half_width=half, half_width_arms=half + arm, y_min=y0, y_max=y1 + 60 * self.s)

    def build(self, cv: Canvas) -> None:
        self.cv = cv
        self.prof = self.trunk_profile(cv.z)
        self._landmark_levels()
        self._table_level()
        self.trunk_wall()
        self.breasts()
        self.legs()
        self.arms()
        self.head_and_neck()
        self.spine()
        self.ribs_and_sternum()
        self.shoulder_girdle()
        self.pelvis_and_femurs()
        self.thorax_organs()
        self.abdomen_organs()
        self.table()
        self.skin()

    # --- helpers --------------------------------------------------------------------------------------

    def _landmark_levels(self):
        for k in ("vertex", "orbit_roof", "orbit_floor", "skull_base", "hard_palate", "mandible_bottom",
                  "thyroid_top", "c7", "thyroid_bottom", "lung_apex", "shoulder_top", "carina", "iliac_crest",
                  "femoral_heads", "pubic_symphysis", "ischial_tuberosity", "knees", "ankles", "sole"):
            self.L[k] = self.level(k)
        self.L["diaphragm_dome"] = self.level("diaphragm_dome") + self.jit(8.0) * self.s
        # vertebral levels: C1..C7, T1..T12, L1..L5 (body centres)
        zc7, zt1 = self.zf(0.855), self.zf(0.842)
        zt12, zl1, zl5 = self.zf(0.683), self.zf(0.666), self.zf(0.586)
        zc1 = self.zf(0.912)
        cerv = np.linspace(zc1, zc7, 7)
        thor = np.linspace(zt1, zt12, 12)
        lumb = np.linspace(zl1, zl5, 5)
        self.vert = {}
        for i, z in enumerate(cerv):
            self.vert[f"C{i + 1}"] = float(z)
        for i, z in enumerate(thor):
            self.vert[f"T{i + 1}"] = float(z)
        for i, z in enumerate(lumb):
            self.vert[f"L{i + 1}"] = float(z)
        self.L["c7"] = self.vert["C7"]
        self.L["l3"] = self.vert["L3"]

    def _table_level(self):
        self.table_y = self.y_back + 1.0

    def superellipse_inside(self, X, Y, A, ya, yp, pe):
        cy = 0.5 * (ya + yp)
        b = 0.5 * (yp - ya)
        pp = np.where(Y > cy, pe + 0.5, pe)  # flatter back (supine on the table)
        return (np.abs(X / A) ** pp + np.abs((Y - cy) / b) ** pp) <= 1.0

    # --- trunk wall and cavities ------------------------------------------------------------------------

    def cavity_profile(self, z, pr=None):
        """Inner boundary of the muscle ring: (Ac, yac, ypc) arrays for z."""
        pr = pr or self.trunk_profile(z)
        f = pr["f"]
        wa = np.interp(f, [0.47, 0.55, 0.60, 0.69, 0.72, 0.85], [14, 14, 12, 14, 24, 24]) * self.s * self.lean
        wl = np.interp(f, [0.47, 0.60, 0.69, 0.72, 0.85], [18, 16, 17, 20, 20]) * self.s * self.lean
        Ac = pr["A"] - wl
        # bony pelvis narrows the cavity below the iliac crest
        pel = np.interp(f, [0.488, 0.50, 0.53, 0.55, 0.575, 0.60, 0.62],
                        [38, 50, 62, 78, 108, 125, 999]) * self.s * self._sex_width(f)
        Ac = np.minimum(Ac, pel)
        yac = pr["ya"] + wa
        ypc = pr["ys"] + 35.0 * self.s
        # in the pelvis the cavity ends in front of the sacrum
        sac = self.sacrum_front(z)
        ypc = np.where(f < 0.585, np.minimum(ypc, sac), ypc)
        return Ac, yac, ypc

    def sacrum_geometry(self, z):
        """(t, y_centre, half_width, half_depth) of the sacrum at z; t in [0, 1] from S1 to the coccyx tip."""
        z = np.asarray(z, float)
        zs1, ztip = self.zf(0.576), self.zf(0.493)
        t = np.clip((zs1 - z) / (zs1 - ztip), 0.0, 1.0)
        y5 = self.ys(self.vert["L5"])
        yc = y5 + (10.0 + 48.0 * t ** 1.5) * self.s
        hw = np.interp(t, [0, 0.25, 0.6, 1.0], [50, 42, 22, 6]) * self.s
        hd = np.interp(t, [0, 0.5, 1.0], [20, 12, 6]) * self.s
        return t, yc, hw, hd

    def sacrum_front(self, z):
        t, yc, hw, hd = self.sacrum_geometry(z)
        return yc - hd

    def diaphragm_z(self, X, Y):
        """Height (mm) of the diaphragm surface under (X, Y)."""
        zd = self.L["diaphragm_dome"]
        pr = self.trunk_profile(np.array([zd]))
        Ac, yac, ypc = (v[0] for v in self.cavity_profile(np.array([zd]), pr))
        xr, xl = -0.42 * Ac, 0.42 * Ac
        yd = 0.5 * (yac + ypc) + 5 * self.s
        half_d = 0.5 * (ypc - yac)
        right = X < 0
        xc = np.where(right, xr, xl)
        ztop = np.where(right, zd, zd - 14.0 * self.s)
        u = (X - xc) / (0.58 * Ac)
        v = (Y - yd) / half_d
        drop = 40.0 * self.s * u * u + np.where(v > 0, 62.0, 26.0) * self.s * v * v
        return ztop - drop

    def trunk_wall(self):
        cv = self.cv
        z0, z1 = self.zf(0.472), self.zf(0.905)
        b = cv.box((-1e4, -1e4, z0), (1e4, 1e4, z1))
        if b is None:
            return
        sl, X, Y, Z = b
        k0, k1 = sl[0].start, sl[0].stop
        zz = cv.z[k0:k1]
        pr = self.trunk_profile(zz)
        ta, tl, tp = self.sf_thickness(zz)
        r = lambda a: a[:, None, None]  # noqa: E731
        A, ya, yp, pe = r(pr["A"]), r(pr["ya"]), r(pr["yp"]), r(pr["p"])
        skin = self.superellipse_inside(X, Y, A + r(tl), ya - r(ta), yp + r(tp), pe)
        cv.paint(sl, skin, T.subcutaneous_fat)
        lean = self.superellipse_inside(X, Y, A, ya, yp, pe)
        cv.paint(sl, lean, T.muscle)
        # cavities
        Ac, yac, ypc = self.cavity_profile(zz, pr)
        has_cav = (zz > self.zf(0.489)) & (zz < self.L["lung_apex"])
        Ac, yac, ypc = r(np.where(has_cav, Ac, 1.0)), r(yac), r(ypc)
        pc = r(np.minimum(pr["p"], 2.4))
        cav = self.superellipse_inside(X, Y, Ac, yac, np.maximum(ypc, yac + 1), pc) & r(has_cav)
        zd = self.diaphragm_z(X, Y)
        dthick = 5.0 * self.s
        thor = cav & (Z > zd)
        # lung apices: two domes narrowing to the apex
        z_ap0 = self.zf(0.790)
        apex = self.L["lung_apex"]
        Ac0, yac0, ypc0 = (float(v[0]) for v in self.cavity_profile(np.array([z_ap0])))
        frac = np.clip((apex - Z) / (apex - z_ap0), 0.0, 1.0) ** 0.7
        xa, rx = 0.45 * Ac0, 0.5 * Ac0
        yc_ap = 0.5 * (yac0 + ypc0) + 8 * self.s
        ry = 0.55 * (ypc0 - yac0)
        dome = (((np.abs(X) - xa) / (rx * frac + 1e-3)) ** 2 + ((Y - yc_ap) / (ry * frac + 1e-3)) ** 2) <= 1.0
        thor &= (Z < z_ap0) | dome
        cv.paint(sl, thor, T.lung)
        dia = cav & (Z <= zd) & (Z > zd - dthick)
        cv.paint(sl, dia, T.muscle)
        abd = cav & (Z <= zd - dthick)
        cv.paint(sl, abd, T.visceral_fat)
        self.cavity_slices = sl
        # lung base: lowest point of the diaphragm under the lungs (analytic, on a fine grid)
        zdome = self.L["diaphragm_dome"]
        Acd, yacd, ypcd = (float(v[0]) for v in self.cavity_profile(np.array([zdome - 40 * self.s])))
        gx, gy = np.meshgrid(np.linspace(-Acd, Acd, 161), np.linspace(yacd, ypcd, 121))
        pd = float(self.trunk_profile(np.array([zdome]))["p"][0])
        inside = self.superellipse_inside(gx, gy, Acd, yacd, ypcd, min(pd, 2.4)) & (np.abs(gx) > 30 * self.s)
        self.L["lung_base"] = float(self.diaphragm_z(gx, gy)[inside].min())
        # psoas, quadratus lumborum and pelvic floor muscles (painted into visceral fat)
        self._abdominal_wall_muscles()

    def _abdominal_wall_muscles(self):
        cv, s = self.cv, self.s
        vf = cv.allow([T.visceral_fat])
        for side in (-1, 1):
            zs = [self.vert["T12"], self.vert["L1"], self.vert["L2"], self.vert["L3"], self.vert["L4"],
                  self.vert["L5"], self.zf(0.56), self.zf(0.535), self.zf(0.515)]
            rad = np.array([7, 10, 14, 18, 21, 22, 20, 18, 16]) * s * self.lean
            body_hw = np.array([17, 20, 22, 23, 24, 25, 25, 25, 25]) * s
            pts = []
            for z, rr, hw in zip(zs, rad, body_hw, strict=False):
                ys = self.ys(z) if z > self.zf(0.585) else self.ys(self.vert["L5"])
                pts.append((side * (hw + rr * 0.85), ys + 4 * s, z))
            # over the pelvic brim towards the lesser trochanter, anterior to the hip joint
            pts[-3] = (side * 62 * s, self.ys(self.vert["L5"]) - 20 * s, zs[-3])
            pts[-2] = (side * 72 * s, self.ys(self.vert["L5"]) - 45 * s, zs[-2])
            pts[-1] = (side * 80 * s, self.ys(self.vert["L5"]) - 55 * s, zs[-1])
            cv.tube(catmull_rom(pts, 4), np.interp(np.linspace(0, 1, (len(pts) - 1) * 4 + 1),
                                                   np.linspace(0, 1, len(pts)), rad), T.muscle, allowed=vf)
            # quadratus lumborum
            q = [(side * 55 * s, self.ys(self.vert["T12"]) + 28 * s, self.vert["T12"]),
                 (side * 62 * s, self.ys(self.vert["L3"]) + 26 * s, self.vert["L3"]),
                 (side * 70 * s, self.ys(self.vert["L4"]) + 24 * s, self.L["iliac_crest"] - 5 * s)]
            cv.tube(q, np.array([8, 14, 12]) * s * self.lean, T.muscle, allowed=vf)
            # iliacus lining the iliac fossa
            zc = self.L["iliac_crest"]
            cv.ellipsoid((side * 85 * s, self.ys(self.vert["L5"]) - 5 * s, zc - 45 * s),
                         (22 * s, 35 * s, 40 * s), T.muscle, allowed=vf)
        # pelvic floor (levator ani): a sling above the ischial tuberosities
        zp = self.zf(0.493)
        cv.ellipsoid((0, self.ys(self.vert["L5"]) + 5 * s, zp), (50 * s, 55 * s, 7 * s), T.muscle, allowed=vf)

    # --- breasts ----------------------------------------------------------------------------------------

    def breasts(self):
        """Breast region: 2nd rib to the inframammary fold, kept between the heart's top and bottom and
        below the diaphragm dome as the landmark order requires; glandular tissue in fat (women)."""
        cv, s, L = self.cv, self.s, self.L
        self._heart_geometry()
        zt = min(self.zf(0.765), L["heart_top"] - 3 * s)
        zb = float(np.clip(self.zf(0.712), L["heart_bottom"] + 3 * s, L["diaphragm_dome"] - 3 * s))
        if self.female and self.age >= 12:
            size = float(np.clip((self.bmi / 22.0) ** 0.9, 0.6, 2.2)) * self.fac(0.1) * min(1.0, (self.age - 11) / 5)
            zn = 0.5 * (zt + zb)
            pr = self.trunk_profile(np.array([zn]))
            A, ya = float(pr["A"][0]), float(pr["ya"][0])
            ta, _, _ = self.sf_thickness(np.array([zn]))
            ok = cv.allow([T.air, T.subcutaneous_fat])
            for side in (-1, 1):
                c = (side * 0.45 * A, ya - float(ta[0]) * 0.5, zn)
                rr = (62 * s * size ** 0.35, 38 * s * size ** 0.7, 0.5 * (zt - zb) * 1.05)
                cv.ellipsoid(c, rr, T.subcutaneous_fat, allowed=ok, exponent=2.2)
                cv.ellipsoid((c[0], c[1] - 0.25 * rr[1], zn), (rr[0] * 0.55, rr[1] * 0.55, rr[2] * 0.6),
                             T.breast_gland, allowed=cv.allow([T.subcutaneous_fat]))
            self.L["breast_top"], self.L["breast_bottom"] = zt, zb
        else:
            # male / child: the breast region is the nipple level of the anterior chest wall
            self.L["breast_top"] = float(np.clip(zt - 15 * s, L["diaphragm_dome"] + 3 * s, L["heart_top"] - 3 * s))
            self.L["breast_bottom"] = zb

    # --- limbs ------------------------------------------------------------------------------------------

    def _limb(self, pts, lean_r, fat_r, tag, allowed_fat=None, allowed_muscle=None, n=6):
        cv = self.cv
        curve = catmull_rom(pts, n)
        tt = np.linspace(0, 1, len(curve))
        tk = np.linspace(0, 1, len(pts))
        lr = np.interp(tt, tk, lean_r)
        fr = np.interp(tt, tk, fat_r)
        cv.tube(curve, lr + fr, T.subcutaneous_fat, allowed=allowed_fat, tag=tag)
        cv.tube(curve, lr, T.muscle, allowed=allowed_muscle, tag=tag)
        return curve

    def legs(self):
        cv, s, lean = self.cv, self.s, self.lean
        sf = self.sf_mm
        fat_thigh = (1.0 if self.female else 0.7) * sf
        fat_calf = 0.45 * sf
        air = cv.allow([T.air])
        air_sf = cv.allow([T.air, T.subcutaneous_fat])
        L = self.L
        fs = [0.535, 0.50, 0.475, 0.42, 0.36, 0.30, 0.285, 0.26, 0.22, 0.16, 0.10, 0.06, 0.045]
        lean_r = np.array([78, 75, 72, 64, 56, 48, 46, 47, 48, 42, 34, 31, 31]) * s * lean
        fat_r = np.array([1, 1, 1, 0.95, 0.85, 0.7, 0.5, 0.6, 0.6, 0.5, 0.4, 0.3, 0.3]) * np.array(
            [fat_thigh] * 6 + [fat_calf] * 7)
        xs = np.array([95, 95, 93, 88, 82, 78, 76, 77, 78, 79, 80, 80, 80]) * s * self._sex_width(0.5)
        zs = [self.zf(f) for f in fs]
        yt = self.table_y
        self.leg_axis = {}
        for side in (-1, 1):
            pts = [(side * x, yt - (lr + fr) - 2.0, z) for x, lr, fr, z in zip(xs, lean_r, fat_r, zs, strict=False)]
            self._limb(pts, lean_r, fat_r, "leg", allowed_fat=air, allowed_muscle=air_sf)
            self.leg_axis[side] = np.array(pts)
            # foot: heel on the table, toes anterior (supine), sole at z = 0
            kx = side * 80 * s
            flen = 0.152 * self.H
            yheel = yt - 6 * s
            c = (kx, yheel - 0.5 * flen + 8 * s, 38 * s)
            cv.ellipsoid(c, (42 * s, 0.5 * flen, 38 * s), T.subcutaneous_fat, allowed=air, exponent=2.6,
                         tag="leg")
            cv.ellipsoid(c, (34 * s, 0.5 * flen - 8 * s, 30 * s), T.muscle, allowed=air_sf, exponent=2.6)
            # bones of the leg and foot are painted with the skeleton
        L["sole"] = 0.0

    def arm_points(self, side):
        s, lean = self.s, self.lean
        zsh = self.L["shoulder_top"] - 30 * s
        pr_sh = self.trunk_profile(np.array([self.zf(0.805)]))
        xh = side * (float(pr_sh["A"][0]) + 8 * s)
        yh = float(0.5 * (pr_sh["ya"][0] + pr_sh["yp"][0])) + 12 * s
        fat = 0.45 * self.sf_mm
        r_up, r_el, r_fa, r_wr = 40 * s * lean, 30 * s * lean, 33 * s * lean, 22 * s * lean
        if self.p.arms == "down":
            def xside(f, r):
                pr = self.trunk_profile(np.array([self.zf(f)]))
                _, tl, _ = self.sf_thickness(np.array([self.zf(f)]))
                return side * (float(pr["A"][0] + tl[0]) + r + 10 * s)

            ye = self.table_y - (r_el + fat) - 4
            yw = self.table_y - (r_wr + fat) - 6
            pts = [(xh, yh, zsh), (xside(0.72, r_up + fat), 0.5 * (yh + ye), self.zf(0.72)),
                   (xside(0.63, r_el + fat), ye, self.zf(0.63)),
                   (xside(0.55, r_fa * 0.8 + fat), yw, self.zf(0.555)),
                   (xside(0.485, r_wr + fat), yw, self.zf(0.485))]
            hand_dir = np.array([0.0, 0.0, -1.0])
        else:
            zv = self.L["vertex"]
            pts = [(xh, yh, zsh), (side * (float(pr_sh["A"][0]) + 5 * s), yh + 10 * s, zsh + 0.10 * self.H),
                   (side * 0.85 * float(pr_sh["A"][0]), yh + 20 * s, zsh + 0.185 * self.H),
                   (side * 0.55 * float(pr_sh["A"][0]), yh + 15 * s, zv + 0.04 * self.H),
                   (side * 25 * s, yh + 10 * s, zv + 0.08 * self.H)]
            hand_dir = np.array([-side * 0.8, 0.0, 0.6])
        radii = np.array([r_up * 1.15, r_up, r_el, r_fa, r_wr])
        return pts, radii, fat, hand_dir / np.linalg.norm(hand_dir)

    def arms(self):
        cv, s = self.cv, self.s
        air = cv.allow([T.air])
        air_sf = cv.allow([T.air, T.subcutaneous_fat])
        self.arm_geo = {}
        for side in (-1, 1):
            pts, radii, fat, hdir = self.arm_points(side)
            fat_r = np.array([fat * 0.8, fat, fat * 0.8, fat * 0.8, fat * 0.6])
            # proximal end inside the shoulder: soft tissue only where air / fat so the trunk is kept
            self._limb(pts, radii, fat_r, "arm", allowed_fat=air, allowed_muscle=air_sf)
            hlen = 0.108 * self.H
            w = np.array(pts[-1])
            hc = w + hdir * 0.5 * hlen
            R = rotation(hdir, [0, 1.0, 0])
            cv.ellipsoid(hc, (0.5 * hlen, 42 * s, 14 * s), T.subcutaneous_fat, rot=R, allowed=air, tag="arm")
            cv.ellipsoid(hc, (0.5 * hlen - 5 * s, 36 * s, 10 * s), T.muscle, rot=R, allowed=air_sf, tag="arm")
            self.arm_geo[side] = (pts, hc, hdir, hlen, R)

    # --- head and neck ------------------------------------------------------------------------------------

    def head_and_neck(self):
        cv, hs, s = self.cv, self.hs, self.s
        L = self.L
        zv = L["vertex"]
        Hh = zv - L["mandible_bottom"]
        self.Hh = Hh
        # head centre y: foramen magnum over the cervical canal
        yc1 = self.ys(self.vert["C1"]) + 20 * s
        yh = yc1 - 22 * hs
        self.yh = yh
        zc = zv - 88 * hs
        self.zc_head = zc
        R_out = np.array([73, 95, 88]) * hs
        self.R_skull = R_out
        air = cv.allow([T.air])
        scalp = 6 * hs + 0.15 * self.sf_mm
        # scalp / head soft tissue
        cv.ellipsoid((0, yh, zc), R_out + scalp, T.subcutaneous_fat, allowed=air)
        # face block (soft tissue of face and jaw)
        zf_c = zv - 0.69 * Hh
        face_c = (0, yh - 35 * hs, zf_c)
        cv.ellipsoid(face_c, (60 * hs, 68 * hs, 0.33 * Hh), T.subcutaneous_fat, allowed=air, exponent=2.4)
        cv.ellipsoid((0, yh - 35 * hs, zf_c - 0.02 * Hh), (50 * hs, 55 * hs, 0.29 * Hh), T.muscle,
                     allowed=cv.allow([T.subcutaneous_fat]), exponent=2.4)
        # nose
        cv.ellipsoid((0, yh - 100 * hs, zv - 0.55 * Hh), (11 * hs, 16 * hs, 24 * hs), T.subcutaneous_fat,
                     allowed=air)
        # posterior neck / suboccipital muscles under the skull
        cv.ellipsoid((0, yh + 40 * hs, L["skull_base"]), (55 * hs, 48 * hs, 40 * hs), T.muscle,
                     allowed=cv.allow([T.subcutaneous_fat, T.air]))
        # skull: outer table, diploe, inner table; cut below by the skull-base surface
        zb = self.skull_base_surface

        def above(off):
            return lambda X, Y, Z: Z > zb(X, Y) - off

        cv.ellipsoid((0, yh, zc), R_out, T.cortical_bone, where=above(9 * hs))
        cv.ellipsoid((0, yh, zc), R_out - 2 * hs, T.cancellous_bone, where=above(6 * hs))
        cv.ellipsoid((0, yh, zc), R_out - 5 * hs, T.cortical_bone, where=above(3 * hs))
        R_in = R_out - 7 * hs
        self.R_in = R_in
        cv.ellipsoid((0, yh, zc), R_in, T.csf, where=above(0))
        # brain: grey shell, white core, ventricles, cerebellum, brainstem
        atrophy = 1.0 + 0.004 * max(self.age - 50, 0)
        csf_t = (1.5 + 0.06 * max(self.age - 40, 0)) * hs
        Rb = R_in - csf_t
        zbb = lambda off: (lambda X, Y, Z: Z > zb(X, Y) + off)  # noqa: E731
        cv.ellipsoid((0, yh, zc), Rb, T.brain_grey, where=zbb(csf_t))
        cv.ellipsoid((0, yh, zc + 2 * hs), Rb - 4.0 * hs, T.brain_white, where=zbb(csf_t + 4 * hs),
                     allowed=cv.allow([T.brain_grey]))
        # cerebellum: posterior fossa below the tentorium
        ztent = zc - 0.14 * Hh
        cv.ellipsoid((0, yh + 48 * hs, ztent - 18 * hs), (52 * hs, 32 * hs, 24 * hs), T.cerebellum,
                     allowed=cv.allow([T.brain_grey, T.brain_white, T.csf]), where=zbb(csf_t))
        # lateral ventricles (grow with age)
        for side in (-1, 1):
            cv.ellipsoid((side * 10 * hs, yh - 2 * hs, zc + 5 * hs), (5.5 * hs * atrophy, 30 * hs, 8 * hs * atrophy),
                         T.ventricle_csf, allowed=cv.allow([T.brain_white, T.brain_grey]))
            cv.ellipsoid((side * 16 * hs, yh + 28 * hs, zc - 2 * hs), (6 * hs * atrophy, 10 * hs, 10 * hs),
                         T.ventricle_csf, allowed=cv.allow([T.brain_white, T.brain_grey]))
        cv.ellipsoid((0, yh + 5 * hs, zc - 5 * hs), (2.5 * hs * atrophy, 12 * hs, 8 * hs), T.ventricle_csf,
                     allowed=cv.allow([T.brain_white, T.brain_grey]))
        # brainstem down to the foramen magnum
        self.foramen = np.array([0, yh + 22 * hs, L["skull_base"]])
        cv.tube([(0, yh + 8 * hs, zc - 0.05 * Hh), (0, yh + 18 * hs, zc - 0.2 * Hh), tuple(self.foramen)],
                [13 * hs, 12 * hs, 10 * hs], T.brainstem,
                allowed=cv.allow([T.brain_grey, T.brain_white, T.csf, T.cerebellum, T.cortical_bone,
                                  T.cancellous_bone]))
        self._face_skeleton()
        self._neck()

    def skull_base_surface(self, X, Y):
        """Height (mm) of the cranial floor under (X, Y): the anterior fossa (roof of the orbits), two middle
        fossae (temporal lobes) and the posterior fossa bowl around the foramen magnum; their ridges are the
        sphenoid wings, the sella / clivus and the petrous ridges."""
        L, hs, yh = self.L, self.hs, self.yh
        ant = L["orbit_roof"] + 4 * hs + 0.02 / hs * np.maximum(Y - (yh - 38 * hs), 0.0) ** 2 \
            + 0.004 / hs * X ** 2
        mid = L["orbit_floor"] - 8 * hs + 0.012 / hs * ((np.abs(X) - 40 * hs) ** 2 + (Y - (yh - 2 * hs)) ** 2)
        yf = yh + 24 * hs
        post = L["skull_base"] + 0.009 / hs * (X ** 2 + (Y - yf) ** 2)
        return np.minimum(np.minimum(ant, mid), np.minimum(post, self.zc_head - 10 * hs))

    def _face_skeleton(self):
        cv, hs, L, yh = self.cv, self.hs, self.L, self.yh
        soft = cv.allow([T.subcutaneous_fat, T.muscle, T.air, T.csf])
        zeye = 0.5 * (L["orbit_roof"] + L["orbit_floor"])
        yfront = yh - 92 * hs
        # orbits: bony rim, fat, eye, lens, optic nerve
        for side in (-1, 1):
            xo = side * 31 * hs
            cv.ellipsoid((xo, yfront + 18 * hs, zeye), (19 * hs, 26 * hs, 19 * hs), T.cortical_bone)
            cv.ellipsoid((xo, yfront + 14 * hs, zeye), (16 * hs, 24 * hs, 16 * hs), T.internal_fat,
                         allowed=cv.allow([T.cortical_bone]))
            cv.ellipsoid((xo, yfront - 2 * hs, zeye), (18 * hs, 10 * hs, 17 * hs), T.internal_fat,
                         allowed=cv.allow([T.cortical_bone, T.subcutaneous_fat]))
            re = 11.8 * max(hs, 0.92)
            cv.ellipsoid((xo, yfront + 4 * hs, zeye), (re, re, re), T.eye)
            cv.ellipsoid((xo, yfront + 4 * hs - re + 2.5, zeye), (4.5, 2.0, 4.5), T.lens,
                         allowed=cv.allow([T.eye]))
            cv.capsule((xo, yfront + 4 * hs + re, zeye), (side * 12 * hs, yfront + 55 * hs, zeye + 5 * hs),
                       2.5 * hs, 2.5 * hs, T.soft_tissue, allowed=cv.allow([T.internal_fat, T.cortical_bone]))
        # nasal cavity and maxillary sinuses (air in a thin bone shell), frontal sinus
        # nasal cavity from the nostrils to the choanae, hard palate to the ethmoid, with its septum
        hn = 0.5 * (L["orbit_roof"] - 6 * hs - L["hard_palate"])
        zn = L["hard_palate"] + 2 * hs + hn
        nasal = ((0, yfront + 30 * hs, zn), (10 * hs, 32 * hs, hn))
        cv.ellipsoid(nasal[0], np.array(nasal[1]) + 2.5 * hs, T.cortical_bone, exponent=2.4, allowed=soft)
        cv.ellipsoid(*nasal, T.sinus_air, exponent=2.4)
        cv.ellipsoid(nasal[0], (1.2, 30 * hs, 0.9 * hn), T.cartilage, allowed=cv.allow([T.sinus_air]))
        zmx = 0.5 * (L["orbit_floor"] + L["hard_palate"])
        for side in (-1, 1):
            c = (side * 28 * hs, yfront + 34 * hs, zmx)
            rr = np.array([12, 16, 0.5 * (L["orbit_floor"] - L["hard_palate"])]) * np.array([hs, hs, 1])
            cv.ellipsoid(c, rr + 2.5 * hs, T.cortical_bone, allowed=soft)
            cv.ellipsoid(c, rr, T.sinus_air if self.age > 6 else T.soft_tissue)
            # zygomatic arch
            cv.capsule((side * 48 * hs, yfront + 25 * hs, L["orbit_floor"] - 6 * hs),
                       (side * 66 * hs, yh + 5 * hs, L["orbit_floor"] - 10 * hs), 5 * hs, 4 * hs, T.cortical_bone)
        if self.age > 10:
            cv.ellipsoid((0, yfront + 6 * hs, L["orbit_roof"] + 12 * hs), (14 * hs, 5 * hs, 9 * hs), T.sinus_air)
        # hard palate and upper dental arch
        zp = L["hard_palate"]
        cv.ellipsoid((0, yfront + 40 * hs, zp), (28 * hs, 34 * hs, 4 * hs), T.cortical_bone)
        arch = self._dental_arch(zp - 8 * hs, 30 * hs, 40 * hs, yfront + 10 * hs)
        cv.tube(arch, 7 * hs, T.cortical_bone)
        cv.tube(arch, 4.5 * hs, T.teeth)
        # mandible: body along a U arch from chin to angle, rami up to the TMJ
        zm = L["mandible_bottom"]
        arch_l = self._dental_arch(zm + 14 * hs, 42 * hs, 62 * hs, yfront + 14 * hs)
        cv.tube(arch_l, 8 * hs, T.cortical_bone, scale_xyz=(0.8, 0.8, 1.5))
        cv.tube(arch_l, 5 * hs, T.cancellous_bone, scale_xyz=(0.8, 0.8, 1.5))
        arch_t = self._dental_arch(zm + 27 * hs, 30 * hs, 42 * hs, yfront + 13 * hs)
        cv.tube(arch_t, 4.5 * hs, T.teeth)
        for side in (-1, 1):
            a = (side * 44 * hs, yfront + 72 * hs, zm + 12 * hs)
            b = (side * 50 * hs, yh + 8 * hs, L["skull_base"] + 5 * hs)
            cv.capsule(a, b, 7 * hs, 6 * hs, T.cortical_bone, scale_xyz=(0.6, 1.3, 1.0))
            cv.ellipsoid((side * 56 * hs, yfront + 78 * hs, zm + 35 * hs), (9 * hs, 16 * hs, 28 * hs), T.muscle,
                         allowed=cv.allow([T.subcutaneous_fat, T.air]))  # masseter
        # tongue / floor of mouth
        cv.ellipsoid((0, yfront + 45 * hs, zp - 20 * hs), (24 * hs, 34 * hs, 14 * hs), T.muscle,
                     allowed=cv.allow([T.subcutaneous_fat, T.muscle]))
        self.yfront = yfront

    def _dental_arch(self, z, half_w, depth, y_front, n=13):
        t = np.linspace(-1, 1, n)
        x = half_w * np.sin(t * np.pi / 2)
        y = y_front + depth * t ** 2
        return np.stack([x, y, np.full(n, z)], axis=1)

    def _neck(self):
        cv, s, hs, L = self.cv, self.s, self.hs, self.L
        soft = cv.allow([T.subcutaneous_fat, T.muscle, T.internal_fat, T.lung, T.visceral_fat])
        # airway: nasopharynx -> oropharynx -> larynx -> trachea (to the carina)
        yc = lambda z: self.ys(z)  # noqa: E731
        zc7 = self.vert["C7"]
        pts = [(0, self.yfront + 70 * hs, L["hard_palate"] + 8 * hs),
               (0, yc(self.vert["C2"]) - 22 * s, self.vert["C2"]),
               (0, yc(self.vert["C4"]) - 26 * s, self.vert["C4"]),
               (0, yc(zc7) - 30 * s, zc7),
               (0, yc(self.vert["T2"]) - 30 * s, self.vert["T2"]),
               (0, yc(L["carina"]) - 35 * s, L["carina"] + 10 * s)]
        self.airway_pts = pts
        rt = 8.5 * s
        cv.tube(catmull_rom(pts, 4), [11 * hs] * 3 * 4 + [rt + 2.5 * s] * (len(catmull_rom(pts, 4)) - 12),
                T.soft_tissue, allowed=soft)
        cv.tube(catmull_rom(pts, 4), rt, T.airway)
        # thyroid lobes and isthmus
        zt0, zt1 = L["thyroid_bottom"], L["thyroid_top"]
        ztm = 0.5 * (zt0 + zt1)
        ytr = yc(ztm) - 30 * s
        for side in (-1, 1):
            cv.ellipsoid((side * 17 * s, ytr + 2 * s, ztm), (8 * s, 10 * s, 0.5 * (zt1 - zt0)), T.thyroid,
                         allowed=soft)
        cv.ellipsoid((0, ytr - 11 * s, zt0 + 0.3 * (zt1 - zt0)), (14 * s, 4 * s, 7 * s), T.thyroid, allowed=soft)
        # carotid arteries and jugular veins
        for side in (-1, 1):
            za = L["carina"] + 40 * s
            cv.tube([(side * 12 * s, yc(za) - 30 * s, za), (side * 24 * s, yc(zc7) - 20 * s, zc7),
                     (side * 28 * s, yc(self.vert["C2"]) - 12 * s, self.vert["C2"]),
                     (side * 30 * s, self.yh + 10 * hs, L["skull_base"])], 4 * s, T.artery, allowed=soft)
            cv.tube([(side * 30 * s, yc(za) - 30 * s, za - 10 * s), (side * 35 * s, yc(zc7) - 18 * s, zc7),
                     (side * 38 * s, yc(self.vert["C2"]) - 8 * s, self.vert["C2"]),
                     (side * 36 * s, self.yh + 18 * hs, L["skull_base"])], 5.5 * s, T.vein, allowed=soft)
            # sternocleidomastoid
            cv.tube([(side * 20 * s, yc(L["lung_apex"]) - 50 * s, L["lung_apex"]),
                     (side * 42 * s, yc(self.vert["C4"]) - 20 * s, self.vert["C4"]),
                     (side * 50 * hs, self.yh + 25 * hs, L["skull_base"] - 5 * hs)], 8 * s, T.muscle,
                    allowed=cv.allow([T.subcutaneous_fat]))

    # --- skeleton -------------------------------------------------------------------------------------

    def _bone(self, kind, *args, cortex=1.5, **kw):
        """Paint a shelled bone: ``kind`` 'ellipsoid' (center, radii) or 'tube' (points, radii)."""
        cv = self.cv
        if kind == "ellipsoid":
            c, r = args
            r = np.asarray(r, float)
            cv.ellipsoid(c, r, T.cortical_bone, **kw)
            cv.ellipsoid(c, np.maximum(r - cortex, 0.5), T.cancellous_bone, **kw)
        else:
            pts, r = args
            r = np.asarray(r, float)
            cv.tube(pts, r, T.cortical_bone, **kw)
            cv.tube(pts, np.maximum(r - cortex, 0.3), T.cancellous_bone, **kw)

    def spine(self):
        cv, s = self.cv, self.s
        names = list(self.vert)
        canal_pts = []
        for i, name in enumerate(names):
            z = self.vert[name]
            reg = name[0]
            n = int(name[1:])
            if reg == "C":
                ax, ay, h, cx, cy, sp, tp, drop = 9 + 0.4 * n, 8 + 0.2 * n, 11, 12, 8, 14 + (10 if n == 7 else 0), 16, 6
            elif reg == "T":
                ax, ay, h, cx, cy, sp, tp, drop = 13 + 0.6 * n, 12 + 0.4 * n, 18 + 0.6 * n, 8, 8, 32, 26, 22
            else:
                ax, ay, h, cx, cy, sp, tp, drop = 21 + n, 16 + 0.5 * n, 26, 11, 8, 30, 30, 6
            ax, ay, h, cx, cy, sp, tp, drop = (v * s for v in (ax, ay, h, cx, cy, sp, tp, drop))
            if name == "C1":
                ax, ay, h = 6 * s, 5 * s, 8 * s
            ys = self.ys(z)
            self._bone("ellipsoid", (0, ys, z), (ax, ay, 0.5 * h), exponent=2.6)
            ycan = ys + ay + cy + 2 * s
            canal_pts.append((0, ycan, z))
            # neural arch: pedicles + laminae as a ring, spinous and transverse processes
            cv.cylinder_z((0, ycan), (cx + 5 * s, cy + 5 * s), z - 0.4 * h, z + 0.4 * h, T.cortical_bone)
            cv.capsule((0, ycan + cy + 3 * s, z), (0, ycan + cy + sp, z - drop), 4.5 * s, 3.5 * s,
                       T.cortical_bone, scale_xyz=(0.7, 1, 1.4))
            for side in (-1, 1):
                cv.capsule((side * (cx + 2 * s), ycan - 1 * s, z), (side * (cx + tp), ycan + 6 * s, z + 0.1 * h),
                           5 * s, 4 * s, T.cortical_bone)
            # disc below
            if i + 1 < len(names):
                zn = self.vert[names[i + 1]]
                gap0, gap1 = zn + 0.5 * h * 0.9, z - 0.5 * h
                if gap1 > gap0:
                    cv.cylinder_z((0, 0.5 * (ys + self.ys(zn))), (ax * 0.95, ay * 0.95), gap0, gap1, T.disc,
                                  exponent=4.0)
        # sacrum and coccyx
        z0, z1 = self.zf(0.493), self.zf(0.578)
        b = cv.box((-80 * s, -1e4, z0), (80 * s, 1e4, z1))
        if b is not None:
            sl, X, Y, Z = b
            t, yc, hw, hd = self.sacrum_geometry(Z)
            m = (np.abs(X / hw) ** 3 + np.abs((Y - yc) / hd) ** 3) <= 1.0
            cv.paint(sl, m, T.cortical_bone)
            m2 = (np.abs(X / np.maximum(hw - 2 * s, 1)) ** 3 + np.abs((Y - yc) / np.maximum(hd - 2 * s, 1)) ** 3) <= 1
            cv.paint(sl, m2, T.cancellous_bone)
            canal = ((X / (9 * s)) ** 2 + ((Y - yc - 0.3 * hd) / (5 * s)) ** 2 <= 1) & (t < 0.55)
            cv.paint(sl, canal, T.csf)
            # S1 disc
            zl5 = self.vert["L5"]
            cv.cylinder_z((0, self.ys(zl5) + 4 * s), (24 * s, 17 * s), z1, zl5 - 13 * s, T.disc, exponent=4)
        # spinal canal (CSF) from the foramen magnum to the sacrum, cord down to L1 (conus)
        zs1 = self.zf(0.57)
        _, ycs, _, hds = self.sacrum_geometry(np.array([zs1]))
        canal_pts = [tuple(self.foramen)] + canal_pts + [(0, float(ycs[0] + 0.3 * hds[0]), zs1)]
        curve = catmull_rom(canal_pts, 3)
        zc = curve[:, 2]
        r_can = np.interp(zc, [self.vert["L5"], self.vert["L1"], self.vert["T1"], self.vert["C1"]],
                          [8.5, 8, 7.5, 9.5]) * s
        cv.tube(curve, r_can, T.csf)
        cord = curve[zc >= self.vert["L1"] - 10 * s]
        rc = np.interp(cord[:, 2], [self.vert["L1"], self.vert["T6"], self.vert["C6"], self.vert["C1"]],
                       [3.5, 4.2, 5.5, 5.5]) * s
        cv.tube(cord, rc, T.spinal_cord, scale_xyz=(1.15, 0.85, 1))

    def rib_curve(self, i: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre line (N, 3) and radius (N,) of rib ``i`` (1..12), ``side`` -1 right / +1 left, plus the
        costal cartilage part flag."""
        s = self.s
        zt = self.vert[f"T{i}"]
        ys = self.ys(zt)
        phi_end = {1: 0.83, 2: 0.86, 3: 0.86, 4: 0.85, 5: 0.84, 6: 0.82, 7: 0.80, 8: 0.74, 9: 0.68, 10: 0.62,
                   11: 0.50, 12: 0.36}[i]
        drop_total = {1: 28, 2: 55, 3: 70, 4: 80, 5: 90, 6: 95, 7: 95, 8: 90, 9: 80, 10: 70, 11: 45,
                      12: 30}[i] * s
        phi = np.linspace(0.10, phi_end, 24) * np.pi
        g = ((phi - phi[0]) / (np.pi - phi[0])) ** 1.3
        z = zt + 8 * s - drop_total * g / max(g[-1], 1e-6)
        pr = self.trunk_profile(z)
        Ac, yac, ypc = self.cavity_profile(z, pr)
        rr = 5.5 * s
        # inner surface of the chest wall -> rib just outside the pleura
        a = Ac + rr + 1.5 * s
        if i == 1:
            a = a * 0.62
        elif i == 2:
            a = a * 0.85
        yc = 0.5 * (yac + ypc)
        b_ant = yc - yac + rr
        b_post = ypc - yc + 6 * s
        pe = 2.3
        sx = np.abs(np.sin(phi)) ** (2 / pe)
        cy = np.cos(phi)
        x = side * a * sx
        y = yc + np.where(cy > 0, b_post, b_ant) * np.sign(cy) * np.abs(cy) ** (2 / pe)
        head = np.array([[side * 14 * s, ys + 10 * s, zt + 6 * s]])
        pts = np.vstack([head, np.stack([x, y, z], axis=1)])
        rad = np.full(len(pts), rr)
        if i == 1:
            rad[:] = 6.5 * s
        return pts, rad

    def ribs_and_sternum(self):
        cv, s = self.cv, self.s
        lowest = np.inf
        ribs = []
        for i in range(1, 13):
            for side in (-1, 1):
                pts, rad = self.rib_curve(i, side)
                ribs.append((i, side, pts, rad))
                lowest = min(lowest, float(np.min(pts[:, 2] - rad)))
        for _, _, pts, rad in ribs:
            cv.tube(pts, rad, T.cortical_bone, scale_xyz=(1, 1, 1.5))
        for _, _, pts, rad in ribs:
            cv.tube(pts, rad - 2.0 * s, T.cancellous_bone, scale_xyz=(1, 1, 1.5))
        self.L["lowest_rib"] = lowest
        # sternum (manubrium + body + xiphoid) and costal cartilages
        z_top = self.vert["T2"] - 5 * s
        z_xi = self.vert["T10"]
        zz = np.linspace(z_top, z_xi, 12)
        pr = self.trunk_profile(zz)
        ya = pr["ya"]
        pts = np.stack([np.zeros_like(zz), ya + 10 * s, zz], axis=1)
        w = np.interp(zz, [z_xi, z_xi + 30 * s, self.vert["T4"], z_top], [8, 14, 16, 26]) * s
        cv.tube(pts, w, T.cortical_bone, scale_xyz=(1.0, 0.35, 1.0))
        cv.tube(pts, w - 1.5 * s, T.cancellous_bone, scale_xyz=(1.0, 0.3, 1.0))
        self.sternum = pts
        ok = cv.allow([T.muscle, T.subcutaneous_fat, T.lung, T.visceral_fat, T.internal_fat])
        for i, side, rpts, _rad in ribs:
            if i > 10 or i == 1:
                continue
            end = rpts[-1]
            zt = float(np.interp(min(i, 7), np.arange(1, 8), np.linspace(z_top - 10 * s, z_xi + 10 * s, 7)))
            if i <= 7:
                tgt = np.array([side * 12 * s, float(np.interp(zt, zz[::-1], ya[::-1])) + 12 * s, zt])
            else:
                tgt = end + np.array([-side * 25 * s, -15 * s, 30 * s])
            mid = 0.5 * (end + tgt) + np.array([0, -6 * s, -8 * s])
            cv.tube(catmull_rom([end, mid, tgt], 4), 4.5 * s, T.cartilage, allowed=ok)

    def shoulder_girdle(self):
        cv, s = self.cv, self.s
        for side in (-1, 1):
            pts, radii, fat, hdir = self.arm_points(side)
            head = np.array(pts[0])
            rh = 22 * s
            # clavicle: sternoclavicular joint -> acromion (S-shaped, anterior bow medially)
            zst = self.vert["T2"] + 2 * s
            yst = float(self.trunk_profile(np.array([zst]))["ya"][0]) + 14 * s
            acr = head + np.array([-side * 5 * s, 4 * s, rh + 10 * s])
            cl = catmull_rom([(side * 22 * s, yst, zst), (side * 70 * s, yst - 4 * s, zst + 8 * s),
                              (side * 0.5 * (70 * s + abs(acr[0])), yst + 15 * s, acr[2] - 3 * s), tuple(acr)], 5)
            self._bone("tube", cl, 7 * s)
            # acromion / spine of scapula -> scapular blade on the posterior rib cage
            zsp = head[2] + 12 * s
            ysp = self.ys(zsp)
            spine_pts = [tuple(acr + np.array([0, 15 * s, 0])), (side * 0.8 * abs(head[0]), ysp + 55 * s, zsp),
                         (side * 55 * s, ysp + 50 * s, zsp - 10 * s)]
            cv.tube(spine_pts, 6 * s, T.cortical_bone)
            # blade: triangle (medial border ~x=60, inferior angle at ~T7) following the rib cage
            zinf = self.vert["T7"]
            zz = np.linspace(zinf, zsp, 10)
            for z in zz:
                u = (z - zinf) / (zsp - zinf)
                xm = side * 58 * s
                xl = side * (70 * s + u * (abs(head[0]) - rh - 72 * s))
                xs = np.linspace(xm, xl, 6)
                prz = self.trunk_profile(np.array([z]))
                Ac, yac, ypc = (float(v[0]) for v in self.cavity_profile(np.array([z]), prz))
                yb = []
                for x in xs:
                    q = min(abs(x) / (Ac + 6 * s), 0.999)
                    yb.append(0.5 * (yac + ypc) + (ypc - 0.5 * (yac + ypc) + 20 * s) * (1 - q ** 2.3) ** (1 / 2.3)
                              - 0.3 * (abs(x) - 58 * s))
                seg = np.stack([xs, np.array(yb), np.full(6, z)], axis=1)
                cv.tube(seg, 3.0 * s, T.cortical_bone, allowed=cv.allow([T.muscle, T.subcutaneous_fat]))
            # glenoid and humerus
            cv.ellipsoid(head + np.array([-side * (rh + 4 * s), 8 * s, 0]), (6 * s, 16 * s, 20 * s),
                         T.cortical_bone)
        self.L["shoulder_bottom"] = float(self.arm_points(1)[0][0][2] - 22 * s)

    def pelvis_and_femurs(self):
        cv, s, L = self.cv, self.s, self.L
        fem = 1.08 if self.female else 1.0
        zfh = L["femoral_heads"]
        rh = (21.0 if self.female else 24.0) * s
        fhx = (92.0 if self.female else 88.0) * s
        y5 = self.ys(self.vert["L5"])
        yfh = y5 - 12 * s
        L["femoral_head_top"] = zfh + rh + 3 * s
        zcrest = L["iliac_crest"]
        # iliac blades: arcs of an ellipse around (0, y0), flaring upward
        y0 = y5 + 10 * s
        z_lo = zfh + 15 * s
        b = cv.box((-200 * s * fem, y0 - 150 * s, z_lo), (200 * s * fem, y0 + 150 * s, zcrest + 2))
        if b is not None:
            sl, X, Y, Z = b
            u = np.clip((Z - z_lo) / (zcrest - z_lo), 0, 1)
            Rx = (80 + 50 * u ** 0.8) * s * fem
            Ry = (62 + 26 * u) * s
            rho = np.sqrt((X / Rx) ** 2 + ((Y - y0) / Ry) ** 2)
            phi = np.arctan2(np.abs(X), Y - y0) / np.pi
            zc_phi = zcrest - 40 * s * ((phi - 0.45) / 0.33) ** 2
            Rm = 0.5 * (Rx + Ry)
            thick = (7 + 5 * np.clip((Z - (zc_phi - 15 * s)) / (15 * s), 0, 1)) * s
            inside = (np.abs(rho - 1) * Rm < 0.5 * thick) & (phi > 0.2) & (phi < 0.80) & (Z <= zc_phi)
            cv.paint(sl, inside, T.cortical_bone)
            inner = (np.abs(rho - 1) * Rm < 0.5 * thick - 2 * s) & (phi > 0.21) & (phi < 0.79) & (Z <= zc_phi - 2 * s)
            cv.paint(sl, inner, T.cancellous_bone)
        ysym = float(self.trunk_profile(np.array([L["pubic_symphysis"]]))["ya"][0]) + 22 * s
        zsym = L["pubic_symphysis"]
        zit = L["ischial_tuberosity"]
        for side in (-1, 1):
            c = np.array([side * fhx, yfh, zfh])
            # ilium body: SI joint region -> acetabular roof; anterior border
            self._bone("tube", [(side * 52 * s * fem, y0 + 40 * s, self.zf(0.565)),
                                (side * (fhx - 5 * s), yfh + 10 * s, zfh + rh + 12 * s)], [18 * s, 20 * s], cortex=2 * s)
            self._bone("tube", [(side * 98 * s * fem, y0 - 62 * s, zcrest - 40 * s),
                                (side * (fhx + 5 * s), yfh - 18 * s, zfh + rh + 5 * s)], [9 * s, 12 * s])
            # acetabulum: bony cup open laterally / inferiorly / anteriorly
            n_open = np.array([side * 0.75, -0.35, -0.55])
            n_open /= np.linalg.norm(n_open)

            def cup(X, Y, Z, c=c, n_open=n_open):
                d = np.stack(np.broadcast_arrays(X - c[0], Y - c[1], Z - c[2]))
                nrm = np.sqrt((d ** 2).sum(0)) + 1e-6
                return (d[0] * n_open[0] + d[1] * n_open[1] + d[2] * n_open[2]) / nrm < 0.25

            cv.ellipsoid(c, (rh + 12 * s,) * 3, T.cortical_bone, where=cup)
            cv.ellipsoid(c, (rh + 9 * s,) * 3, T.cancellous_bone, where=cup)
            cv.ellipsoid(c, (rh + 2.5 * s,) * 3, T.cartilage,
                         allowed=cv.allow([T.cortical_bone, T.cancellous_bone]))
            # pubis, rami, ischium
            pb = np.array([side * 14 * s, ysym, zsym])
            self._bone("ellipsoid", pb, (11 * s, 10 * s, 21 * s))
            self._bone("tube", [pb + np.array([side * 4 * s, 2 * s, 12 * s]),
                                c + np.array([-side * 14 * s, -20 * s, -2 * s])], [9 * s, 11 * s])
            tub = np.array([side * 55 * s * fem, yfh + 40 * s, zit + 12 * s])
            self._bone("tube", [pb + np.array([side * 3 * s, 4 * s, -14 * s]), tub], [7 * s, 9 * s])
            self._bone("tube", [c + np.array([-side * 8 * s, 22 * s, -14 * s]), tub], [15 * s, 13 * s])
            self._bone("ellipsoid", tub, (15 * s, 19 * s, 14 * s))
            # femur: head, neck, trochanters, shaft with marrow, condyles, patella
            cv.ellipsoid(c, (rh,) * 3, T.femoral_head_cortical)
            cv.ellipsoid(c, (rh - 2.5 * s,) * 3, T.femoral_head_cancellous)
            neck_end = c + np.array([side * 40 * s, 8 * s, -30 * s])
            self._bone("tube", [c + np.array([side * 0.7 * rh, 0, -0.5 * rh]), neck_end], [15 * s, 16 * s],
                       cortex=2 * s, allowed=cv.allow([T.air, T.muscle, T.subcutaneous_fat, T.visceral_fat,
                                                       T.cancellous_bone, T.cortical_bone]))
            self._bone("ellipsoid", c + np.array([side * 48 * s, 12 * s, -10 * s]), (14 * s, 20 * s, 24 * s))
            self._bone("ellipsoid", c + np.array([side * 20 * s, 16 * s, -58 * s]), (9 * s, 9 * s, 11 * s))
            leg = self.leg_axis[side]
            zk = L["knees"]
            kx = float(np.interp(zk, leg[::-1, 2], leg[::-1, 0]))
            yk = float(np.interp(zk, leg[::-1, 2], leg[::-1, 1]))
            shaft = [neck_end, (side * (abs(neck_end[0]) - 8 * s), yfh + 8 * s, zfh - 90 * s),
                     (0.5 * (neck_end[0] + kx), 0.5 * (yfh + yk), 0.5 * (zfh + zk)), (kx, yk - 2 * s, zk + 70 * s)]
            shaft = catmull_rom(shaft, 6)
            r_sh = np.interp(shaft[:, 2], [zk + 70 * s, zfh - 40 * s], [15, 15]) * s
            cv.tube(shaft, r_sh, T.cortical_bone)
            med = shaft[(shaft[:, 2] < zfh - 70 * s) & (shaft[:, 2] > zk + 80 * s)]
            cv.tube(med, r_sh[: len(med)] * 0 + 8.5 * s, T.marrow)
            self._bone("ellipsoid", (kx, yk + 4 * s, zk + 24 * s), (38 * s, 30 * s, 27 * s), cortex=2 * s)
            self._bone("ellipsoid", (kx, yk - 40 * s, zk + 28 * s), (19 * s, 9 * s, 20 * s), cortex=2 * s)
            # tibia, fibula
            za = L["ankles"]
            ax = float(np.interp(za + 20 * s, leg[::-1, 2], leg[::-1, 0]))
            ay = float(np.interp(za + 20 * s, leg[::-1, 2], leg[::-1, 1]))
            self._bone("ellipsoid", (kx, yk + 2 * s, zk - 16 * s), (37 * s, 28 * s, 15 * s), cortex=2 * s)
            tib = catmull_rom([(kx, yk - 4 * s, zk - 25 * s), (kx - side * 4 * s, yk - 14 * s, 0.5 * (zk + za)),
                               (ax - side * 4 * s, ay - 8 * s, za + 18 * s)], 6)
            r_t = np.interp(tib[:, 2], [za + 18 * s, 0.5 * (zk + za), zk - 25 * s], [12, 12, 18]) * s
            cv.tube(tib, r_t, T.cortical_bone)
            midt = tib[(tib[:, 2] < zk - 60 * s) & (tib[:, 2] > za + 50 * s)]
            cv.tube(midt, 6 * s, T.marrow)
            self._bone("ellipsoid", (ax - side * 4 * s, ay - 6 * s, za + 12 * s), (22 * s, 20 * s, 14 * s), cortex=2 * s)
            self._bone("ellipsoid", (ax - side * 20 * s, ay - 4 * s, za - 2 * s), (7 * s, 10 * s, 14 * s))
            fib = [(kx + side * 30 * s, yk + 14 * s, zk - 28 * s), (ax + side * 24 * s, ay + 8 * s, za - 4 * s)]
            self._bone("tube", fib, [8 * s, 7 * s], cortex=2 * s)
            # foot: talus, calcaneus, metatarsals
            yheel = self.table_y - 6 * s
            self._bone("ellipsoid", (ax, ay - 8 * s, za - 12 * s), (18 * s, 26 * s, 15 * s), cortex=2 * s)
            self._bone("ellipsoid", (ax, yheel - 30 * s, 34 * s), (19 * s, 34 * s, 22 * s), cortex=2 * s)
            for dx in (-24, -12, 0, 12, 24):
                self._bone("tube", [(ax + side * dx * s * 0.6, ay - 45 * s, 38 * s),
                                    (ax + side * dx * s, yheel - 0.152 * self.H + 45 * s, 18 * s)], 5 * s, cortex=2 * s)
        self.fh = (fhx, yfh, zfh, rh)
        # arm bones
        for side in (-1, 1):
            pts, radii, fat, hdir = self.arm_points(side)
            pts = np.array(pts)
            rh_h = 22 * self.s
            self._bone("ellipsoid", pts[0], (rh_h,) * 3, cortex=2 * s)
            elbow = pts[2]
            hum = catmull_rom([pts[0], pts[1], elbow + (pts[1] - elbow) * 0.12], 5)
            cv.tube(hum, 11 * s, T.cortical_bone)
            cv.tube(hum[3:-3], 6 * s, T.marrow)
            self._bone("ellipsoid", elbow, (26 * s, 13 * s, 14 * s))
            fore = catmull_rom(pts[2:], 5)
            off = np.array([0, 9 * s, 0])
            cv.tube(fore + off, 8 * s, T.cortical_bone)
            cv.tube(fore - off, 7 * s, T.cortical_bone)
            cv.tube(fore + off, 4 * s, T.marrow)
            _, hc, hd, hlen, R = self.arm_geo[side]
            w = pts[-1]
            for dy in (-24, -8, 8, 24):
                o = R[:, 1] * dy * s
                cv.capsule(w + o + hd * 10 * s, w + o + hd * 0.85 * hlen, 4.5 * s, 3 * s, T.cortical_bone)

    # --- thorax ------------------------------------------------------------------------------------------

    def _heart_geometry(self):
        """Heart ellipsoid (centre, radii, rotation) and its top / bottom landmarks: long axis from the base
        (right, posterior, superior) to the apex (left, anterior, inferior); resting on the central tendon
        (lower pole 10 mm below the diaphragm surface, where it is cut), base below the carina."""
        s, L = self.s, self.L
        zcar = L["carina"]
        hf = self.fac(0.06)
        u = np.array([0.58, -0.48, -0.66])
        Rh = rotation(u, [0, 0, 1.0])
        rad = np.array([70, 52, 46]) * s * hf
        half_z = np.sqrt(((Rh * rad[None, :]) ** 2).sum(axis=1))[2]
        zc = zcar - 12 * s - half_z
        yc = 0.0
        for _ in range(3):
            yc = float(self.cavity_profile(np.array([zc]))[1][0]) + 62 * s
            zc = min(float(self.diaphragm_z(np.array(22 * s), np.array(yc))) - 10 * s + half_z, zcar - 12 * s - half_z)
        c = np.array([22 * s, yc, zc])
        pts = ellipsoid_points(c, rad, Rh, n=6000, seed=1)
        keep = pts[:, 2] > self.diaphragm_z(pts[:, 0], pts[:, 1]) + 4 * s
        L["heart_top"] = float(pts[keep, 2].max())
        L["heart_bottom"] = float(pts[keep, 2].min())
        self.heart = (c, rad, Rh)

    def thorax_organs(self):
        cv, s, L = self.cv, self.s, self.L
        lung_fat = cv.allow([T.lung, T.internal_fat, T.muscle, T.visceral_fat])
        thor = cv.allow([T.lung, T.internal_fat])
        zcar = L["carina"]
        # heart with pericardial fat, chambers (geometry from _heart_geometry)
        c, rad, Rh = self.heart
        zc = float(c[2])
        # mediastinum: central band of fat between the lungs above the heart
        b = cv.box((-80 * s, -1e4, zc), (80 * s, 1e4, L["lung_apex"]))
        if b is not None:
            sl, X, Y, Z = b
            wm = np.interp(Z, [zc, zcar, L["lung_apex"]], [10, 18, 22]) * s
            ysp = np.interp(Z[:, 0, 0], self.cv.z, self.prof["ys"])[:, None, None]
            cv.paint(sl, (np.abs(X - 3 * s) < wm) & (Y < ysp + 20 * s), T.internal_fat,
                     allowed=cv.allow([T.lung]))
        cv.ellipsoid(c, rad + 5 * s, T.internal_fat, rot=Rh, allowed=lung_fat,
                     where=lambda X, Y, Z: Z > self.diaphragm_z(X, Y))
        abovedia = lambda X, Y, Z: Z > self.diaphragm_z(X, Y) + 4 * s  # noqa: E731
        cv.ellipsoid(c, rad, T.heart_muscle, rot=Rh, allowed=cv.allow([T.internal_fat]), where=abovedia)
        hm = cv.allow([T.heart_muscle])

        def chamber(cu, cvv, cw, ru, rv, rw, tissue):
            pc = c + Rh @ (np.array([cu, cvv, cw]) * rad)
            cv.ellipsoid(pc, np.array([ru, rv, rw]) * rad, tissue, rot=Rh, allowed=hm)

        chamber(0.18, -0.22, 0.0, 0.58, 0.42, 0.45, T.heart_blood_left)    # LV
        chamber(0.05, 0.42, 0.05, 0.55, 0.30, 0.55, T.heart_blood_right)   # RV
        chamber(-0.62, -0.2, 0.35, 0.32, 0.40, 0.35, T.heart_blood_left)   # LA
        chamber(-0.45, 0.55, -0.2, 0.38, 0.30, 0.45, T.heart_blood_right)  # RA
        # aorta: root -> ascending -> arch -> descending -> abdominal -> bifurcation (L4)
        ysf = self.ys
        root = c + Rh @ (np.array([-0.55, 0.05, 0.25]) * rad)
        zarch = zcar + 32 * s
        yac_top = float(self.cavity_profile(np.array([zcar]))[1][0])
        zbif = self.vert["L4"] + 5 * s
        apts = [tuple(root), (-8 * s, yac_top + 42 * s, zcar - 5 * s), (-6 * s, yac_top + 40 * s, zcar + 18 * s),
                (4 * s, ysf(zarch) - 40 * s, zarch), (22 * s, ysf(zarch) - 20 * s, zarch - 6 * s),
                (24 * s, ysf(zcar) - 16 * s, zcar - 10 * s), (20 * s, ysf(L["diaphragm_dome"]) - 20 * s,
                                                                L["diaphragm_dome"]),
                (10 * s, ysf(self.vert["T12"]) - 24 * s, self.vert["T12"]),
                (8 * s, ysf(self.vert["L2"]) - 27 * s, self.vert["L2"]),
                (6 * s, ysf(zbif) - 26 * s, zbif)]
        acurve = catmull_rom(apts, 6)
        t = np.linspace(0, 1, len(acurve))
        ar = np.interp(t, np.linspace(0, 1, len(apts)), np.array([15, 16, 15, 14, 13, 12.5, 12, 11, 10, 9]) * s)
        ao_ok = cv.allow([T.lung, T.internal_fat, T.visceral_fat, T.muscle, T.heart_muscle])
        self.aorta_curve = acurve
        # arch branches and supra-aortic vessels first (thin), then the aorta over them
        for xo, r in ((-12, 6.5), (2, 4.5), (14, 5)):
            p0 = catmull_rom(apts, 6)[np.argmin(np.abs(acurve[:, 2] - zarch) + 1e3 * (acurve[:, 0] > (xo + 8) * s))]
            cv.tube([(xo * s, p0[1] - 4 * s, zarch), (xo * 1.6 * s, ysf(L["lung_apex"]) - 30 * s, L["lung_apex"] + 15 * s)],
                    r * s, T.artery, allowed=cv.allow([T.internal_fat, T.lung]))
        cv.tube(acurve, ar, T.aorta, allowed=ao_ok)
        # iliac arteries to the groin
        for side in (-1, 1):
            ipts = [(6 * s, ysf(zbif) - 26 * s, zbif), (side * 40 * s, ysf(zbif) - 10 * s, self.zf(0.575)),
                    (side * 70 * s, ysf(zbif) - 30 * s, self.zf(0.55)), (side * 85 * s, ysf(zbif) - 58 * s, self.zf(0.515))]
            cv.tube(catmull_rom(ipts, 4), 5.5 * s, T.artery, allowed=cv.allow([T.visceral_fat, T.muscle]))
            vpts = [(-10 * s, ysf(zbif) - 20 * s, zbif - 10 * s), (side * 36 * s, ysf(zbif) - 2 * s, self.zf(0.575)),
                    (side * 62 * s, ysf(zbif) - 22 * s, self.zf(0.55)), (side * 78 * s, ysf(zbif) - 50 * s, self.zf(0.515))]
            cv.tube(catmull_rom(vpts, 4), 7 * s, T.vein, allowed=cv.allow([T.visceral_fat, T.muscle]))
        # SVC and brachiocephalic veins into the right atrium
        ra = c + Rh @ (np.array([-0.6, 0.6, -0.1]) * rad)
        cv.tube(catmull_rom([(-24 * s, yac_top + 45 * s, L["lung_apex"] - 10 * s), (-25 * s, yac_top + 50 * s, zcar),
                             tuple(ra)], 4), 9 * s, T.vein, allowed=thor)
        cv.tube([(-24 * s, yac_top + 45 * s, L["lung_apex"] - 10 * s), (30 * s, yac_top + 35 * s, L["lung_apex"] - 5 * s)],
                6 * s, T.vein, allowed=thor)
        # pulmonary trunk and arteries
        rv = c + Rh @ (np.array([-0.4, 0.45, 0.45]) * rad)
        bif = np.array([8 * s, ysf(zcar) - 42 * s, zcar - 14 * s])
        cv.tube(catmull_rom([tuple(rv), (14 * s, yac_top + 35 * s, zcar - 20 * s), tuple(bif)], 4), 13 * s,
                T.artery, allowed=thor)
        hil_r = np.array([-45 * s, ysf(zcar) - 18 * s, zcar - 22 * s])
        hil_l = np.array([45 * s, ysf(zcar) - 14 * s, zcar - 12 * s])
        cv.tube([tuple(bif), tuple(hil_r)], 10 * s, T.artery, allowed=thor)
        cv.tube([tuple(bif), (30 * s, ysf(zcar) - 30 * s, zcar - 4 * s), tuple(hil_l)], 10 * s, T.artery,
                allowed=thor)
        # trachea -> main bronchi
        car = np.array(self.airway_pts[-1])
        for hil in (hil_r, hil_l):
            bend = hil + np.array([0, 14 * s, 8 * s])
            cv.tube([tuple(car), tuple(bend)], 9 * s, T.soft_tissue, allowed=thor)
            cv.tube([tuple(car), tuple(bend)], 6.5 * s, T.airway)
        # pulmonary vessel and bronchial trees from each hilum
        self._lung_trees(hil_r, hil_l)
        # esophagus: pharynx -> posterior mediastinum -> hiatus -> cardia
        z_eso_top = self.vert["C6"]
        epts = [(0, ysf(z_eso_top) - 17 * s, z_eso_top), (2 * s, ysf(zcar) - 20 * s, zcar),
                (8 * s, ysf(L["diaphragm_dome"]) - 32 * s, L["diaphragm_dome"]),
                (22 * s, ysf(self.vert["T11"]) - 42 * s, self.vert["T11"]),
                (38 * s, ysf(self.vert["T11"]) - 42 * s, self.vert["T11"] - 14 * s)]
        self.eso_pts = epts
        ecurve = catmull_rom(epts, 6)
        eso_ok = cv.allow([T.lung, T.internal_fat, T.visceral_fat, T.muscle, T.subcutaneous_fat, T.soft_tissue])
        cv.tube(ecurve, 8.5 * s, T.esophagus, allowed=eso_ok)
        cv.tube(ecurve[::3], 2.2 * s, T.esophagus_air, allowed=cv.allow([T.esophagus]))
        # thymus: anterior mediastinum, large in children
        th = float(np.interp(self.age, [2, 10, 20, 40, 90], [1.5, 1.3, 1.0, 0.75, 0.6]))
        zth = zcar + 10 * s
        yth = float(self.cavity_profile(np.array([zth]))[1][0]) + 14 * s * th
        cv.ellipsoid((0, yth, zth), np.array([24, 9, 32]) * s * th, T.thymus,
                     allowed=cv.allow([T.internal_fat, T.lung]))
        self.hila = (hil_r, hil_l)

    def _lung_trees(self, hil_r, hil_l):
        """Pulmonary vessel trees (and the larger bronchi beside them): from each hilum, lobar branches split
        dichotomously towards the periphery, radius x0.72 and length x0.8 per generation."""
        cv, s, rng = self.cv, self.s, self.rng
        lung = cv.allow([T.lung])
        L = self.L
        for side, hil in ((-1, hil_r), (1, hil_l)):
            # lobar directions: up, lateral, down-posterior, down-lateral, anterior
            dirs = [(0.3, 0.1, 1.0), (0.5, 0.5, 0.8), (1.0, 0.0, 0.15), (0.8, 0.6, 0.0), (0.45, 0.55, -1.0),
                    (0.7, -0.1, -0.8), (0.6, -0.7, -0.3), (0.5, -0.6, 0.5)]
            stack = []
            for d in dirs:
                d = np.array([side * d[0], d[1], d[2]], float)
                stack.append((hil.copy(), d / np.linalg.norm(d), 5.0 * s, 28.0 * s, 0))
            segs_v, segs_b = [], []
            while stack:
                p0, d, r, ln, gen = stack.pop()
                d = d + rng.normal(scale=0.18, size=3)
                d /= np.linalg.norm(d)
                p1 = p0 + d * ln
                segs_v.append((p0, p1, r, r * 0.85))
                if gen < 2:
                    segs_b.append((p0 + np.array([0, 3 * s, 2 * s]), p1 + np.array([0, 3 * s, 2 * s]), r * 0.8))
                if gen < 6 and L["lung_base"] - 20 < p1[2] < L["lung_apex"]:
                    for _k in range(2):
                        nd = d + rng.normal(scale=0.45, size=3)
                        stack.append((p1, nd / np.linalg.norm(nd), r * 0.72, ln * 0.8, gen + 1))
            for p0, p1, r0, r1 in segs_v:
                cv.capsule(p0, p1, max(r0, 0.7), max(r1, 0.6), T.lung_vessel, allowed=lung)
            for p0, p1, r in segs_b:
                cv.capsule(p0, p1, r, r * 0.85, T.airway, allowed=lung)

    # --- abdomen ---------------------------------------------------------------------------------------

    def abdomen_organs(self):
        cv, s, L, rng = self.cv, self.s, self.L, self.rng
        vf = cv.allow([T.visceral_fat])
        ysf = self.ys
        zd = L["diaphragm_dome"]
        zl = lambda n: self.vert[n]  # noqa: E731
        Ac_d, yac_d, ypc_d = (float(v[0]) for v in self.cavity_profile(np.array([zd - 60 * s])))
        # IVC: from the iliac confluence (L5) up the right of the spine, through the liver to the RA
        c_h, rad_h, R_h = self.heart
        ra = c_h + R_h @ (np.array([-0.45, 0.55, -0.35]) * rad_h)
        ivc_pts = [(-18 * s, ysf(zl("L5")) - 22 * s, zl("L4") - 10 * s), (-22 * s, ysf(zl("L2")) - 24 * s, zl("L2")),
                   (-26 * s, ysf(zl("T12")) - 22 * s, zl("T12")), (-22 * s, ysf(zl("T10")) - 20 * s, zl("T10")),
                   (ra[0] - 2 * s, ra[1] + 8 * s, ra[2])]
        ivc_c = catmull_rom(ivc_pts, 5)
        cv.tube(ivc_c, 11 * s, T.ivc, allowed=cv.allow([T.visceral_fat, T.muscle, T.lung, T.internal_fat]),
                scale_xyz=(1.2, 0.85, 1))
        # kidneys (retroperitoneal, lateral to psoas, L1-L3), right lower; adrenals above-medial
        ks = s * self.fac(0.08)
        krad = np.array([58, 31, 25]) * ks  # (long axis, lateral-posterior, third)
        ktop, kbot = -np.inf, np.inf
        self.kidneys = {}
        # left kidney at L1-L2, right ~15 mm lower; both kept below the posterior costophrenic recess
        kpos = {}
        for side in (-1, 1):
            zk = (0.5 * (zl("L1") + zl("L2")) if side > 0 else zl("L2")) + self.jit(5) * s
            Rk = rotation([side * -0.22, 0.18, 1.0], [side * 1.0, 0.6, 0])
            kpos[side] = (zk, Rk)
        # kidneys span L3 and the lowest rib and stay between the iliac crest and the lung base (landmark
        # order): map their z extent into that window, shortening them when it is too small (children)
        for _ in range(3):
            ext = [ellipsoid_points((0, 0, zk), krad, Rk, 2000, seed=3)[:, 2] for zk, Rk in kpos.values()]
            top0, bot0 = max(e.max() for e in ext), min(e.min() for e in ext)
            hi_top, lo_top = L["lung_base"] - 4 * s, L["lowest_rib"] + 3 * s
            hi_bot, lo_bot = L["l3"] - 3 * s, L["iliac_crest"] + 4 * s
            top_t = min(max(top0, lo_top), hi_top)
            bot_t = max(min(bot0, hi_bot), lo_bot)
            a = (top_t - bot_t) / max(top0 - bot0, 1e-6)
            kpos = {sd: (bot_t + a * (zk - bot0), Rk) for sd, (zk, Rk) in kpos.items()}
            krad = krad * np.array([a, 1.0, 1.0])
        for side in (-1, 1):
            zk, Rk = kpos[side]
            c = np.array([side * 72 * s, ysf(zk) + 12 * s, zk])
            cv.ellipsoid(c, krad, T.kidney_cortex, rot=Rk, allowed=vf)
            kc = cv.allow([T.kidney_cortex])
            for dz in (-0.5, 0.0, 0.5):
                pc = c + Rk @ (np.array([dz, -0.1, 0.0]) * krad)
                cv.ellipsoid(pc, krad * np.array([0.2, 0.45, 0.45]), T.kidney_medulla, rot=Rk, allowed=kc)
            # renal sinus fat and hilum (anteromedial)
            hil = c + Rk @ np.array([0.0, -0.8 * krad[1], 0.0])  # renal sinus / hilum: anteromedial
            cv.ellipsoid(hil, krad * np.array([0.3, 0.45, 0.35]), T.visceral_fat, rot=Rk,
                         allowed=cv.allow([T.kidney_cortex, T.kidney_medulla]))
            pts = ellipsoid_points(c, krad, Rk, 3000, seed=3)
            ktop, kbot = max(ktop, pts[:, 2].max()), min(kbot, pts[:, 2].min())
            self.kidneys[side] = (c, Rk)
            # renal vein / artery to the IVC / aorta
            tgt_v = np.array([-22 * s, ysf(zk) - 22 * s, zk])
            tgt_a = np.array([8 * s, ysf(zk) - 25 * s, zk + 6 * s])
            cv.tube([tuple(hil), tuple(0.5 * (hil + tgt_v) + np.array([0, -8 * s, 0])), tuple(tgt_v)], 4.5 * s,
                    T.vein, allowed=vf)
            cv.tube([tuple(hil + np.array([0, 4 * s, 5 * s])), tuple(tgt_a)], 3 * s, T.artery, allowed=vf)
            # adrenal: thin inverted V above-medial of the upper pole
            top = c + Rk @ np.array([krad[0], 0, 0])
            ad = top + np.array([-side * 14 * s, -6 * s, 14 * s])
            Ra = rotation([side * 0.2, -0.6, 1.0], [side * 1.0, 0, 0])
            cv.ellipsoid(ad, np.array([22, 3.5, 12]) * s, T.adrenal, rot=Ra, allowed=vf)
        L["kidney_top"], L["kidney_bottom"] = float(ktop), float(kbot)
        lf = s * self.fac(0.06)
        yl = 0.5 * (yac_d + ypc_d)
        porta = np.array([-28 * s, yl - 10 * s, zd - 115 * lf])
        # stomach: fundus under the left dome -> body -> antrum -> pylorus, gas anteriorly
        cardia = np.array(self.eso_pts[-1])
        zst = zd - 30 * s
        spts = [tuple(cardia + np.array([8 * s, 0, 0])), (55 * s, ypc_d - 55 * s, zst),
                (60 * s, yac_d + 50 * s, zd - 95 * s), (30 * s, yac_d + 35 * s, zd - 130 * s),
                (-5 * s, yac_d + 38 * s, zd - 125 * s), (-22 * s, yac_d + 55 * s, zd - 115 * s)]
        # pancreas: head in the duodenal C-loop, neck over the SMV, body over the aorta, tail to the spleen
        zp = zl("L1") + 5 * s
        ppts = [(-38 * s, ysf(zp) - 40 * s, zp - 18 * s), (-10 * s, ysf(zp) - 50 * s, zp),
                (25 * s, ysf(zp) - 45 * s, zp + 8 * s), (55 * s, ysf(zp) - 28 * s, zp + 18 * s),
                (0.62 * Ac_d, ysf(zp) - 5 * s, zp + 28 * s)]
        pc = catmull_rom(ppts, 5)
        pr_ = np.interp(np.linspace(0, 1, len(pc)), [0, 0.25, 0.5, 1], np.array([17, 11, 11, 9]) * s)
        cv.tube(pc, pr_, T.pancreas, allowed=vf, scale_xyz=(1, 0.8, 1.1))
        # splenic vein behind the pancreas -> portal confluence
        cv.tube(pc[4:] + np.array([0, 10 * s, 0]), 4 * s, T.vein, allowed=vf)
        cv.tube([tuple(pc[5] + np.array([0, 6 * s, 0])), tuple(porta)], 6 * s, T.vein,
                allowed=cv.allow([T.visceral_fat, T.liver]))
        # duodenum (gi_tract): pylorus -> bulb -> descending -> horizontal -> ascending -> DJ flexure
        pyl = np.array(spts[-1])
        dpts = [tuple(pyl), (-45 * s, ysf(zp) - 45 * s, zp + 5 * s), (-58 * s, ysf(zp) - 28 * s, zp - 20 * s),
                (-55 * s, ysf(zl("L3")) - 30 * s, zl("L3") + 5 * s), (0, ysf(zl("L3")) - 42 * s, zl("L3") - 5 * s),
                (32 * s, ysf(zl("L3")) - 32 * s, zl("L3") + 5 * s), (34 * s, ysf(zl("L2")) - 40 * s, zl("L2"))]
        dc = catmull_rom(dpts, 5)
        cv.tube(dc, 12 * s, T.duodenum_wall, allowed=vf)
        cv.tube(dc, 8.5 * s, T.duodenum_content, allowed=cv.allow([T.duodenum_wall]))
        self.dj = np.array(dpts[-1])
        # liver: right lobe + left lobe under the diaphragm, inside the cavity
        below_dia = lambda X, Y, Z: Z < self.diaphragm_z(X, Y) - 5 * s  # noqa: E731
        cv.ellipsoid((-0.40 * Ac_d, yl + 4 * s, zd - 68 * lf), np.array([70, 75, 78]) * lf, T.liver, allowed=vf,
                     where=below_dia)
        cv.ellipsoid((18 * s, yac_d + 50 * lf, zd - 45 * lf), np.array([62, 38, 40]) * lf, T.liver, allowed=vf,
                     where=below_dia)
        liv = cv.allow([T.liver])
        # hepatic veins into the IVC, portal vein branches
        ivc_top = np.array([-20 * s, ysf(zl("T10")) - 22 * s, zl("T10") + 5 * s])
        for tgt in ((-95, 0, -15), (-40, -50, -10), (30, -55, -5)):
            cv.tube([tuple(ivc_top), tuple(ivc_top + np.array(tgt) * s)], [6 * s, 3 * s], T.liver_vessel,
                    allowed=liv)
        for tgt in ((-60, 10, 25), (40, -40, 20), (-30, -30, 10)):
            cv.tube([tuple(porta), tuple(porta + np.array(tgt) * s)], [6.5 * s, 3 * s], T.liver_vessel,
                    allowed=liv)
        # gallbladder at the inferior surface, between the lobes
        gb = np.array([-48 * s, yac_d + 42 * s, zd - 128 * lf])
        Rg = rotation([0.25, -0.5, -1.0], [1.0, 0, 0])
        gf = self.fac(0.15)
        cv.ellipsoid(gb, np.array([40 * gf, 16, 16]) * s, T.gallbladder, rot=Rg, allowed=cv.allow([T.liver,
                                                                                              T.visceral_fat]))
        # spleen: left posterior, along the 10th rib
        sf = s * self.fac(0.10)
        zsp = zd - 80 * s
        csp = np.array([0.66 * Ac_d, ypc_d - 28 * s, zsp])
        Rs = rotation([0.35, -0.75, -0.55], [1.0, 0.5, 0])
        cv.ellipsoid(csp, np.array([60, 40, 24]) * sf, T.spleen, rot=Rs, allowed=vf, where=below_dia)
        srad = np.array([20, 42, 38, 28, 18, 11]) * s * self.fac(0.1)
        scurve = catmull_rom(spts, 5)
        sr = np.interp(np.linspace(0, 1, len(scurve)), np.linspace(0, 1, len(spts)), srad)
        cv.tube(scurve, sr, T.stomach_wall, allowed=vf)
        cv.tube(scurve, np.maximum(sr - 4 * s, 1), T.stomach_content, allowed=cv.allow([T.stomach_wall]))
        gas_y = yac_d + (40 + 25 * rng.uniform(0.3, 1.0)) * s
        b = cv.box(scurve.min(0) - 45 * s, scurve.max(0) + 45 * s)
        if b is not None:
            sl, X, Y, Z = b
            cv.paint(sl, (Y < gas_y) & np.ones_like(X, bool), T.stomach_gas, allowed=cv.allow([T.stomach_content]))
        # colon: cecum -> ascending -> hepatic flexure -> transverse -> splenic flexure -> descending -> sigmoid
        zc = self.L["iliac_crest"]
        Ac_a, yac_a, ypc_a = (float(v[0]) for v in self.cavity_profile(np.array([zl("L3")])))
        cpts = [(-0.62 * Ac_a, yac_a + 50 * s, zc - 30 * s), (-0.72 * Ac_a, yac_a + 70 * s, zl("L3")),
                (-0.70 * Ac_a, yac_a + 60 * s, zl("L1") - 5 * s), (-0.35 * Ac_a, yac_a + 28 * s, zl("L2")),
                (0.05 * Ac_a, yac_a + 26 * s, zl("L3")), (0.45 * Ac_a, yac_a + 30 * s, zl("L1")),
                (0.72 * Ac_a, yac_a + 55 * s, zl("T12") + 5 * s), (0.78 * Ac_a, yac_a + 80 * s, zl("L2")),
                (0.75 * Ac_a, yac_a + 75 * s, zc - 10 * s), (0.55 * Ac_a, yac_a + 50 * s, self.zf(0.565)),
                (0.15 * Ac_a, yac_a + 30 * s, self.zf(0.56)), (-0.15 * Ac_a, yac_a + 60 * s, self.zf(0.545))]
        sac_t, sac_y, _, sac_hd = self.sacrum_geometry(np.array([self.zf(0.545), self.zf(0.52), self.zf(0.50)]))
        rpts = [cpts[-1], (0, sac_y[0] - sac_hd[0] - 22 * s, self.zf(0.545)),
                (0, sac_y[1] - sac_hd[1] - 24 * s, self.zf(0.52)), (0, sac_y[2] - sac_hd[2] - 28 * s, self.zf(0.495))]
        ccurve = catmull_rom(cpts, 6)
        crad = np.interp(np.linspace(0, 1, len(ccurve)), np.linspace(0, 1, len(cpts)),
                         np.array([30, 26, 24, 22, 22, 22, 22, 19, 18, 17, 16, 17]) * s)
        col_ok = cv.allow([T.visceral_fat])
        cv.tube(ccurve, crad, T.colon_wall, allowed=col_ok)
        cv.tube(ccurve, crad - 3 * s, T.colon_content, allowed=cv.allow([T.colon_wall]))
        rcurve = catmull_rom(rpts, 5)
        rrad = np.interp(np.linspace(0, 1, len(rcurve)), [0, 0.4, 0.8, 1], np.array([17, 22, 20, 10]) * s)
        cv.tube(rcurve, rrad, T.rectum_wall, allowed=cv.allow([T.visceral_fat, T.muscle]))
        cv.tube(rcurve, rrad - 3 * s, T.rectum_content, allowed=cv.allow([T.rectum_wall]))
        # bladder, uterus / prostate
        zsym = L["pubic_symphysis"]
        ysym = float(self.trunk_profile(np.array([zsym]))["ya"][0]) + 22 * s
        fill = float(np.clip(rng.uniform(0.6, 1.3) ** (self.p.variation), 0.4, 1.6))
        br = np.array([44, 34, 36]) * s * fill ** (1 / 3)
        bc = np.array([0, ysym + 22 * s + br[1], zsym + 8 * s + br[2] * 0.7])
        cv.ellipsoid(bc, br, T.bladder_wall, allowed=cv.allow([T.visceral_fat]))
        cv.ellipsoid(bc, br - 3 * s, T.urine, allowed=cv.allow([T.bladder_wall]))
        if self.female and self.age >= 12:
            cv.ellipsoid((0, bc[1] + br[1] + 15 * s, bc[2] + 15 * s), np.array([40, 32, 20]) * s, T.uterus,
                         allowed=vf, rot=rotation([0, -0.5, 1.0], [1.0, 0, 0]))
        elif not self.female:
            pv = 1.0 + 0.012 * max(self.age - 40, 0)
            cv.ellipsoid((0, ysym + 30 * s, zsym - 5 * s), np.array([20, 16, 17]) * s * pv * min(1, self.age / 16),
                         T.prostate, allowed=cv.allow([T.visceral_fat, T.muscle]))
        # small bowel loops: random walk filling the lower abdomen inside the colon frame
        self._small_bowel(Ac_a, yac_a, ypc_a)

    def _small_bowel(self, Ac, yac, ypc):
        cv, s, rng = self.cv, self.s, self.rng
        zc_top = self.vert["L2"]
        zc_bot = self.zf(0.535)
        centre = np.array([0.0, yac + 0.38 * (ypc - yac), 0.5 * (zc_top + zc_bot)])
        half = np.array([0.55 * Ac, 0.32 * (ypc - yac), 0.5 * (zc_top - zc_bot)])
        p = self.dj.astype(float).copy()
        d = np.array([0.3, 0.5, -0.8])
        d /= np.linalg.norm(d)
        r = 11.5 * s
        step = 9.0 * s
        n = int(np.clip(2600 * s / step, 60, 400))
        pts = [p.copy()]
        for _ in range(n):
            q = (p - centre) / half
            pull = -q * max(np.linalg.norm(q) - 0.7, 0.0) * 3.0
            d = d + rng.normal(scale=0.55, size=3) + pull
            d /= np.linalg.norm(d)
            p = p + d * step
            pts.append(p.copy())
        pts = np.array(pts)
        ok = cv.allow([T.visceral_fat])
        cv.tube(pts, r, T.small_bowel_wall, allowed=ok)
        cv.tube(pts, r - 2.5 * s, T.small_bowel_content, allowed=cv.allow([T.small_bowel_wall]))
        # a few gas pockets
        for i in rng.choice(len(pts), size=max(3, len(pts) // 40), replace=False):
            cv.ellipsoid(pts[i] + np.array([0, -3 * s, 0]), (6 * s, 5 * s, 6 * s), T.small_bowel_gas,
                         allowed=cv.allow([T.small_bowel_content]))

    # --- table and skin -------------------------------------------------------------------------------

    def table(self):
        if not self.p.table:
            return
        cv = self.cv
        y0 = self.table_y + 1.0
        b = cv.box((-250, y0 - 40, -1e5), (250, y0 + 60, 1e5))
        if b is None:
            return
        sl, X, Y, Z = b
        top = y0 - 28.0 * (X / 230.0) ** 2
        inside = (Y >= top) & (Y <= top + 45.0) & (np.abs(X) < 235)
        cv.paint(sl, inside & np.ones_like(Z, bool), T.table_shell, allowed=cv.allow([T.air]))
        core = (Y >= top + 3.0) & (Y <= top + 42.0) & (np.abs(X) < 231)
        cv.paint(sl, core & np.ones_like(Z, bool), T.table_foam, allowed=cv.allow([T.table_shell]))

    def skin(self):
        """Skin rim: the outermost in-plane layer of the body (at least one voxel, about 2 mm)."""
        cv = self.cv
        lab = cv.lab
        body = (lab != T.air) & (lab != T.table_shell) & (lab != T.table_foam)
        dy, dx = cv.spacing[1], cv.spacing[2]
        n = max(1, int(round(2.0 / min(dx, dy))))
        st = np.zeros((1, 3, 3), bool)
        st[0, 1, :] = st[0, :, 1] = True
        inner = ndimage.binary_erosion(body, structure=st, iterations=n, border_value=0)
        rim = body & ~inner & np.isin(lab, [T.subcutaneous_fat, T.muscle, T.visceral_fat, T.soft_tissue])
        lab[rim] = T.skin

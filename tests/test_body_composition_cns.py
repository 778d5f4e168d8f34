"""CNS by anatomical rules (operators/body_composition/cns.py, called by refine.py) on hand-built canonical
volumes (z inferior -> superior, rows anterior -> posterior): a spine whose canal is open on a few slices must
come out as one continuous tube and nothing else (not the vertebral body's marrow, not the open soft tissue,
not epidural fat); a pelvic-ring-like bone ring around bladder-HU tissue, a lateral long bone with soft marrow,
a calcified aorta-like ring and a bony ring off the midline give no CNS; a closed skull (with a suture gap) around brain-HU tissue gives its cavity, and
an orbit-like ring around fat does not; through refine_to_native the network's CNS output is ignored."""

import numpy as np

from operators.body_composition.cns import cns_mask, cranial_cavity, spinal_canal
from operators.body_composition.preprocess import ModelGrid
from operators.body_composition.refine import refine_to_native
from operators.common.volume import axial_affine

CNS = 7


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _trunk(nz=30, n=200):
    """Abdomen-like trunk, 1 mm pixels: body ellipse (soft 40 HU inside a fat layer), a vertebra behind the
    centre: vertebral body (cortical 700 HU shell around ``body_hu`` marrow) and an arch (700 HU ring) around a
    canal (r 7 mm, CSF 10 HU). Returns hu, body mask, canal mask, vertebral-body interior mask (2-D pieces)."""
    yy, xx = np.mgrid[0:n, 0:n] - n / 2 + 0.5
    body = (yy / 80) ** 2 + (xx / 95) ** 2 < 1
    hu2 = np.full((n, n), -1000.0, np.float32)
    hu2[body] = -100.0
    hu2[(yy / 70) ** 2 + (xx / 85) ** 2 < 1] = 40.0
    vb = (yy - 25) ** 2 / 14 ** 2 + xx ** 2 / 18 ** 2 < 1  # vertebral body, centre 25 mm behind the middle
    vb_in = (yy - 25) ** 2 / 11 ** 2 + xx ** 2 / 15 ** 2 < 1
    rc = np.hypot(yy - 48, xx)  # canal centre 48 mm behind the middle
    arch = (rc < 12) & ~vb
    canal = rc < 7
    return hu2, body, canal, vb, vb_in, arch, nz


def _spine(body_hu=250.0, open_slices=(12, 13, 14), nz=30, posterior_body_hu=None):
    """Spine of ``_trunk`` slices; ``open_slices``: disc levels (no arch, the disc in place of the body);
    epidural fat (-100 HU) in the posterior 2 mm of the canal; ``posterior_body_hu``: the posterior half of the
    vertebral body's interior at that HU (an osteoporotic body, denser in front). Returns hu, body, canal
    (without the fat), vertebral-body interior."""
    hu2, body, canal, vb, vb_in, arch, nz = _trunk(nz)
    n = hu2.shape[0]
    yy = np.mgrid[0:n, 0:n][0] - n / 2 + 0.5
    fat = canal & (yy > 48 + 5)
    hu = np.repeat(hu2[None], nz, 0)
    for k in range(nz):
        if k in open_slices:
            hu[k][vb] = 85.0
        else:
            hu[k][arch] = 700.0
            hu[k][vb] = 700.0
            hu[k][vb_in] = body_hu
            if posterior_body_hu is not None:
                hu[k][vb_in & (yy > 25)] = posterior_body_hu
        hu[k][canal] = 10.0
        hu[k][fat] = -100.0
    return hu, np.repeat(body[None], nz, 0), canal & ~fat, vb_in


def test_canal_is_a_continuous_tube_across_open_slices():
    hu, body, canal, vb_in = _spine(open_slices=(12, 13, 14, 28, 29))
    m = cns_mask(hu, body, (3.0, 1.0, 1.0))
    truth = np.repeat(canal[None], hu.shape[0], 0)
    assert _dice(m, truth) > 0.9
    assert m[12:15].any(axis=(1, 2)).all()  # bridged over the open (disc-level) slices
    assert m.any(axis=(1, 2)).all()  # and carried on to the scan's edge over the open last two
    # never outside the canal (+1 voxel of partial-volume rim), never the open soft tissue of the disc level
    rim = np.zeros_like(canal)
    rim[1:-1, 1:-1] = canal[1:-1, 1:-1] | canal[:-2, 1:-1] | canal[2:, 1:-1] | canal[1:-1, :-2] | canal[1:-1, 2:]
    assert not (m & ~rim[None]).any()
    assert not (m & (hu < -50)).any()  # the epidural fat is not CNS
    from scipy import ndimage

    assert ndimage.label(m, structure=np.ones((3, 3, 3), bool))[1] == 1  # one tube


def test_vertebral_body_marrow_is_not_cns_even_when_soft():
    # normal cancellous bone, an osteoporotic (soft-HU) body, and one that is soft only behind a denser front
    for body_hu, post in ((250.0, None), (60.0, None), (200.0, 65.0)):
        hu, body, canal, vb_in = _spine(body_hu=body_hu, posterior_body_hu=post)
        m = cns_mask(hu, body, (3.0, 1.0, 1.0))
        assert not (m & vb_in[None]).any(), (body_hu, post)
        assert m[:, canal].mean() > 0.9, (body_hu, post)


def test_long_open_gap_is_not_filled():
    """An open stretch longer than the bridge (60 mm) stays unlabelled: open areas are never filled."""
    hu, body, canal, _ = _spine(open_slices=tuple(range(5, 25)), nz=30)
    m = spinal_canal(hu, body, (3.0, 1.0, 1.0))
    assert not m[6:24].any()


def test_pelvic_ring_long_bone_aorta_and_lateral_ring_are_not_cns():
    n, nz = 260, 20
    yy, xx = np.mgrid[0:n, 0:n] - n / 2 + 0.5
    body = (yy / 110) ** 2 + (xx / 125) ** 2 < 1
    hu2 = np.full((n, n), -1000.0, np.float32)
    hu2[body] = 40.0
    e = ((yy - 5) / 60) ** 2 + (xx / 70) ** 2  # pelvic ring, thick (solid bone in front of its inner hole)
    hu2[(e < 1) & (e > 0.6)] = 700.0
    hu2[e <= 0.6] = 10.0  # bladder-HU content
    rf = np.hypot(yy - 20, xx - 95)  # lateral long bone, soft marrow
    hu2[rf < 14] = 900.0
    hu2[rf < 10] = 30.0
    ra = np.hypot(yy - 88, xx - 8)  # calcified aorta-like ring near the midline in the posterior half
    hu2[ra < 13] = 600.0
    hu2[ra < 10] = 40.0
    rl = np.hypot(yy - 75, xx + 40)  # a bony ring 4 cm off the midline, solid bone in front of it
    hu2[rl < 11] = 700.0
    hu2[rl < 7] = 20.0
    hu2[(np.abs(xx + 40) < 12) & (yy > 50) & (yy < 66)] = 700.0
    hu = np.repeat(hu2[None], nz, 0)
    m = cns_mask(hu, np.repeat(body[None], nz, 0), (2.0, 1.0, 1.0))
    assert not m.any()


def _head(nz=40, gap=True):
    """Head, 1.5 mm pixels, 3 mm slices: scalp (40 HU) around a skull shell (900 HU, ~6 mm) around brain
    (35 HU), an eye-socket-like bony ring around orbital fat in front; a suture gap through the skull."""
    n = 150
    z, yy, xx = np.mgrid[0:nz, 0:n, 0:n].astype(np.float32)
    zc, yc = nz * 0.3, n / 2
    yy, xx, zz = (yy - yc) * 1.5, (xx - n / 2) * 1.5, (z - zc) * 3.0
    e_out = (yy / 95) ** 2 + (xx / 78) ** 2 + (zz / 90) ** 2
    e_sk = (yy / 88) ** 2 + (xx / 71) ** 2 + (zz / 83) ** 2
    e_in = (yy / 82) ** 2 + (xx / 65) ** 2 + (zz / 77) ** 2
    body = e_out < 1
    hu = np.full(body.shape, -1000.0, np.float32)
    hu[body] = 40.0
    hu[e_sk < 1] = 900.0
    brain = e_in < 1
    hu[brain] = 35.0
    suture = np.zeros(body.shape, bool)
    if gap:  # a 3 px (4.5 mm) gap through the skull on every slice: no slice's ring is closed without closing
        suture = (np.abs(xx) < 3.0) & (yy < 0) & (e_sk < 1) & ~brain
        hu[suture] = 40.0
    ro = np.hypot(yy + 75, xx - 30)  # orbit-like ring in front of the skull, with fat inside
    orb = (ro < 14) & (np.abs(zz + 40) < 12) & body
    hu[orb] = 900.0
    hu[orb & (ro < 10)] = -90.0
    # the lower part of the head is below the skull (neck soft tissue, no bone): no CNS there
    return hu, body, brain, suture


def test_closed_skull_gives_the_cranial_cavity_and_not_the_orbit():
    hu, body, brain, suture = _head()
    assert suture.any()
    m = cranial_cavity(hu, body, (3.0, 1.5, 1.5))
    assert _dice(m, brain) > 0.95
    assert not (m & ~(brain | suture)).any()  # the closed suture gap itself may count, nothing else


def test_refine_ignores_the_network_cns_and_labels_the_canal():
    """End to end through refine_to_native: network logits that are sure of CNS in the organ region in front
    of the spine and of muscle in the canal -> CNS exactly in the canal."""
    hu, body, canal, vb_in = _spine()
    nz, n = hu.shape[0], hu.shape[1]
    grid = ModelGrid.of(hu.shape, axial_affine((3.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    mz, my, mx = grid.model_shape
    lg = np.full((8, mz, my, mx), -5.0, np.float32)
    lg[3] = 5.0  # muscle everywhere (canal included)
    yy, xx = (np.mgrid[0:my, 0:mx] + 0.5) * (n / my) - n / 2
    lg[:, :, (yy / 40) ** 2 + (xx / 40) ** 2 < 1] = -5.0
    lg[CNS][:, (yy / 40) ** 2 + (xx / 40) ** 2 < 1] = 5.0  # "CNS" in the belly
    lab = refine_to_native(grid, lg, hu)
    truth = np.repeat(canal[None], nz, 0)
    got = lab == CNS
    assert _dice(got, truth) > 0.9
    assert not got[:, :n // 2 + 20].any()  # nothing in front of the vertebral body

"""Organ-segmentation training data, bundles and a trained model (models/organ_segmentation).

Data: deterministic per seed, images and labels aligned through the operator's preprocessing, train and test
cases disjoint. Bundles: every committed bundle loads through operators/common/bundle.py and gives the
declared output shape. Model: the committed liver model segments a held-out procedural phantom."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.organ_segmentation import data as D
from models.organ_segmentation.network import CHANNELS, build_network, load_for_inference, n_parameters
from models.organ_segmentation.train import BUNDLES
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME, ORGANS, organ_mask
from operators.organ_segmentation import preprocess as pp

BUNDLE_DIRS = sorted(p.parent.parent for p in BUNDLES.glob("*/models/model.ts"))


def test_case_specs_disjoint_and_test_set_has_both_icrp_phantoms():
    train, test = D.case_specs("train"), D.case_specs("test")
    assert {s.seed for s in train}.isdisjoint({s.seed for s in test})
    assert len({s.name for s in train + test}) == len(train + test)
    assert {s.phantom for s in test if s.kind == "icrp"} == {"AM", "AF"}
    assert any(s.kind == "phantom" for s in test) and any(s.kind == "phantom" for s in train)
    assert D.case_specs("train") == train  # deterministic
    with pytest.raises(ValueError):
        D.case_specs("validation")


def _net(spec):
    hu, organs, aff, info = D.synthesize_case(spec, coarse=True)
    return hu, organs, aff, info, D.net_case(hu, organs, aff)


@pytest.fixture(scope="module")
def icrp_case():
    spec = D.CaseSpec("t_icrp", "icrp", 4242, "AM", "chest_abdomen")
    return spec, _net(spec)


def test_generation_is_deterministic_per_seed(icrp_case):
    spec, (hu, organs, _, info, net) = icrp_case
    hu2, organs2, _, info2, net2 = _net(spec)
    np.testing.assert_array_equal(hu, hu2)
    np.testing.assert_array_equal(organs, organs2)
    np.testing.assert_array_equal(net["img"], net2["img"])
    np.testing.assert_array_equal(net["bits"], net2["bits"])
    assert info == info2
    # procedural cases: the parameter draw is seeded (the generator's own determinism: test_phantom.py)
    a, b = D.CaseSpec("p", "phantom", 4243), D.CaseSpec("p", "phantom", 4244)
    assert D.phantom_params(a) == D.phantom_params(a)
    assert D.phantom_params(a) != D.phantom_params(b)


def test_network_labels_align_with_the_network_image(icrp_case):
    """In the network grid the liver bit sits on liver-dense pixels and the lung bit on air-dense pixels."""
    _, (hu, organs, aff, info, net) = icrp_case
    assert net["img"].shape[1:] == net["bits"].shape and net["img"].shape[2:] == pp.NET_SHAPE
    dz = np.diff(net["z_mm"])  # canonical slices run inferior -> superior at the slice spacing
    assert np.allclose(dz, abs(aff[2, 2]), atol=1e-3) and len(net["z_mm"]) == hu.shape[0]
    soft = pp.WINDOWS["soft"]
    hu_soft = soft[0] + net["img"][0].astype(np.float32) / (pp.N_LEVELS - 1) * (soft[1] - soft[0])
    liver = (net["bits"] & np.uint32(1 << (ORGAN_BY_NAME["liver"].id - 1))) != 0
    lungs = (net["bits"] & np.uint32(1 << (ORGAN_BY_NAME["lungs"].id - 1))) != 0
    assert liver.sum() > 500 and lungs.sum() > 500
    from scipy import ndimage

    core = ndimage.binary_erosion(liver, np.ones((1, 5, 5), bool))
    assert np.median(hu_soft[core]) == pytest.approx(55.0 + {"none": 0, "arterial": 15, "portal": 55}[info["contrast"]],
                                                     abs=35.0)
    assert np.mean(net["img"][1][lungs] < 0.4 * (pp.N_LEVELS - 1)) > 0.8  # lung window: aerated
    # shifting the label by 6 network pixels makes it worse: the alignment is real
    shifted = np.roll(core, 6, axis=2)
    assert np.mean(np.abs(hu_soft[core] - np.median(hu_soft[core])) < 30) > \
        np.mean(np.abs(hu_soft[shifted] - np.median(hu_soft[core])) < 30)
    # organ_slices: positives hold the organ, negatives lie within the margin and do not
    case = {"img": net["img"], "bits": net["bits"], "z_mm": net["z_mm"]}
    x, y = D.organ_slices(case, "liver")
    assert len(x) == len(y) and y.any(axis=(1, 2)).sum() == min(liver.any(axis=(1, 2)).sum(), 40)
    assert (~y.any(axis=(1, 2))).sum() <= 6


def test_container_organs_include_contents_in_the_bits():
    spec = D.CaseSpec("t_head", "icrp", 4244, "AM", "head")
    hu, organs, aff, _ = D.synthesize_case(spec, coarse=True)
    net = D.net_case(hu, organs, aff)
    eyes = (net["bits"] & np.uint32(1 << (ORGAN_BY_NAME["eyes"].id - 1))) != 0
    lenses = (net["bits"] & np.uint32(1 << (ORGAN_BY_NAME["lenses"].id - 1))) != 0
    assert lenses.sum() > 0 and (lenses & ~eyes).sum() <= 0.1 * lenses.sum()
    assert organ_mask(organs, "eyes").sum() > (organs == ORGAN_BY_NAME["eyes"].id).sum()


def test_network_size_and_shape():
    net = build_network().eval()
    assert 300_000 < n_parameters(net) < 600_000 and CHANNELS[0] == 8
    with torch.no_grad():
        assert net(torch.zeros(2, 1, *pp.NET_SHAPE)).shape == (2, 1, *pp.NET_SHAPE)


def test_bundles_exist_for_all_23_organs_and_are_small():
    names = {p.name for p in BUNDLE_DIRS}
    assert {o.name for o in ORGANS} <= names, sorted({o.name for o in ORGANS} - names)
    size = sum(f.stat().st_size for d in BUNDLE_DIRS if d.name in {o.name for o in ORGANS} for f in d.rglob("*")
               if f.is_file())
    assert size < 25e6


@pytest.mark.parametrize("bundle", BUNDLE_DIRS, ids=[p.name for p in BUNDLE_DIRS])
def test_every_bundle_loads_and_gives_its_declared_shape(bundle):
    module, meta = load_for_inference(bundle)
    assert meta["organ"] == bundle.name and meta["label_id"] == ORGAN_BY_NAME[bundle.name].id
    assert tuple(meta["hu_window"]) == pp.window_for(bundle.name)
    assert json.loads((bundle / "configs" / "inference.json").read_text())["bundle_root"] == "."
    n, c, h, w = meta["input_shape"]
    with torch.inference_mode():
        out = module(torch.rand(2, c, h, w))
    assert tuple(out.shape) == (2, *meta["output_shape"][1:])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_trained_liver_model_segments_a_held_out_phantom():
    """A procedural phantom with a seed outside both training and test streams, abdomen, portal phase."""
    from models.phantoms import PhantomParams, generate_phantom

    bundle = BUNDLES / "liver"
    if not (bundle / "models" / "model.ts").is_file():
        pytest.fail("the liver bundle is missing (python -m models.organ_segmentation.train --organs liver)")
    torch.set_num_threads(1)
    module, meta = load_for_inference(bundle)
    ph = generate_phantom(PhantomParams(seed=77777, sex="M", age_years=50, bmi=26, region="abdomen", matrix=192,
                                        contrast="portal", slice_thickness_mm=5.0))
    hu_c, aff_c = pp.canonical(ph.ct.hu, ph.ct.affine_lps)
    ref = organ_mask(pp.canonical(ph.organs, ph.ct.affine_lps)[0], "liver")
    ks = np.nonzero(ref.any(axis=(1, 2)))[0]
    box = pp.body_box(hu_c, D.spacing_yx(aff_c))
    x = pp.to_network(np.ascontiguousarray(hu_c[ks]), box, tuple(meta["hu_window"]))
    with torch.inference_mode():
        prob = torch.sigmoid(module(torch.from_numpy(x).unsqueeze(1)))[:, 0].numpy()
    pred = np.zeros_like(ref)
    pred[ks] = pp.from_network(prob, box, (len(ks), *hu_c.shape[1:])) >= meta["threshold"]
    dice = 2 * (pred & ref).sum() / (pred.sum() + ref.sum())
    assert dice > 0.85, dice


def test_all_organs_table_covers_bundle_names():
    assert all(p.name in {o.name for o in ALL_ORGANS} for p in BUNDLE_DIRS)
    assert isinstance(BUNDLES, Path)


# --- window-family training (models/organ_segmentation/train.py) -------------------------------------------------

def _fake_case(cache: Path, spec: D.CaseSpec, organs_by_slice: list[list[str]]) -> None:
    """A cached case in ``data.build_case``'s layout: one 20 x 30 px square per organ named on a slice."""
    n = len(organs_by_slice)
    bits = np.zeros((n, *pp.NET_SHAPE), np.uint32)
    for k, names in enumerate(organs_by_slice):
        for j, name in enumerate(names):
            bits[k, 20 + 25 * j:40 + 25 * j, 50:80] |= np.uint32(1) << np.uint32(ORGAN_BY_NAME[name].id - 1)
    img = np.random.default_rng(spec.seed).integers(0, 240, (3, n, *pp.NET_SHAPE), dtype=np.uint8)
    path = D.case_path(spec, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.array(json.dumps({"spec": {}, "info": {}, "keep_every": 1})), img=img, bits=bits,
             z_mm=np.arange(n, dtype=np.float32) * 5.0, box=np.zeros(4, np.int32))


def test_family_slices_masks_labels_a_generator_never_paints(tmp_path):
    """ICRP-110 has no aorta label: its slices must not teach 'no aorta'; procedural slices must."""
    from models.organ_segmentation.train import family_slices

    icrp, ph = D.CaseSpec("a_icrp", "icrp", 1), D.CaseSpec("a_ph", "phantom", 2)
    _fake_case(tmp_path, icrp, [["liver"], [], ["liver", "kidneys"]])
    _fake_case(tmp_path, ph, [["aorta"], ["liver", "aorta"]])
    organs = ["liver", "kidneys", "aorta"]
    d = family_slices(organs, [icrp, ph], cache=tmp_path)
    assert d["x"].shape == (5, *pp.NET_SHAPE) and d["bits"].dtype == np.uint8
    assert d["present"].tolist() == [[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]]
    # liver everywhere; kidneys painted by ICRP only; aorta by the procedural phantom only
    assert d["valid"].tolist() == [[1, 1, 0]] * 3 + [[1, 0, 1]] * 2
    assert ((d["bits"][2] >> 1) & 1).sum() == 20 * 30  # kidneys on bit 1 of the family, not its ALL_ORGANS bit
    with np.load(D.case_path(icrp, tmp_path)) as z:
        assert (d["x"][:3] == z["img"][D.organ_window_index("liver")]).all()


def test_family_loss_ignores_invalid_organs_and_rewards_overlap():
    from models.organ_segmentation.train import family_loss

    g = torch.Generator().manual_seed(0)
    y = torch.zeros(2, 2, 16, 16)
    y[:, 0, 4:12, 4:12] = 1.0
    valid = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # organ 1 not painted on these slices
    good = torch.where(y > 0, 8.0, -8.0)
    a = family_loss(good, y, valid)
    garbage = good.clone()
    garbage[:, 1] = torch.randn(2, 16, 16, generator=g) * 10.0  # anything on the invalid organ
    assert torch.isclose(family_loss(garbage, y, valid), a)
    assert family_loss(-good, y, valid) > a + 1.0  # inverted prediction: much worse
    valid[:, 1] = 1.0  # now organ 1 is known absent: predicting it costs
    assert family_loss(garbage, y, valid) > a + 0.5


def test_single_output_network_equals_its_channel_of_the_family_network():
    from models.organ_segmentation.network import single_output

    torch.manual_seed(0)
    net = build_network(5).eval()
    x = torch.rand(2, 1, *pp.NET_SHAPE)
    with torch.no_grad():
        full = net(x)
        one = single_output(net, 3).eval()(x)
    assert full.shape == (2, 5, *pp.NET_SHAPE) and one.shape == (2, 1, *pp.NET_SHAPE)
    torch.testing.assert_close(one, full[:, 3:4])
    assert not torch.allclose(one, full[:, 2:3])


def test_sample_family_balances_organs():
    """A rare organ (1 slice in 200) is drawn about as often as a common one, plus the share of any slice."""
    from models.organ_segmentation.train import ORGAN_SAMPLE_FRACTION, sample_family

    present = np.zeros((200, 2), bool)
    present[:150, 0] = True
    present[7, 1] = True
    d = {"x": np.zeros((200, 1, 1), np.uint8), "present": present}
    idx = sample_family(d, np.random.default_rng(0), 4000)
    rare = (idx == 7).mean()
    assert abs(rare - ORGAN_SAMPLE_FRACTION / 2) < 0.03


def test_iters_option_takes_one_count_or_one_per_organ():
    from models.organ_segmentation.train import _parse_iters

    assert _parse_iters(None) is None and _parse_iters("3439") == 3439
    assert _parse_iters("liver=424, heart=368") == {"liver": 424, "heart": 368}
    with pytest.raises(ValueError):
        _parse_iters("liver=many")

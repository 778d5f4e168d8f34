"""Progress reporter (operators/common/progress.py) with a fake clock: rate limiting, ETA, budget, wrapper."""

import logging

import pytest

from operators.common.progress import Progress, format_duration, progress


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_format_duration():
    assert format_duration(4.4) == "4 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(7620) == "2 h 07 min"
    assert format_duration(None) == "?" and format_duration(float("nan")) == "?"


def test_eta_from_mean_rate_and_rate_limited_logging(caplog):
    clock = FakeClock()
    log = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        with Progress(10, "MC batches", log=log, every_s=30, clock=clock) as p:
            for _ in range(10):
                clock.t += 10.0  # each step takes 10 s
                p.update()
                if p.done == 4:
                    # 4 steps in 40 s -> 6 left at 10 s each
                    assert p.eta_s() == pytest.approx(60.0)
    lines = [r.getMessage() for r in caplog.records]
    # first step, then at least 30 s apart (steps 4, 7), the last one (10), and the summary
    assert lines[0] == "MC batches: 1/10 (10 %), elapsed 10 s, ETA 1 min 30 s"
    assert [ln.split(":")[1].split(",")[0].strip() for ln in lines[:-1]] == \
        ["1/10 (10 %)", "4/10 (40 %)", "7/10 (70 %)", "10/10 (100 %)"]
    assert lines[-2].endswith("ETA 0 s")
    assert lines[-1] == "MC batches: 10 done in 1 min 40 s"


def test_budget_caps_eta_and_unknown_total():
    clock = FakeClock()
    p = Progress(None, "training steps", budget_s=600, clock=clock, every_s=0)
    assert p.eta_s() == 600
    clock.t += 150
    p.update(25)
    assert p.eta_s() == pytest.approx(450)
    assert p.messages[-1] == "training steps: 25, elapsed 2 min 30 s, ETA 7 min 30 s"
    # with a total the smaller estimate wins: 1 of 50 epochs in 150 s -> rate says 7350 s, budget 450 s
    q = Progress(50, "epochs", budget_s=600, clock=clock)
    clock.t += 150
    q.update()
    assert q.eta_s() == pytest.approx(450)


def test_iterator_wrapper_counts_and_reports_errors(caplog):
    clock = FakeClock()

    def items():
        for i in range(5):
            clock.t += 2
            yield i

    with caplog.at_level(logging.INFO, logger="corpusct.progress"):
        assert list(progress(items(), "cases", total=5, clock=clock, every_s=0)) == [0, 1, 2, 3, 4]
        assert sum(progress([1, 2, 3], "sum", clock=clock)) == 6  # total from len()
        with pytest.raises(RuntimeError):
            with Progress(3, "failing", clock=clock) as p:
                p.update()
                raise RuntimeError("boom")
        for _ in progress(range(10), "early", clock=clock):
            break
    msgs = [r.getMessage() for r in caplog.records]
    assert "cases: 5/5 (100 %), elapsed 10 s, ETA 0 s" in msgs
    assert "sum: 3/3 (100 %), elapsed 0 s, ETA 0 s" in msgs
    assert "failing: stopped by RuntimeError after 1 in 0 s" in msgs
    assert "early: ended early after 0 in 0 s" in msgs


def test_rejects_negative_total():
    with pytest.raises(ValueError):
        Progress(-1, "x")


def test_monte_carlo_progress_chunks_give_the_single_call_result(caplog):
    """run_cpu now runs its batches in chunks to report progress: the tally must equal one cpu_run call
    over all batches (each batch owns its random stream and tally row)."""
    import numpy as np
    from numba.cuda.random import init_xoroshiro128p_states_cpu, xoroshiro128p_dtype

    from operators.mc_dose import physics as ph
    from operators.mc_dose.engine import Source, VoxelGeometry, monoenergetic, prepare, run_cpu
    from operators.mc_dose.kernels import cpu_run

    mat = np.zeros((4, 3, 3), np.int32)
    geom = VoxelGeometry(mat, np.ones((4, 3, 3)), [ph.WATER], np.arange(4, dtype=np.int32)[:, None, None]
                         .repeat(3, 1).repeat(3, 2), 4, origin=(0.0, -1.5, -1.5), spacing=(1.0, 1.0, 1.0))
    src = Source(np.array([[0.0, 0.0, -10.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0, 0]]),
                 np.array([[0, 1.0, 0]]), 0.0, 0.0, *monoenergetic(60.0))
    n_batches, n_per = 7, 300
    with caplog.at_level(logging.INFO, logger="operators.mc_dose.engine"):
        res = run_cpu(geom, src, n_batches * n_per, n_batches=n_batches, seed=3)
    args, _ = prepare(geom, src)
    states = np.empty(n_batches, dtype=xoroshiro128p_dtype)
    init_xoroshiro128p_states_cpu(states, np.uint64(3), np.uint64(0))
    tally = np.zeros((n_batches, geom.n_bins + 4))
    cpu_run(n_per, states, *args, 1, tally)  # 1: the expected-value estimator, run_cpu's default
    assert res.histories == n_batches * n_per
    np.testing.assert_array_equal(res.extra["per_batch_kev"], tally[:, :geom.n_bins] / n_per)
    assert res.mean_kev.sum() > 0
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Monte Carlo (CPU): 7/7 batches (100 %)") for m in msgs), msgs
    assert any(m.startswith("Monte Carlo (CPU): 7 batches done in") for m in msgs), msgs

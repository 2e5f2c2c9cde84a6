"""Latest wins: superseded requests never deliver, pending ones are dropped, partial results only from the newest."""
import threading
import time

from ipynetviz.engine import LatestExecutor, Selection


def test_rapid_requests_only_the_newest_is_delivered():
    ex = LatestExecutor()
    gate, started = threading.Event(), threading.Event()
    delivered, ran = [], []

    def job(i):
        def run(ticket):
            ran.append(i)
            if i == 0:
                started.set()
                gate.wait(5)  # the first job is slow; meanwhile 1..9 arrive
            return i
        return run
    for i in range(10):
        ex.submit(job(i), on_result=delivered.append)
        if i == 0:
            assert started.wait(10)  # running, not pending (a busy machine may take a while to start the worker)
    gate.set()
    assert ex.wait_idle(10)
    assert delivered == [9], "a superseded result was shown"
    assert ran == [0, 9], "pending requests 1..8 should have been dropped, not run"


def test_superseded_job_can_stop_early_and_partials_come_only_from_the_latest():
    ex = LatestExecutor()
    partials, results = [], []
    started = threading.Event()

    def slow(ticket):
        for step in range(200):
            ticket.emit(("slow", step))
            started.set()
            ticket.check()  # raises Superseded once a newer request exists
            time.sleep(0.01)
        return "slow-finished"
    ex.submit(slow, on_result=results.append, on_partial=partials.append)
    started.wait(5)
    ex.submit(lambda t: (t.emit(("fast", 0)), "fast")[1], on_result=results.append, on_partial=partials.append)
    assert ex.wait_idle(10)
    assert results == ["fast"]
    assert ("fast", 0) in partials
    assert len([p for p in partials if p[0] == "slow"]) < 50


def test_errors_reach_on_error_and_the_worker_survives():
    ex = LatestExecutor()
    errors, results = [], []
    ex.submit(lambda t: 1 / 0, on_result=results.append, on_error=errors.append)
    ex.wait_idle(5)
    ex.submit(lambda t: 7, on_result=results.append, on_error=errors.append)
    ex.wait_idle(5)
    assert isinstance(errors[0], ZeroDivisionError) and results == [7]


def test_synchronous_mode_runs_inline():
    ex = LatestExecutor(synchronous=True)
    out = []
    t = ex.submit(lambda t: "now", on_result=out.append)
    assert out == ["now"] and t.delivered


def test_selection_links_views():
    a = Selection()
    seen = []
    a.observe(lambda ch: seen.append((ch["name"], ch["new"])), names=["layer", "channel", "image_index"])
    a.layer, a.channel, a.image_index = "conv2", 5, 3
    assert seen == [("layer", "conv2"), ("channel", 5), ("image_index", 3)]
    assert "conv2" in repr(a)


def test_shutdown_cancels_the_running_job_and_drops_the_pending_one():
    ex = LatestExecutor()
    started, seen = threading.Event(), []

    def long_job(ticket):
        started.set()
        while True:
            ticket.check()
            time.sleep(0.005)
    ex.submit(long_job, on_result=seen.append)
    assert started.wait(5)
    ex.submit(lambda t: 1, on_result=seen.append)  # pending behind the long job
    assert ex.shutdown(timeout=5) and seen == []


def test_a_process_with_a_live_torch_job_exits_cleanly():
    """A worker still optimising at interpreter exit must not abort the process."""
    import subprocess
    import sys
    code = (
        "import threading, torch\n"
        "from ipynetviz.engine.executor import LatestExecutor\n"
        "ex = LatestExecutor(); go = threading.Event()\n"
        "def job(t):\n"
        "    x = torch.randn(256, 256); go.set()\n"
        "    while not t.superseded:\n"
        "        x = torch.tanh(x @ x.T / 256)\n"
        "ex.submit(job); go.wait(10); print('exiting')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "exiting" in done.stdout, done.stderr[-2000:]

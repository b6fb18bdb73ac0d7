"""Hostile input (issue 19): files that would run code, values of the wrong type, torn files, dying processes and
two writers on one run dir. Each refusal is one line naming the input, exit 2, never a traceback."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fixtures_datasets import write_cifar10
from tinynas.errors import ConfigError


class _RunsCommand:
    """Unpickling this runs ``touch MARKER`` (``os.system``): what a hostile dataset or checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def assert_one_line_error(proc, *needles):
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("tinynas: error:")]
    assert len(lines) == 1, err
    assert "\n" not in lines[0].strip()
    for n in needles:
        assert n in lines[0], err
    return lines[0]


# ---------------------------------------------------------------- code in data files

@pytest.mark.parametrize("payload", ["top", "in_array"])
def test_hostile_cifar_batch_runs_nothing(tmp_path, payload):
    from tinynas.data import load_dataset

    root = write_cifar10(tmp_path / "cifar", per_batch=10, test=10)
    marker = tmp_path / "MARKER"
    evil = _RunsCommand(marker)
    # at the top, or hidden as an item of an object-dtype array (numpy's reconstruction is admitted, its items not)
    doc = evil if payload == "top" else {b"data": np.array([evil], dtype=object), b"labels": [0]}
    (root / "data_batch_1").write_bytes(pickle.dumps(doc, protocol=2))
    with pytest.raises(ConfigError) as e:
        load_dataset({"name": "cifar10", "root": str(root)})
    msg = str(e.value)
    assert not marker.exists()
    assert "\n" not in msg and str(root / "data_batch_1") in msg and "posix.system" in msg and "refused" in msg


def test_genuine_cifar_pickles_of_every_protocol_still_load(tmp_path):
    """The restricted unpickler admits the real format (Python 2 strings, fixture) and numpy's array layouts
    of pickle protocols 2 to 5 (someone's re-pickled copy)."""
    from tinynas.data import load_dataset

    root = write_cifar10(tmp_path / "cifar", per_batch=10, test=10)
    reference = load_dataset({"name": "cifar10", "root": str(root)})
    for protocol in (2, 3, 4, 5):
        with open(root / "data_batch_2", "rb") as f:
            doc = pickle.load(f, encoding="bytes")  # trusted: our own fixture
        doc[b"labels"] = [np.int64(v) for v in doc[b"labels"]]  # numpy scalars: numpy.core.multiarray.scalar
        (root / "data_batch_2").write_bytes(pickle.dumps(doc, protocol=protocol))
        again = load_dataset({"name": "cifar10", "root": str(root)})
        assert np.array_equal(again.train.y, reference.train.y) and np.array_equal(again.test.y, reference.test.y)


def test_hostile_cifar_folder_through_the_cli(tinynas_cli, tmp_path):
    root = write_cifar10(tmp_path / "cifar", per_batch=10, test=10)
    marker = tmp_path / "MARKER"
    (root / "data_batch_1").write_bytes(pickle.dumps(_RunsCommand(marker), protocol=2))
    p = tinynas_cli("search", "dataset=cifar10", f"dataset.root={root}", "logger=none", "n_trials=1")
    assert_one_line_error(p, str(root / "data_batch_1"), "refused", "posix.system")
    assert not marker.exists()


def test_hostile_checkpoint_refused_in_one_line(tmp_path):
    import torch

    from search_spaces import get_space
    from tinynas.checkpoint import load_checkpoint

    space = get_space("mcunet")
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    torch.save({"arch": _RunsCommand(marker), "state_dict": {}}, path)
    with pytest.raises(ConfigError) as e:
        load_checkpoint(path, space, None, 1, 10)
    msg = str(e.value)
    assert not marker.exists()
    assert "\n" not in msg and f"checkpoint={path} refused" in msg and "posix.system" in msg
    path.write_bytes(b"\x80\x02garbage")  # a corrupt file: also one line
    with pytest.raises(ConfigError, match=r"is not a tinynas checkpoint or is corrupt") as e:
        load_checkpoint(path, space, None, 1, 10)
    assert "\n" not in str(e.value)


def test_npz_cache_never_unpickles(tmp_path):
    """A cache file holding a pickled object array is treated as damaged and rebuilt, never unpickled."""
    from tinynas.datasets.cache import cached

    marker = tmp_path / "MARKER"
    decoded = np.arange(6, dtype=np.uint8).reshape(2, 3)
    idx = np.arange(2)
    first = cached(tmp_path, "t", "fp", idx, lambda i: decoded[i])
    (path,) = tmp_path.glob("t-*.npz")
    with open(path, "wb") as f:
        np.savez(f, x=np.array([_RunsCommand(marker)], dtype=object))
    again = cached(tmp_path, "t", "fp", idx, lambda i: decoded[i])
    assert not marker.exists()
    assert np.array_equal(first, decoded) and np.array_equal(again, decoded)


# ---------------------------------------------------------------- torn journal

def _journal_with_trials(tmp_path, n=4):
    import optuna

    from tinynas.storage import make_storage

    storage, _ = make_storage(None, tmp_path)
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=n),
                                load_if_exists=True)
    study.optimize(lambda t: t.suggest_int("x", 0, 100) ** 2, n_trials=n - len(study.trials))
    return tmp_path / "study.journal", [(t.number, t.state, t.params, t.values) for t in study.trials]


def _reopened_trials(tmp_path):
    import optuna

    from tinynas.storage import make_storage

    storage, _ = make_storage(None, tmp_path)
    return [(t.number, t.state, t.params, t.values) for t in optuna.load_study(study_name="s", storage=storage).trials]


def _optuna_alone_fails(journal):
    """Ground truth that the damage is real: Optuna's own reader stops at it."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    copy = journal.with_name("copy.journal")
    later = b'{"op_code":0,"worker_id":"x","study_name":"other%d","directions":[1]}\n'
    copy.write_bytes(journal.read_bytes() + later % 1 + later % 2)  # the records a later worker appends
    with pytest.raises((ValueError, UnicodeDecodeError)):
        JournalStorage(JournalFileBackend(str(copy)))
    copy.unlink()


@pytest.mark.parametrize("damage", ["half_line", "garbage", "torn_then_more_records"])
def test_torn_journal_keeps_every_complete_trial(tmp_path, caplog, damage):
    journal, trials = _journal_with_trials(tmp_path)
    whole = journal.read_bytes()
    last_record = whole.splitlines(keepends=True)[-1]
    torn = {"half_line": last_record[: len(last_record) // 2],
            "garbage": b"\x92\xff\x00 not json \x92\n\x00\x01",
            "torn_then_more_records": last_record[:17]}[damage]
    later = b""
    if damage == "torn_then_more_records":  # records appended after the tear: the first is glued to it
        journal, trials = _journal_with_trials(tmp_path, n=6)  # the same study, 2 trials longer
        later = journal.read_bytes()[len(whole):]
        assert later.startswith(b'{"op_code":')
    journal.write_bytes(whole + torn + later)
    _optuna_alone_fails(journal)
    with caplog.at_level("WARNING", logger="tinynas.storage"):
        again = _reopened_trials(tmp_path)
    (side,) = tmp_path.glob("study.journal.torn-*")
    assert side.read_bytes() == torn
    lines = [r.getMessage() for r in caplog.records if "torn" in r.getMessage()]
    assert len(lines) == 1 and str(journal) in lines[0] and str(side) in lines[0] and "\n" not in lines[0]
    assert again == trials and len(trials) == (6 if later else 4)
    assert _reopened_trials(tmp_path) == again and len(list(tmp_path.glob("study.journal.torn-*"))) == 1


def test_journal_repair_waits_for_the_writers_lock(tmp_path):
    """The repair rewrites the journal only while holding Optuna's append lock: no worker is mid-append."""
    import threading

    from optuna.storages.journal import JournalFileSymlinkLock

    from tinynas.journal_repair import repair_torn_journal

    journal, _ = _journal_with_trials(tmp_path)
    torn_bytes = journal.read_bytes() + b'{"op_code":5,"wor'
    journal.write_bytes(torn_bytes)
    lock = JournalFileSymlinkLock(str(journal))
    lock.acquire()  # a worker appending now
    done = []
    repair = threading.Thread(target=lambda: done.append(repair_torn_journal(journal)))
    repair.start()
    repair.join(timeout=1.0)
    assert repair.is_alive() and journal.read_bytes() == torn_bytes  # not touched while the lock is held
    lock.release()
    repair.join(timeout=60)
    assert done and done[0].read_bytes() == b'{"op_code":5,"wor' and journal.read_bytes() == torn_bytes[:-17]


# ---------------------------------------------------------------- wrong types and impossible values

TINY = ["deploy=false", "logger=none", "dataset=digits", "search=tpe", "search.n_startup_trials=3",
        "search_space.options.resolutions=[8]", "search_space.options.widths=[0.3,0.5]",
        "search_space.options.depth_choices=[1]", "search_space.options.head_channels=32",
        "train.max_train_samples=200", "train.epochs=1"]


@pytest.mark.parametrize("override, needle", [
    ("budgets.sram_bytes=abc", "budgets.sram_bytes='abc' is not allowed; expected a positive integer (bytes), or null"),
    ("budgets.latency_ms=fast", "budgets.latency_ms='fast' is not allowed; expected a positive number (milliseconds)"),
    ("n_trials=abc", "n_trials='abc' is not allowed; expected an integer ≥ 0"),
    ("n_trials=-3", "n_trials=-3 is not allowed; expected an integer ≥ 0"),
    ("n_trials=2.5", "n_trials=2.5 is not allowed; expected an integer ≥ 0"),
    ("seed=abc", "seed='abc' is not allowed; expected an integer"),
    ("objectives=accuracy", "objectives='accuracy' is not allowed; expected a list of objective names, e.g. "
                            "objectives=[accuracy,sram]"),
    ("budgets.sram_bytes=-5", "budgets.sram_bytes=-5 is not allowed; expected a positive integer"),
    ("deploy=maybe", "deploy='maybe' is not allowed; expected true or false"),
    ("train.epochs=abc", "train.epochs='abc' is not allowed; expected an integer ≥ 0"),
    ("timeout_s=0", "timeout_s=0 is not allowed; expected a positive number of seconds, or null"),
])
def test_wrong_type_or_range_is_one_line(tinynas_cli, tmp_path, override, needle):
    p = tinynas_cli("search", "logger=none", override)
    assert_one_line_error(p, needle)
    assert not (tmp_path / "runs").exists()  # refused before Hydra made a run dir


def test_each_multirun_job_is_validated(tinynas_cli):
    p = tinynas_cli("search", "--multirun", "logger=none", "seed=abc,1")
    assert_one_line_error(p, "seed='abc' is not allowed; expected an integer")


def test_dataset_root_naming_a_file(tinynas_cli, tmp_path):
    f = tmp_path / "a_file"
    f.write_text("not a folder")
    p = tinynas_cli("search", "logger=none", "dataset=cifar10", f"dataset.root={f}")
    assert_one_line_error(p, f"root={f} is a file; expected a folder holding data_batch_1")


@pytest.mark.parametrize("content, needle", [
    ("[1, 2]", "is not an arch spec: expected a JSON object with a 'space' field and that space's fields, as "
               "`tinynas sample` writes; got a JSON list"),
    ('{"foo": 1, "bar": 2}', "is not an arch spec: expected a JSON object with a 'space' field and that space's "
                             "fields, as `tinynas sample` writes; got keys ['bar', 'foo']"),
    ('{"space": "mcunet", "foo": 1}', "MCUNetArch: unknown fields ['foo'], missing fields"),
    ('"mcunet"', "got a JSON str"),
])
def test_arch_json_of_another_shape(tinynas_cli, tmp_path, content, needle):
    arch = tmp_path / "x.json"
    arch.write_text(content)
    p = tinynas_cli("estimate", f"arch={arch}")
    assert_one_line_error(p, f"arch={arch}", needle)


@pytest.mark.parametrize("key", ["model", "arch"])
def test_a_folder_where_a_file_belongs(tinynas_cli, tmp_path, key):
    p = tinynas_cli("estimate", f"{key}={tmp_path}")
    assert_one_line_error(p, f"{key}='{tmp_path}' is not allowed; expected", "not a folder")


def test_run_dir_whose_log_file_cannot_be_opened(tinynas_cli, tmp_path):
    """Hydra's log handler would raise an OSError (read-only run dir, or a folder where the log belongs)."""
    run = tmp_path / "runs" / "search" / "blocked"
    (run / "search.log").mkdir(parents=True)
    p = tinynas_cli("search", "logger=none", "run_id=blocked")
    assert_one_line_error(p, f"cannot write {run / 'search.log'} in the run dir", "Is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir(tinynas_cli, tmp_path):
    run = tmp_path / "runs" / "search" / "ro"
    run.mkdir(parents=True)
    run.chmod(0o555)
    p = tinynas_cli("search", "logger=none", "run_id=ro")
    assert_one_line_error(p, "cannot write", "in the run dir", "Permission denied")


def test_validation_accepts_every_shipped_config():
    """The rules refuse nothing the shipped configs and experiments set (ground truth: the configs themselves)."""
    from hydra import compose, initialize_config_dir

    from tinynas.config_check import validate
    from tinynas.paths import CONF_DIR

    experiments = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for command in ("search", "estimate", "sample", "train", "export", "distill", "report", "rank_space"):
            validate(compose(config_name=command))
        for name in experiments:
            validate(compose(config_name="search", overrides=[f"experiment={name}"]))


def test_n_trials_zero_on_an_empty_study(tinynas_cli):
    p = tinynas_cli("search", *TINY, "n_trials=0", "run_id=empty")
    assert_one_line_error(p, "n_trials=0 runs no new trial, and study", "holds none to report or deploy")


# ---------------------------------------------------------------- children of a killed process

PARENT = """
import subprocess, sys
from tinynas import children
spawn = children.run if sys.argv[1] == "helper" else subprocess.run
spawn([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)",
       sys.argv[2]])
"""


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # killed; PID 1 may be slow to reap
    except psutil.NoSuchProcess:
        return True


def _wait_until(condition, limit_s=60.0) -> bool:
    import time

    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("spawn", ["helper", "plain_subprocess"])
def test_child_dies_with_a_killed_parent(tmp_path, spawn):
    """The converter's spawn helper (tinynas.children.run): SIGKILL the parent and its child goes too. The plain
    ``subprocess.run`` control shows the orphan the helper prevents."""
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, spawn, str(pid_file)],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert _wait_until(lambda: pid_file.is_file() and pid_file.read_text().strip())
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        if spawn == "helper":
            assert _wait_until(lambda: _gone(child))
        else:
            assert not _gone(child)  # the orphan lives on (adopted by PID 1)
    finally:
        parent.kill()
        if pid_file.is_file() and not _gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_converter_is_spawned_by_the_helper(monkeypatch, tmp_path):
    """convert_to_int8 starts onnx2tf's child through tinynas.children.run (what the test above checks)."""
    from types import SimpleNamespace

    from tinynas import children
    from tinynas.export import convert
    from tinynas.export.errors import ExportError

    calls = []
    monkeypatch.setattr(children, "run", lambda args, **kw: calls.append(args) or SimpleNamespace(returncode=1))
    onnx = SimpleNamespace(path=tmp_path / "m.onnx", input_name="x")
    with pytest.raises(ExportError):
        convert.convert_to_int8(onnx, np.zeros((1, 1, 4, 4), np.float32), tmp_path / "work", tmp_path / "log")
    assert calls and calls[0][1:3] == ["-m", "tinynas.export.convert"]


def test_stale_export_temp_dirs_are_removed_by_the_next_export(tmp_path):
    """A SIGKILL skips the export's ``finally``: its temp folder is removed by the next export in that folder,
    while a live process's folder stays."""
    import subprocess
    import sys

    import torch

    from tinynas.children import make_temp_dir
    from tinynas.export import export_model
    from tinynas.export.errors import ExportError

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    prefix = ".export.export-"
    stale = tmp_path / f"{prefix}{dead.pid}-1700000000-abc"
    older = tmp_path / f"{prefix}k3j_x9q1"  # the name a folder had before it carried its creator
    for d in (stale, older):
        (d / "work").mkdir(parents=True)
        (d / "work" / "model.onnx").write_bytes(b"x" * 1000)
    live = make_temp_dir(tmp_path, prefix)  # this process's, in use
    with pytest.raises(ExportError):  # the next export (refused for its input, after the clean-up)
        export_model(torch.nn.Linear(2, 2), np.zeros((0, 1, 2, 2), np.float32), tmp_path / "export")
    assert not stale.exists() and not older.exists() and live.is_dir()


# ---------------------------------------------------------------- two processes, one run dir

HOLDER = """
import sys
from tinynas.run_lock import hold_run_dir
hold_run_dir(sys.argv[1], "tinynas search writing its outputs")
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


def _holder(run_dir):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_writer_of_a_run_dir_exits_naming_the_holder(tinynas_cli, tmp_path):
    run = tmp_path / "runs" / "search" / "shared"
    holder = _holder(run)
    try:
        p = tinynas_cli("search", *TINY, "n_trials=0", "run_id=shared")
        assert_one_line_error(p, f"run dir {run} is locked by pid {holder.pid} (tinynas search writing its outputs",
                              "run_id=")
        assert not (run / "study.journal").exists()  # refused before any work
    finally:
        holder.stdin.close()
        holder.wait()
    # the holder is gone: the same command passes the lock (and stops at the empty study it then finds)
    p = tinynas_cli("search", *TINY, "n_trials=0", "run_id=shared")
    assert_one_line_error(p, "n_trials=0 runs no new trial")


def test_run_dir_lock_of_a_killed_holder_is_free(tmp_path):
    from tinynas.run_lock import LOCK_FILE, hold_run_dir

    holder = _holder(tmp_path)
    with pytest.raises(ConfigError, match=rf"locked by pid {holder.pid} "):
        hold_run_dir(tmp_path, "test")
    holder.kill()
    holder.wait()
    assert f"pid {holder.pid}" in (tmp_path / LOCK_FILE).read_text()  # a stale file, but no lock
    lock = hold_run_dir(tmp_path, "test")
    assert hold_run_dir(tmp_path, "again") is lock  # this process's own lock is not a second writer
    assert f"pid {os.getpid()} (test" in (tmp_path / LOCK_FILE).read_text()
    lock.release()


@pytest.mark.slow  # two searches: about 30 s on a busy 2-core machine
def test_torn_journal_then_n_trials_zero_rebuilds_outputs_from_every_trial(tinynas_cli, tmp_path):
    """End to end: a finished search, its journal torn by garbage bytes, then `n_trials=0` (no new trial) rebuilds
    results.json from every trial the study held, saying in one line where the torn bytes went."""
    import json

    first = tinynas_cli("search", *TINY, "n_trials=2", "run_id=torn")
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "search" / "torn"
    before = json.loads((run / "results.json").read_text())["study"]
    with open(run / "study.journal", "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"x","trial_id":1,"par\x92\xff')
    again = tinynas_cli("search", *TINY, "n_trials=0", "run_id=torn")
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((run / "results.json").read_text())["study"]
    assert after == before and before["n_complete"] == 2
    (side,) = run.glob("study.journal.torn-*")
    assert sum(str(side) in ln for ln in again.stderr.splitlines()) == 1
    assert "n_trials=0: no new trial; the outputs come from the 2 finished trials" in again.stderr

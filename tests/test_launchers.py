"""Hydra launchers start N workers on one study: `tinynas search --multirun hydra/launcher=joblib worker=0,1`
(loky processes) and `hydra/launcher=submitit_local` (submitit's own code path: pickled job, separate process,
no cluster). Each job is a worker; the sweep shares one journal in its sweep dir."""

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_workers import TINY
from tinynas.search import is_scored
from tinynas.storage import counted_trials, make_storage

N = 4


def results_paths(text: str) -> list[Path]:
    """The results.json paths a job prints on stdout."""
    return [Path(word) for word in text.split() if word.endswith("results.json")]


def check_sweep(paths: list[Path], tmp_path) -> tuple[Path, list]:
    """Both jobs finished with the whole study, from one journal in the sweep dir; returns (sweep dir, trials)."""
    assert len(paths) == 2, paths
    sweep = paths[0].parent.parent
    assert sorted(q.parent.name for q in paths) == ["0", "1"] and all(q.parent.parent == sweep for q in paths)
    docs = [json.loads(q.read_text()) for q in paths]
    url = f"journal://{(sweep / 'study.journal').resolve()}"
    assert {d["study"]["storage"] for d in docs} == {url}
    assert [d["study"]["n_trials"] for d in docs] == [N, N]
    trials = load_trials(sweep, tmp_path)
    assert counted_trials(trials) == N and all(t.state == TrialState.COMPLETE for t in trials)
    hashes = [t.user_attrs["arch_hash"] for t in trials if is_scored(t) and not t.user_attrs.get("reused")]
    assert len(set(hashes)) == len(hashes)
    for k in ("0", "1"):  # each job logged as a worker of its own
        assert "search mr: 4 trials" in (sweep / k / "search.log").read_text()
    return sweep, trials


def load_trials(sweep: Path, tmp_path) -> list:
    storage, _ = make_storage(f"journal://{(sweep / 'study.journal').resolve()}", tmp_path)
    return optuna.load_study(study_name="mr", storage=storage).get_trials()


def sweep_args(launcher: str) -> list[str]:
    return ["search", "--multirun", f"hydra/launcher={launcher}", "worker=0,1", *TINY, f"n_trials={N}",
            "study_name=mr"]


@pytest.mark.slow
def test_joblib_launcher_runs_two_workers_on_one_study(tinynas_cli, tmp_path):
    p = tinynas_cli(*sweep_args("joblib"), "hydra.launcher.n_jobs=2")
    assert p.returncode == 0, p.stderr[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in p.stdout  # Hydra logs its launcher to stdout
    check_sweep(results_paths(p.stdout), tmp_path)


@pytest.mark.slow
def test_submitit_local_launcher_runs_two_workers_on_one_study(tinynas_cli, tmp_path):
    p = tinynas_cli(*sweep_args("submitit_local"))
    assert p.returncode == 0, p.stderr[-4000:]
    sweep = Path(p.stdout.split("Submitit 'local' sweep output dir : ", 1)[1].split()[0])
    jobs = [d for d in (sweep / ".submitit").iterdir() if d.name.isdigit()]
    assert len(jobs) == 2  # two submitit jobs, each its own process, each with a pickled result
    outs = [next(d.glob("*_log.out")).read_text() for d in jobs]  # a job's stdout goes to its submitit log
    assert all("Job completed successfully" in out for out in outs) and all(list(d.glob("*_result.pkl")) for d in jobs)
    assert check_sweep([q for out in outs for q in results_paths(out)], tmp_path)[0] == sweep


def test_a_bad_worker_index_is_one_line(tinynas_cli):
    p = tinynas_cli("search", *TINY, "worker=-1", "n_trials=1")
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("tinynas: error: worker=-1")
    assert "Traceback" not in p.stderr


def test_only_worker_0_deploys(tinynas_cli, tmp_path):
    storage = f"journal://{tmp_path / 'd.journal'}"
    first = tinynas_cli("search", *TINY, f"storage={storage}", "study_name=d", "n_trials=2", "run_id=d0")
    assert first.returncode == 0, first.stderr[-3000:]
    # A second worker of the now complete study, deploy requested: it leaves deploying to worker 0.
    TINY_DEPLOY = [a for a in TINY if a != "deploy=false"] + ["deploy=true"]
    p = tinynas_cli("search", *TINY_DEPLOY, f"storage={storage}", "study_name=d", "n_trials=2", "run_id=d1",
                    "worker=1")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "worker 1: the study is complete; worker 0 deploys its best point" in p.stderr
    assert json.loads(Path(p.stdout.strip().splitlines()[-1]).read_text())["deployed"] is None

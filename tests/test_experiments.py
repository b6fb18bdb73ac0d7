"""Paper reproductions (experiments/): configs compose, ours.md is current, exact structures match the published
MACs and params, and `tinynas report page=` renders an experiment's page with its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tinynas import experiments
from tinynas.commands.common import load_space
from tinynas.paths import CONF_DIR, ROOT

PAPER_PREFIXES = ("mcunet_", "unas_", "micronets_", "mlperf_")
PAPER_CONFIGS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if p.stem.startswith(PAPER_PREFIXES))
BOARDS = sorted(p.stem for p in (CONF_DIR / "mcu").glob("*.yaml"))


def test_every_paper_config_is_found():
    assert {c.split("_")[0] for c in PAPER_CONFIGS} == {"mcunet", "unas", "micronets", "mlperf"}


@pytest.mark.slow  # test_config composes every experiment too; this adds name, board and dataset checks
@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_composes_through_search(name):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[f"experiment={name}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.name == name
    board = next((b for b in BOARDS if name.endswith("_" + b)), None)
    if board:  # the board in the config's name is the board it targets
        assert cfg.mcu.name == board
    assert experiments.resolve(name) in experiments.available()  # its page exists
    space = load_space(cfg)
    for entry in cfg.search.enqueue:  # arch files (paths from the repository root) are points of the space
        if entry.endswith(".json"):
            space.decode(json.loads((ROOT / entry).read_text()))
    task = next((t for t in TASK_DATASETS if f"_{t}" in name), None)
    if task:  # the task in the config's name is the dataset it loads
        assert cfg.dataset.name == TASK_DATASETS[task]


TASK_DATASETS = {"imagenet": "image_folder", "vww": "vww", "kws": "speech_commands", "ic": "cifar10",
                 "mnist": "mnist", "cifar10": "cifar10", "speech_commands": "speech_commands"}
#: μNAS's published bounds (github.com/eliberis/uNAS configs/cnn_*_aging.py, BoundConfig): peak memory and
#: model size in bytes.
UNAS_BOUNDS = {"unas_mnist": (2500, 4500), "unas_cifar10": (75000, 75000), "unas_speech_commands": (60000, 40000)}


@pytest.mark.parametrize("name", sorted(UNAS_BOUNDS))
def test_unas_budgets_are_the_published_bounds(name):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[f"experiment={name}"])
    assert (cfg.budgets.sram_bytes, cfg.budgets.flash_bytes) == UNAS_BOUNDS[name]
    assert cfg.runtime == "analytic" and "macs" in cfg.objectives  # μNAS counts the model alone; MACs bounded


@pytest.mark.parametrize("name", experiments.with_published())
def test_ours_md_is_current(name):
    """Fails when an estimator (or published.csv) changed and `python -m tinynas.experiments` was not rerun."""
    path = experiments.EXPERIMENTS_DIR / name / "ours.md"
    assert path.read_text() == experiments.ours_markdown(name), f"regenerate {path}: python -m tinynas.experiments"


EXACT = [(name, r) for name in experiments.with_published() for r in experiments.read_published(name)
         if r["exact"] == "yes"]


@pytest.mark.parametrize("name,row", EXACT, ids=[f"{n}:{r['model']}" for n, r in EXACT])
def test_exact_structures_match_published_macs_and_params(name, row):
    """Where the published network's structure is known exactly, our MACs and params round to the published
    figures (within half a unit of their last printed digit)."""
    ours = experiments.ours_for(row)
    for column in ("macs_m", "params_m"):
        if row[column]:
            assert abs(ours[column] - float(row[column])) <= experiments.half_unit(row[column]), column


@pytest.mark.parametrize("name", experiments.with_published())
def test_published_boards_are_known_mcus(name):
    """A row's board is one of conf/mcu (empty only for a published-only row, e.g. a released file size)."""
    for r in experiments.read_published(name):
        assert r["board"] in BOARDS or (not r["board"] and not r["build"]), (r["model"], r["board"])


def test_every_exact_experiment_has_rows():
    assert {name for name, _ in EXACT} == {"mcunet", "mlperf_tiny", "micronets"}


def test_resolve_names_and_errors():
    assert experiments.resolve("mcunet_vww_stm32f746") == "mcunet"
    assert experiments.resolve("mlperf_tiny_vww") == "mlperf_tiny"
    with pytest.raises(Exception, match="nope.*allowed: .*mcunet"):
        experiments.resolve("nope")


def _fake_run(runs: Path, experiment: str, study: str) -> None:
    """A finished search run as `tinynas search` leaves it: results.json and pareto.png."""
    run = runs / "search" / study
    run.mkdir(parents=True)
    row = {"trial": 7, "arch": {}, "accuracy": 0.8125, "sram_bytes": 40960, "flash_bytes": 204800,
           "latency_ms": 123.4, "energy_mj": 1.0, "macs": 2_500_000, "params": 21_000}
    (run / "results.json").write_text(json.dumps({
        "experiment": experiment, "mcu": "stm32l4r5", "runtime": "tflm",
        "budgets": {"sram_bytes": 655360, "flash_bytes": 2097152, "latency_ms": None},
        "study": {"name": study, "n_trials": 12}, "pareto": [row], "deployed": None}))
    (run / "pareto.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def test_report_page_through_the_cli(tinynas_cli, tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "mlperf_tiny_vww", "mlperf_tiny_vww-stm32l4r5-mobilenetv1")
    _fake_run(runs, "mnist", "mnist-stm32f446-mcunet")  # another experiment's run: not on the page
    p = tinynas_cli("report", "page=mlperf_tiny", "format=md", f"out={tmp_path / 'pages'}")
    assert p.returncode == 0, p.stderr
    page = tmp_path / "pages" / "mlperf_tiny.md"
    assert Path(p.stdout.strip()) == page.resolve()
    text = page.read_text()
    assert "| mlperf_kws_dscnn | stm32l4r5 / tflm | 2.656768 | 2.656768 | +0.0% |" in text  # published, ours
    assert "mlperf_tiny_vww-stm32l4r5-mobilenetv1" in text and "| 7 | 0.8125 | 40.0 | 200.0 | 123.4 | 2.50 |" in text
    assert "mnist-stm32f446-mcunet" not in text
    assert (tmp_path / "pages" / "mlperf_tiny_vww-stm32l4r5-mobilenetv1-pareto.png").is_file()
    assert "![our fronts and the published models](mlperf_tiny-accuracy-sram.png)" in text
    assert (tmp_path / "pages" / "mlperf_tiny-accuracy-sram.png").read_bytes().startswith(b"\x89PNG")



def _report(*overrides):
    from tinynas.commands import report

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return report.run(compose(config_name="report", overrides=list(overrides)))


def test_report_page_html_without_runs(tmp_path, capsys):
    doc = _report("page=mcunet_vww_stm32f746", "format=html", f"out={tmp_path}", f"runs={tmp_path / 'none'}")
    assert doc["experiment"] == "mcunet"
    html = (tmp_path / "mcunet.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<td>mcunet-320kB-vww</td>" in html and "<td>91.8</td>" in html
    assert "No finished search run" in html
    assert '<img alt="our fronts and the published models" src="data:image/png;base64,' in html  # published only


def test_report_page_json_and_bad_format(capsys):
    from tinynas.errors import ConfigError

    doc = _report("page=micronets", "format=json")
    assert json.loads(capsys.readouterr().out) == doc
    assert {r["published"]["model"] for r in doc["rows"]} >= {"MicroNet-KWS-L", "DS-CNN-S (Hello Edge)"}
    with pytest.raises(ConfigError, match="format='pdf'"):
        _report("page=mlperf_tiny", "format=pdf")


def test_report_page_unknown_experiment_names_the_allowed_ones():
    from tinynas.errors import ConfigError

    with pytest.raises(ConfigError, match="'nope'.*allowed: .*mlperf_tiny"):
        _report("page=nope", "format=md")


def test_every_mcunet_table_says_what_its_published_columns_measured():
    """Each published table of the MCUNet page is followed by the note on what its columns measured."""
    notes = experiments.column_notes("mcunet")
    page = experiments.ours_markdown("mcunet")
    for task in {r["task"] for r in experiments.read_published("mcunet")}:
        assert "measured" in notes[task]
        table_end = page.index("\n\n", page.index(f"## {task}\n\n") + len(task) + 5)
        assert page[table_end:].lstrip().startswith(notes[task])
    assert "TinyEngine" in notes["ImageNet, TinyEngine on STM32F746"]
    assert "arena" in notes["ImageNet, TF-Lite Micro on STM32F746"]


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_report_page_prints_its_path_and_the_column_notes(tinynas_cli, tmp_path, fmt):
    p = tinynas_cli("report", "page=mcunet", f"format={fmt}", f"out={tmp_path}", f"runs={tmp_path / 'none'}")
    assert p.returncode == 0, p.stderr
    page = tmp_path / f"mcunet.{fmt}"
    assert p.stdout.strip() == str(page.resolve())
    text = page.read_text()
    first = experiments.column_notes("mcunet")["ImageNet, TinyEngine on STM32F746"].split("\n")[0]
    assert first.split("**")[0] in text

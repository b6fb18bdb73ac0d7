"""The `tinynas` console script: bad input gets one clear paragraph and a non-zero exit, never a traceback;
estimate / sample follow their contracts."""

import json

import pytest

from conftest import cli_runner


def assert_clean_error(proc, *needles):
    assert proc.returncode != 0
    err = proc.stderr
    assert "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_unknown_mcu_lists_the_catalogue(tinynas_cli):
    p = tinynas_cli("search", "mcu=stm32f999", "logger=none")
    assert_clean_error(p, "unknown mcu 'stm32f999'", "stm32f746", "nrf52840", "rp2040")


def test_unknown_search_space_and_dataset(tinynas_cli):
    assert_clean_error(tinynas_cli("search", "search_space=resnet"), "unknown search_space 'resnet'", "mcunet")
    assert_clean_error(tinynas_cli("search", "dataset=imagenet"), "unknown dataset 'imagenet'", "mnist")


def test_unknown_command(tinynas_cli):
    assert_clean_error(tinynas_cli("serch"), "unknown command 'serch'", "search")


def test_impossible_budget_is_explained(tinynas_cli):
    p = tinynas_cli("search", "logger=none", "budgets.sram_bytes=1024")
    assert_clean_error(p, "no candidate of search space 'mcunet' can meet the budgets", "budget 1,024")


def test_unwritable_storage(tinynas_cli):
    p = tinynas_cli("search", "logger=none", "storage=journal:///dev/null/study.log")
    assert_clean_error(p, "storage=journal:///dev/null/study.log")


def test_unwritable_run_dir(tinynas_cli, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    p = tinynas_cli("search", "logger=none", env={"TINYNAS_RUNS": str(blocker / "runs")})
    assert_clean_error(p, str(blocker))


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """`tinynas sample n=3 seed=1`, run once for the module (each process start costs seconds): the finished
    process and the arch files its stdout names."""
    root = tmp_path_factory.mktemp("sample")
    p = cli_runner(root)("sample", "n=3", "seed=1", f"out={root / 'archs'}")
    return p, p.stdout.split()


def test_sample_then_estimate_json_contract(tinynas_cli, sampled, tmp_path):
    p, paths = sampled
    assert p.returncode == 0, p.stderr
    assert len(paths) == 3 and all(json.loads(open(x).read())["space"] == "mcunet" for x in paths)
    p = tinynas_cli("estimate", f"arch={paths[0]}", "mcu=stm32f746", "runtime=tflm", "format=json",
                    f"out={tmp_path / 'e.json'}")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == json.loads((tmp_path / "e.json").read_text())
    assert set(doc) == {"model", "mcu", "runtime", "macs", "params", "sram", "flash", "latency_ms", "energy_mj",
                        "fits", "instructions", "cycles", "layers"}
    assert set(doc["sram"]) == {"activation_bytes", "persistent_bytes", "total_bytes", "budget_bytes"}
    assert set(doc["flash"]) == {"model_bytes", "runtime_bytes", "total_bytes", "budget_bytes", "model_source",
                                 "runtime_source"}
    assert doc["flash"]["model_source"] == "estimate"
    assert doc["sram"]["budget_bytes"] == 320 * 1024 and doc["mcu"] == "stm32f746"
    assert doc["macs"] == sum(l["macs"] for l in doc["layers"]) > 0
    assert set(doc["layers"][0]) == {"name", "op", "output_shape", "macs", "params", "live_bytes", "latency_ms",
                                     "instructions", "cycles"}
    table = tinynas_cli("estimate", f"arch={paths[0]}", "mcu=rp2040")
    assert table.returncode == 0 and "SRAM" in table.stdout and "rp2040" in table.stdout


@pytest.mark.parametrize("args, needle", [
    (["arch=/no/such.json"], "arch=/no/such.json: no such file"),
    (["model=/no/such.tflite"], "model=/no/such.tflite: no such file"),
    ([], "give exactly one of arch=FILE.json or model="),
    (["runtime=tvm"], "runtime='tvm' is unknown"),
])
def test_estimate_bad_input(tinynas_cli, sampled, args, needle):
    if args == ["runtime=tvm"]:
        args = [f"arch={sampled[1][0]}", *args]
    assert_clean_error(tinynas_cli("estimate", *args), needle)


def test_estimate_corrupt_model_file(tinynas_cli, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    assert_clean_error(tinynas_cli("estimate", f"model={bad}"), str(bad))


def test_export_rejects_checkpoint_of_another_arch(tinynas_cli, sampled, tmp_path):
    from search_spaces import get_space

    archs = sampled[1]
    assert archs[0] != archs[1]
    other = get_space("mcunet", {}).decode(json.loads(open(archs[1]).read()))
    from tinynas.checkpoint import save_checkpoint

    space = get_space("mcunet", {})
    save_checkpoint(tmp_path / "other.pt", space.build_torch(other, 1, 10), other, 1, 10)
    p = tinynas_cli("export", f"arch={archs[0]}", f"checkpoint={tmp_path / 'other.pt'}", f"out={tmp_path / 'x'}")
    assert_clean_error(p, "was saved for arch")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    p = tinynas_cli("export", f"arch={archs[0]}", f"checkpoint={tmp_path / 'corrupt.pt'}", f"out={tmp_path / 'x'}")
    assert_clean_error(p, "corrupt")
    assert not (tmp_path / "x" / "export.json").exists()


def test_help_lists_commands(tinynas_cli):
    p = tinynas_cli("--help")
    assert p.returncode == 0 and all(c in p.stdout for c in ("search", "estimate", "export", "report"))
    p = tinynas_cli("search", "--help")
    assert p.returncode == 0 and "mcu" in p.stdout

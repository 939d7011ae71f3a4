"""The command line: help everywhere, one-line errors with exit codes, index info/verify, refusals."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from matcher import IndexMismatchError, Matcher
from matcher.cli import app
from matcher.index import store
from tests.conftest import DEMO

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [[], ["index"], ["index", "build"], ["index", "info"], ["index", "verify"],
                                     ["scan"], ["eval"]])
def test_every_command_has_help(command):
    code, output = run(*command, "--help")
    assert code == 0 and "Usage" in output


def _one_line_error(code, output, *needles):
    assert code != 0
    lines = [l for l in output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in lines[0]


def test_build_missing_catalog_is_one_line(tmp_path):
    code, out = run("index", "build", tmp_path / "nope", "--out", tmp_path / "idx")
    _one_line_error(code, out, "nope", "not found")


def test_build_empty_catalog_is_one_line(tmp_path):
    (tmp_path / "empty" / "Brand").mkdir(parents=True)
    code, out = run("index", "build", tmp_path / "empty", "--out", tmp_path / "idx")
    _one_line_error(code, out, "empty catalog")


def test_build_unknown_runtime_is_one_line(tmp_path):
    code, out = run("index", "build", DEMO / "catalog", "--out", tmp_path / "idx", "--runtime", "fp16")
    _one_line_error(code, out, "fp16", "bf16")
    assert not (tmp_path / "idx").exists()


def test_scan_missing_index_is_one_line(tmp_path):
    code, out = run("scan", DEMO / "listings", "--index", tmp_path / "missing", "--out", tmp_path / "r.jsonl")
    _one_line_error(code, out, "missing", "not found")


@pytest.mark.parametrize("options, needles", [
    (["--engine", "spark"], ["unknown --engine 'spark'", "local or ray"]),
    (["--engine", "ray", "--min-suspicion", "0.5"], ["--min-suspicion and --workers", "local engine"]),
    (["--engine", "ray", "--shard-size", "100"], ["missing", "not found"]),
])
def test_scan_engine_options_are_checked_before_any_work(tmp_path, options, needles):
    code, out = run("scan", DEMO / "listings", "--index", tmp_path / "missing", "--out", tmp_path / "out", *options)
    _one_line_error(code, out, *needles)
    assert not (tmp_path / "out").exists()


def test_scan_unknown_results_suffix_is_one_line(demo_index, tmp_path):
    code, out = run("scan", DEMO / "listings", "--index", demo_index, "--out", tmp_path / "r.xlsx")
    _one_line_error(code, out, ".jsonl")


def test_scan_csv_prints_summary_and_results_path(demo_index, tmp_path):
    out_file = tmp_path / "r.csv"
    code, out = run("scan", DEMO / "listings", "--index", demo_index, "--out", out_file)
    assert code == 0, out
    assert "listings in" in out and str(out_file) in out and "top suspects" in out
    assert out_file.read_text(encoding="utf-8").count("\n") == 1 + len(list((DEMO / "listings").iterdir()))


def test_index_info_and_verify(demo_index):
    code, out = run("index", "info", demo_index)
    assert code == 0 and "threshold" in out and "Alpro-Fresh-Soy-Milk: 5, typical price 2.19" in out
    assert "gate:" in out and "keeps 99% of the synthetic listings the full cascade detects" in out
    code, out = run("index", "info", demo_index, "--json")
    manifest = json.loads(out)
    assert manifest["counts"]["brands"] == 8 and manifest["fingerprint"]["weights_sha256"]
    code, out = run("index", "verify", demo_index)
    assert code == 0 and out.startswith("ok:")


def _copy_index(demo_index, tmp_path):
    copy = tmp_path / "idx"
    shutil.copytree(demo_index, copy)
    return copy, store.current_version(copy)


def test_tampered_file_is_refused_by_verify(demo_index, tmp_path):
    copy, folder = _copy_index(demo_index, tmp_path)
    data = bytearray((folder / "scorer.json").read_bytes())
    data[10] = ord("9") if data[10] != ord("9") else ord("8")
    (folder / "scorer.json").write_bytes(bytes(data))
    code, out = run("index", "verify", copy)
    _one_line_error(code, out, "scorer.json", "sha256")


def test_index_from_other_weights_is_refused(demo_index, tmp_path):
    copy, folder = _copy_index(demo_index, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fingerprint"]["weights_sha256"] = "0" * 64
    store.write_manifest(folder, manifest)  # as another matcher would have sealed it
    with pytest.raises(IndexMismatchError, match="weights_sha256"):
        Matcher.open(copy)
    code, out = run("scan", DEMO / "listings", "--index", copy, "--out", tmp_path / "r.jsonl")
    _one_line_error(code, out, "weights_sha256", "0000")


def test_index_from_other_preprocessing_is_refused(demo_index, tmp_path):
    copy, folder = _copy_index(demo_index, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["fingerprint"]["preprocessing"]["size"] = 300
    store.write_manifest(folder, manifest)  # as another matcher would have sealed it
    code, out = run("scan", DEMO / "listings", "--index", copy, "--out", tmp_path / "r.jsonl")
    _one_line_error(code, out, "preprocessing")


def test_newer_index_format_is_refused(demo_index, tmp_path):
    copy, folder = _copy_index(demo_index, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    store.write_manifest(folder, manifest)  # as another matcher would have sealed it
    code, out = run("index", "info", copy)
    _one_line_error(code, out, "format 99", "upgrade")


def _commands(group, prefix=("matcher",)):
    """(command path, its long options) for every leaf command of the typer app."""
    for name, command in sorted(group.commands.items()):
        path = prefix + (name,)
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            yield from _commands(command, path)
        else:
            options = [o for p in command.params if p.param_type_name == "option"
                       for o in p.opts + p.secondary_opts if o.startswith("--")]
            yield " ".join(path), options


def test_docs_cli_md_names_every_command_and_option():
    """docs/cli.md has a section per command (``## matcher index build``) naming each of its options."""
    import typer

    text = (DEMO.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        sections[title.strip()] = body
    missing = []
    for path, options in _commands(typer.main.get_command(app)):
        if path not in sections:
            missing.append(path)
            continue
        missing += [f"{path} {o}" for o in options if f"`{o}" not in sections[path] and o != "--help"]
    assert missing == []
    assert len(sections) > 5


LIGHT_SCRIPT = """
import sys
from typer.testing import CliRunner
from matcher.cli import app
for args in {commands!r}:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
print(sorted(m for m in ("torch", "timm", "openvino") if m in sys.modules))
"""


def test_import_help_info_and_report_load_no_model_stack(demo_index, tmp_path):
    """``import matcher``, ``matcher --help``, ``index info`` and ``report`` never load torch, timm or OpenVINO."""
    import subprocess
    import sys

    from matcher import scan

    results = tmp_path / "results.jsonl"
    scan(DEMO / "listings.csv", Matcher.open(demo_index), results)  # a real results file for the report
    commands = [["--help"], ["index", "info", str(demo_index)], ["index", "verify", str(demo_index)],
                ["report", str(results), "--index", str(demo_index), "--out", str(tmp_path / "report.html")]]
    heavy = "('torch', 'timm', 'openvino', 'fastapi', 'uvicorn', 'prometheus_client')"
    for script in [f"import sys, matcher\nprint(sorted(m for m in {heavy} if m in sys.modules))",
                   LIGHT_SCRIPT.format(commands=commands)]:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=DEMO.parent)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_serve_refuses_a_missing_index_before_starting(tmp_path):
    code, output = run("serve", "--index", tmp_path / "nowhere")
    _one_line_error(code, output, "nowhere", "not found")

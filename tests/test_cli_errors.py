"""Every bad option or input of `python -m precompute` ends with exit status 2 and one line `error: ...` naming
the option or file, before any model weights load or any stage runs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.facts import FactCorpus, load_corpus, save_corpus
from precompute.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli_inputs")
    demo = load_corpus(DEMO_CORPUS_DIR)
    save_corpus(FactCorpus({r: demo.relations[r] for r in ("person_father", "star_constellation")}, ["en"], "", "cli"),
                base / "corpus")
    (base / "a_file").write_text("not a folder")
    (base / "unrelated").mkdir()
    (base / "unrelated" / "thesis.tex").write_text("someone else's work")
    for name, meta in {"corpus_list": [], "corpus_no_relations": {"format": "relation-facts/1", "languages": ["en"]},
                       "corpus_relations_text": {"format": "relation-facts/1", "languages": ["en"], "relations": "abc"}
                       }.items():
        (base / name).mkdir()
        (base / name / "corpus.json").write_text(json.dumps(meta))
    no_tokenizer = base / "no_tokenizer_model"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(DEMO_MODEL_DIR / name, no_tokenizer / name)
    lre = base / "lre"
    lre.mkdir()
    relation = {"name": "father", "prompt_templates": ["The father of {} is"],
                "samples": [{"subject": f"S{i}", "object": f"O{i}"} for i in range(6)]}
    for stem in ("father", "Father"):
        (lre / f"{stem}.json").write_text(json.dumps(relation))
    (base / "templates.csv").write_text("relation,language,template\nfather,en,The father of {} is\n")
    (base / "unclosed.csv").write_text('relation,subject,object\nfather,"Bob,Al\n')
    (base / "latin1.csv").write_bytes("relation,subject,object\nfather,Jos\xe9,Al\n".encode("latin-1"))
    return {"base": base, "corpus": base / "corpus", "model": DEMO_MODEL_DIR, "no_tokenizer": no_tokenizer}


def run_args(inputs, *extra: str, out: str | None = None) -> list[str]:
    return ["run", "--model", str(inputs["model"]), "--facts", str(inputs["corpus"]),
            "--out", out or str(inputs["base"] / "new_run"), "--k", "20", "--k-sweep", "5,20", *extra]


def expect_one_line_error(capsys, argv: list[str], *names: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


RUN_OPTION_CASES = [
    (["--random-seeds", "0"], "--random-seeds"),
    (["--effect-templates", "-1"], "--effect-templates"),
    (["--effect-templates", "0"], "--effect-templates"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "ten"], "--batch-size"),
    (["--negatives-ratio", "-1"], "--negatives-ratio"),
    (["--negatives-ratio", "0"], "--negatives-ratio"),
    (["--negatives-ratio", "nan"], "--negatives-ratio"),
    (["--negatives-ratio", "inf"], "--negatives-ratio"),
    (["--threads", "0"], "--threads"),
    (["--score-memory-mib", "0"], "--score-memory-mib"),
    (["--min-facts", "-1"], "--min-facts"),
    (["--seed", "-1"], "--seed"),
    (["--k", "150%"], "--k"),
    (["--k", "nan"], "--k"),
    (["--k", "inf"], "--k"),
    (["--k", "-5"], "--k"),
    (["--k", "0"], "--k"),
    (["--k", "abc"], "--k"),
    (["--k-sweep", ","], "--k-sweep"),
    (["--k-sweep", "10,200%"], "--k-sweep"),
    (["--languages", ","], "--languages"),
    (["--languages", "en,../x"], "--languages"),
    (["--identification-language", "EN!"], "--identification-language"),
    (["--languages", "en", "--identification-language", "de"], "--identification-language"),
    (["--device", "gpu0;rm"], "--device"),
    (["--dtype", "int8"], "--dtype"),
    (["--pooling", "median"], "--pooling"),
]


@pytest.mark.parametrize("extra,name", RUN_OPTION_CASES, ids=[" ".join(c[0]) for c in RUN_OPTION_CASES])
def test_bad_run_option_is_one_line_naming_it(inputs, capsys, extra, name):
    expect_one_line_error(capsys, run_args(inputs, *extra), name)
    assert not (inputs["base"] / "new_run").exists()  # refused before anything was written


@pytest.mark.parametrize("k", ["99999", "150%", "3585"])
def test_k_beyond_the_model_is_refused_not_clamped(inputs, capsys, k):
    argv = run_args(inputs)
    argv[argv.index("--k") + 1] = k
    expect_one_line_error(capsys, argv, k)
    assert not (inputs["base"] / "new_run").exists()


def test_k_sweep_beyond_the_model_is_refused(inputs, capsys):
    argv = run_args(inputs)
    argv[argv.index("--k-sweep") + 1] = "5,99999"
    expect_one_line_error(capsys, argv, "99999", "3,584")


def test_out_that_is_a_file_or_under_a_file(inputs, capsys):
    a_file = inputs["base"] / "a_file"
    expect_one_line_error(capsys, run_args(inputs, out=str(a_file)), "--out", str(a_file))
    expect_one_line_error(capsys, run_args(inputs, out=str(a_file / "sub")), "--out", str(a_file))


def test_out_that_is_someone_elses_folder(inputs, capsys):
    folder = inputs["base"] / "unrelated"
    expect_one_line_error(capsys, run_args(inputs, out=str(folder)), "--out", str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_under_a_read_only_folder(inputs, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        expect_one_line_error(capsys, run_args(inputs, out=str(locked / "run")), "--out", "read-only")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("corpus,what", [("corpus_list", "list"), ("corpus_no_relations", "'relations'"),
                                         ("corpus_relations_text", "'relations'")])
def test_malformed_corpus_index(inputs, capsys, corpus, what):
    argv = run_args(inputs)
    argv[argv.index("--facts") + 1] = str(inputs["base"] / corpus)
    expect_one_line_error(capsys, argv, "corpus.json", what)


def test_missing_facts_and_model(inputs, capsys):
    argv = run_args(inputs)
    argv[argv.index("--facts") + 1] = str(inputs["base"] / "nowhere")
    expect_one_line_error(capsys, argv, "--facts", "nowhere")
    argv = run_args(inputs)
    argv[argv.index("--model") + 1] = str(inputs["base"] / "no_model")
    expect_one_line_error(capsys, argv, "no_model")


def test_model_without_tokenizer_names_the_folder(inputs, capsys):
    argv = run_args(inputs)
    argv[argv.index("--model") + 1] = str(inputs["no_tokenizer"])
    line = expect_one_line_error(capsys, argv, str(inputs["no_tokenizer"]), "tokenizer files")
    assert "sentencepiece" not in line


def test_import_lre_refuses_two_files_for_one_relation(inputs, capsys):
    lre = inputs["base"] / "lre"
    expect_one_line_error(capsys, ["import-lre", str(lre), "--out", str(inputs["base"] / "lre_out")],
                          "father.json", "Father.json")


@pytest.mark.parametrize("facts", ["unclosed.csv", "latin1.csv"])
def test_import_csv_unreadable_facts(inputs, capsys, facts):
    base = inputs["base"]
    expect_one_line_error(capsys, ["import-csv", str(base / facts), str(base / "templates.csv"),
                                   "--out", str(base / "csv_out")], facts)


OTHER_CASES = [
    (["summary", "--run", "/nonexistent/run"], "/nonexistent/run"),
    (["summary", "--run", "{base}"], "manifest.json"),
    (["summary", "--run", "data/runs/demo", "--language", "xx"], "--language"),
    (["import-lre", "{base}/lre", "--out", "{base}/o", "--evaluation-count", "0"], "--evaluation-count"),
    (["import-lre", "{base}/lre", "--out", "{base}/o", "--min-facts", "-3"], "--min-facts"),
    (["import-lre", "{base}/lre", "--out", "{base}/a_file"], "--out"),
    (["import-csv", "{base}/latin1.csv", "{base}/templates.csv", "--out", "{base}/unrelated"], "--out"),
    (["build-corpus", "--templates", "{base}/nowhere.json", "--out", "{base}/o"], "--templates"),
    (["train-demo", "--out", "{base}/m", "--hidden-size", "0"], "--hidden-size"),
    (["train-demo", "--out", "{base}/m", "--learning-rate", "nan"], "--learning-rate"),
    (["train-demo", "--out", "{base}/m", "--vocab-size", "10"], "--vocab-size"),
    (["train-demo", "--out", "{base}/m", "--threads", "0"], "--threads"),
    (["train-demo", "--out", "{base}/m", "--hidden-size", "130", "--heads", "4"], "--heads"),
    (["train-demo", "--out", "{base}/unrelated"], "--out"),
    (["synthetic-run", "--shape", "small", "--out", "{base}/a_file"], "--out"),
    (["accuracy", "--target", "1.5"], "--target"),
    (["accuracy", "--batch-size", "0"], "--batch-size"),
]


@pytest.mark.parametrize("argv,name", OTHER_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in OTHER_CASES])
def test_other_subcommands(inputs, capsys, argv, name):
    base = str(inputs["base"])
    expect_one_line_error(capsys, [a.format(base=base) for a in argv], name.format(base=base))


def test_the_module_entry_point_reports_one_line_too(inputs):
    """The real `python -m precompute` process: exit status 2, one line, no traceback."""
    done = subprocess.run([sys.executable, "-m", "precompute", *run_args(inputs, "--random-seeds", "0")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "--random-seeds" in done.stderr

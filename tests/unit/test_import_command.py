"""
Unit tests of C{pygmy import}'s command line and summary
(L{pygmy.cli.importer}, L{pygmy.cli.import_report}): arguments, the
secret, usage errors as one line, the summary's text and JSON, and the
refused rows kept on disk beyond the memory's share.
"""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from pygmy import cli
from pygmy.cli import importer
from pygmy.cli.import_report import Refusal, Refusals, Summary


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_text_summary():
    summary = Summary("books.csv", "csv", rows=3, added=2)
    assert summary.text() == "books.csv: 3 rows: 2 added, 0 refused"
    summary.refused.append(Refusal(9, "Bad title or topic.", 400, "bad_request"))
    summary.refused.append(Refusal(4, "bad CSV: ',' expected after '\"'."))
    assert summary.text().splitlines()[1:] == [
        "  line 4: bad CSV: ',' expected after '\"'.",
        "  line 9: 400 bad_request: Bad title or topic.",
    ]


def test_json_summary_of_a_stop():
    summary = Summary("b.jsonl", "jsonl", rows=3, added=1, last_line=3)
    summary.unconfirmed.append(Refusal(3, "No primary. (after 9 tries)", 503, "unavailable"))
    summary.unconfirmed.append(Refusal(2, "no answer (timed out) (after 9 tries)", None, "unreachable"))
    summary.stop = summary.unconfirmed[0]
    document = json.loads(summary.dumps())
    assert document["refused"] == []
    assert [r["line"] for r in document["unconfirmed"]] == [2, 3]
    assert document["stopped"] == {
        "status": 503,
        "code": "unavailable",
        "message": "No primary. (after 9 tries)",
        "after_line": 3,
    }


def test_refusals_beyond_the_memory_keep_go_to_sorted_runs_on_disk():
    refusals = Refusals(keep=3)
    lines = [9, 2, 7, 1, 8, 3, 10, 5, 4, 6, 11]
    for line in lines:
        refusals.append(Refusal(line, f"bad {line} ✗"))
    assert len(refusals) == 11 and len(refusals._buffer) == 2 and len(refusals._runs) == 3
    assert [r.line for r in refusals] == sorted(lines)
    assert [r.message for r in refusals][:2] == ["bad 1 ✗", "bad 2 ✗"]  # read twice: the same
    runs = refusals._runs
    refusals.close()
    assert all(run.closed for run in runs)


# The command


def arguments(*argv):
    return cli.build_parser().parse_args(["import", *argv])


def test_the_arguments_and_their_defaults():
    args = arguments("books.csv")
    assert (args.file, args.format, args.concurrency, args.retries, args.timeout, args.json) == (
        "books.csv",
        None,
        importer.DEFAULT_CONCURRENCY,
        importer.DEFAULT_RETRIES,
        importer.DEFAULT_TIMEOUT,
        False,
    )
    args = arguments("b.txt", "--format", "jsonl", "-n", "3", "--retries", "0", "--secret", "x", "--json")
    assert (args.format, args.concurrency, args.retries, args.secret, args.json) == ("jsonl", 3, 0, "x", True)


@pytest.mark.parametrize("bad", [["--concurrency", "0"], ["--retries", "-1"], ["--timeout", "0"], ["--format", "xml"]])
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as caught:
        arguments("books.csv", *bad)
    assert caught.value.code == 2


def test_the_secret_from_the_option_the_environment_or_the_config(tmp_path, monkeypatch):
    from tests.fakes import config_text

    config = write(tmp_path, "config.ini", config_text(secret="from-file"))
    monkeypatch.chdir(tmp_path)
    assert importer.resolve_secret("given", None, {"PYGMY_SECRET": "env"}) == "given"
    assert importer.resolve_secret(None, str(config), {"PYGMY_SECRET": "env"}) == "env"
    assert importer.resolve_secret(None, str(config), {}) == "from-file"
    assert importer.resolve_secret(None, None, {}) == "from-file"  # ./config.ini
    (tmp_path / "config.ini").unlink()
    assert importer.resolve_secret(None, None, {}) == "change-me"
    with pytest.raises(importer.UsageError):
        importer.resolve_secret(None, str(config), {})


@pytest.mark.parametrize(
    "name, text, says",
    [
        ("missing.csv", None, "missing.csv: cannot read: No such file or directory"),
        ("books.xls", "x", "cannot tell the format"),
        ("books.csv", "name,topic,cost,stock\n", "the header must name the columns"),
    ],
)
def test_usage_errors_are_one_line_and_status_2(tmp_path, monkeypatch, name, text, says):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        write(tmp_path, name, text)
    err = io.StringIO()
    args = SimpleNamespace(
        file=name,
        format=None,
        url="http://127.0.0.1:1",
        config=None,
        secret="x",
        concurrency=1,
        retries=0,
        timeout=1.0,
        json=False,
    )
    assert importer.main(args, io.StringIO(), err) == 2
    assert err.getvalue().count("\n") == 1 and says in err.getvalue() and err.getvalue().startswith("pygmy import: ")


@pytest.mark.parametrize("as_json", [False, True])
def test_the_summary_is_written_whole_and_its_files_deleted(as_json):
    summary = Summary("b.csv", "csv", rows=5, added=1)
    summary.refused = Refusals(keep=2)
    for line in (5, 3, 2, 4):
        summary.refused.append(Refusal(line, f"bad {line}"))
    runs = list(summary.refused._runs)
    out = io.StringIO()
    importer.write_summary(summary, as_json, out)
    if as_json:
        assert [r["line"] for r in json.loads(out.getvalue())["refused"]] == [2, 3, 4, 5]
    else:
        assert out.getvalue() == "b.csv: 5 rows: 1 added, 4 refused\n" + "".join(
            f"  line {n}: bad {n}\n" for n in (2, 3, 4, 5)
        )
    assert runs and all(run.closed for run in runs)

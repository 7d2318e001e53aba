"""
The client commands and C{pygmy load} against a real cluster: five
daemonised twistd processes started by C{pygmy up} on free ports (pid
files in C{data_dir}, which C{pygmy load --crash} needs), each command
run as its own process, as a user would.

Every process is stopped by its pid, even if a test fails: C{pygmy down},
then SIGKILL for any pid still alive that a pid file ever named (the
primary that C{--crash} restarts gets a new one).
"""

from __future__ import annotations

import json

import pytest

from pygmy.testing import UpCluster, free_ports, get_json, run_pygmy, write_config

pytestmark = pytest.mark.integration
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module, started with C{pygmy up}; always stopped."""
    started = UpCluster(write_config(tmp_path_factory.mktemp("client")))
    try:
        done = run_pygmy("up", "--config", str(started.path))
        started.note()
        assert done.returncode == 0, done.stdout + done.stderr
        yield started
    finally:
        started.stop_everything()


def lines(text: str) -> list[str]:
    return text.rstrip("\n").splitlines()


# The everyday commands


def test_search_table_and_json(cluster):
    done = cluster.client("search", "distributed", "systems")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == [
        "id  title",
        "--  --------------------------------------------------",
        " 1  How to get a good grade in 677 in 20 minutes a day",
        " 2  RPCs for Dummies",
        '2 books on "distributed systems"',
    ]
    done = cluster.client("search", "Graduate School", "--json")
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout) == {
        "topic": "Graduate School",
        "items": [
            {"id": 3, "title": "Xen and the Art of Surviving Graduate School"},
            {"id": 4, "title": "Cooking for the Impatient Graduate Student"},
        ],
    }
    done = cluster.client("search", "knitting")
    assert (done.returncode, done.stdout) == (0, 'no books on "knitting"\n')


def test_lookup_and_list(cluster):
    done = cluster.client("lookup", "6")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[:4] == [
        "id     6",
        "title  Why theory classes are so hard",
        "topic  theory",
        "cost   9.99",
    ]
    assert lines(done.stdout)[4].startswith("stock  ")
    assert json.loads(cluster.client("lookup", "6", "--json").stdout) == get_json(f"{cluster.url}/lookup/6")[1]
    done = cluster.client("list")
    assert done.returncode == 0
    table = lines(done.stdout)
    assert table[0].split() == ["id", "title", "topic", "cost", "stock"] and len(table) == 2 + 7
    assert table[2].startswith(" 1  How to get a good grade") and table[-1].startswith(
        " 7  Spring in the Pioneer Valley"
    )
    assert [item["id"] for item in json.loads(cluster.client("list", "--json").stdout)["items"]] == list(range(1, 8))


def test_list_follows_the_pages(cluster):
    """Three pages of three, three and one book, joined in one table."""
    done = cluster.client("list", "--limit", "3")
    assert done.returncode == 0, done.stderr
    assert [int(line.split()[0]) for line in lines(done.stdout)[2:]] == list(range(1, 8))
    assert lines(done.stdout) == lines(cluster.client("list").stdout)[: len(lines(done.stdout))]
    body = json.loads(cluster.client("list", "--limit", "3", "--json").stdout)
    assert body == {"items": get_json(f"{cluster.url}/list")[1]["items"], "next": None}
    assert get_json(f"{cluster.url}/list?after=3&limit=3")[1]["next"] == 6


def test_buy_with_a_key_then_order(cluster):
    first = cluster.client("buy", "5", "--key", "test-client-1", "--json")
    assert first.returncode == 0, first.stderr
    placed = json.loads(first.stdout)["order"]
    again = cluster.client("buy", "5", "--key", "test-client-1")
    assert again.returncode == 0
    assert lines(again.stdout) == [f"order    {placed['id']}", "book     5", f"created  {placed['created']}"]
    done = cluster.client("order", str(placed["id"]))
    assert done.returncode == 0 and lines(done.stdout)[0] == f"order    {placed['id']}"
    assert json.loads(cluster.client("order", str(placed["id"]), "--json").stdout) == {"order": placed}


def test_update_with_the_secret_of_the_config_then_lookup(cluster):
    before = json.loads(cluster.client("lookup", "4", "--json").stdout)
    done = cluster.client("update", "4", "--cost", "13.25", "--stock-delta", "2", "--key", "cli-update-1")
    assert done.returncode == 0, done.stderr
    assert "cost   13.25" in done.stdout and f"stock  {before['stock'] + 2}" in done.stdout
    again = cluster.client("update", "4", "--cost", "13.25", "--stock-delta", "2", "--key", "cli-update-1")
    assert again.returncode == 0 and again.stdout == done.stdout  # the same key: applied once
    after = json.loads(cluster.client("lookup", "4", "--json").stdout)
    assert (after["cost"], after["stock"]) == ("13.25", before["stock"] + 2)
    refused = cluster.client("update", "4", "--cost", "1.00", "--secret", "wrong")
    assert refused.returncode == 1 and refused.stderr.startswith("pygmy update: 401 unauthorized")


def test_status_table_and_json(cluster):
    done = cluster.client("status")
    assert done.returncode == 0, done.stderr
    text = lines(done.stdout)
    assert text[0].split() == ["service", "view", "primary", "backups", "in", "sync"]
    assert text[2].split()[0] == "catalog" and text[3].split()[0] == "order"
    replicas = {line.split()[0]: line.split()[1:] for line in text[7:11]}
    assert set(replicas) == {"catalog:A", "catalog:B", "order:A", "order:B"}
    assert all(row[0] == "yes" and row[1] in ("primary", "backup") for row in replicas.values())
    assert text[-3].startswith("cache ") and text[-2] == "balancer   round_robin"
    assert text[-1] == "front end  frontend: manages the views (local)"
    body = json.loads(cluster.client("status", "--json").stdout)
    assert set(body) >= {"services", "cache", "balancer"}


def test_server_errors_exit_1_with_the_message(cluster):
    for args, line in [
        (("lookup", "99"), "pygmy lookup: 404 not_found: No book with id 99."),
        (("lookup", "abc"), "pygmy lookup: 400 bad_request: "),
        (("buy", "99"), "pygmy buy: 404 not_found: "),
        (("order", "999999"), "pygmy order: 404 not_found: "),
    ]:
        done = cluster.client(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert done.stdout == "" and len(lines(done.stderr)) == 1 and done.stderr.startswith(line), done.stderr
    done = cluster.client("lookup", "99", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["error"]["code"] == "not_found"


def test_unreachable_front_end_is_one_line(cluster):
    (port,) = free_ports(1)
    for args in (("status",), ("buy", "1"), ("load", "--duration", "1")):
        done = run_pygmy(*args, "--url", f"http://127.0.0.1:{port}")
        assert done.returncode == 3, done.stderr
        assert lines(done.stderr) == [
            f"pygmy {args[0]}: cannot reach the front end at http://127.0.0.1:{port} (connection refused)"
        ]
        assert "Traceback" not in done.stdout + done.stderr


def test_url_comes_from_config_ini_in_the_current_directory(cluster, tmp_path):
    (tmp_path / "config.ini").write_text(cluster.path.read_text())
    done = run_pygmy("lookup", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[0] == "id     1"
    done = run_pygmy("lookup", "1", "--config", str(tmp_path / "nope.ini"), cwd=tmp_path)
    assert done.returncode == 2 and "nope.ini: cannot read" in done.stderr


# pygmy load


def test_load_table_json_and_plot(cluster, tmp_path):
    summary, png = tmp_path / "run.json", tmp_path / "run.png"
    done = cluster.client(
        "load",
        "--clients",
        "4",
        "--duration",
        "2",
        "--mix",
        "search=1,lookup=2,buy=1,list=1",
        "--seed",
        "3",
        "--json",
        str(summary),
        "--plot",
        str(png),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = lines(done.stdout)
    assert text[0].startswith(f"pygmy load: {cluster.url}, 4 clients, ")
    assert "mix search=1 lookup=2 buy=1 list=1, cache used, seed 3" in text[0]
    assert text[1].split() == ["operation", "requests", "ok", "errors", "req/s", "mean", "p50", "p90", "p99", "max"]
    rows = {
        line.split()[0]: line.split()[1:]
        for line in text[3:]
        if line.split() and line.split()[0] in ("buy", "list", "lookup", "search", "all")
    }
    assert set(rows) == {"buy", "list", "lookup", "search", "all"}
    for name, row in rows.items():
        assert int(row[0]) > 0 and row[0] == row[1] and row[2] == "0", (name, row)
        mean, p50, p90, p99, top = (float(x) for x in row[4:9])
        assert p50 <= p90 <= p99 <= top and mean <= top
    assert text[-1] == f"plot: {png}"
    found = json.loads(summary.read_text())
    assert set(found["operations"]) == {"buy", "list", "lookup", "search"}
    assert found["all"]["count"] == sum(op["count"] for op in found["operations"].values()) == int(rows["all"][0])
    assert found["cache"] is True and found["clients"] == 4 and 2.0 <= found["seconds"] < 10
    assert png.read_bytes()[:8] == PNG_SIGNATURE and 10_000 < png.stat().st_size < 200_000


def cache_hits(cluster) -> int:
    return get_json(f"{cluster.url}/status")[1]["cache"]["hits"]


def test_load_with_and_without_the_cache(cluster):
    before = cache_hits(cluster)
    done = cluster.client(
        "load", "--clients", "3", "--count", "60", "--mix", "lookup=1,search=1", "--no-cache", "--json"
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)  # --json alone: the summary on stdout, no table
    assert found["cache"] is False and found["all"]["count"] == found["all"]["ok"] == 60
    assert cache_hits(cluster) == before  # every read went past the cache
    done = cluster.client("load", "--clients", "3", "--count", "60", "--mix", "lookup=1,search=1", "--json")
    assert json.loads(done.stdout)["cache"] is True
    assert cache_hits(cluster) > before + 30  # 7 books and 5 topics: mostly hits


def test_load_crash_catalog_primary(cluster, tmp_path):
    png = tmp_path / "crash.png"
    primary = get_json(f"{cluster.url}/status")[1]["services"]["catalog"]["primary"]
    try:
        done = cluster.client(
            "load",
            "--clients",
            "4",
            "--duration",
            "6",
            "--crash",
            "catalog",
            "--crash-at",
            "1",
            "--down",
            "1",
            "--json",
            "--plot",
            str(png),
            timeout=90,
        )
    finally:
        cluster.note()  # the restarted primary's pid
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(done.stdout)
    crash = found["crash"]
    assert crash["error"] is None, crash
    events = [e["what"] for e in crash["events"]]
    assert len(events) == 4, events
    assert events[0].startswith(f"kill -9 catalog:{primary} (primary, pid ")
    assert events[1].startswith("catalog: new primary ") and events[1] != f"catalog: new primary {primary}"
    assert events[2] == f"restart catalog:{primary}"
    assert events[3].startswith(f"catalog:{primary} back in the view")
    times = [e["at"] for e in crash["events"]]
    assert times == sorted(times) and 1.0 <= times[0] < 2.0
    assert sum(row["count"] for row in crash["timeline"]) == found["all"]["count"]
    assert "kill -9 catalog:" in done.stderr  # the events as they happen
    assert png.read_bytes()[:8] == PNG_SIGNATURE and 20_000 < png.stat().st_size < 200_000
    view = get_json(f"{cluster.url}/status")[1]["services"]["catalog"]
    assert {view["primary"], *view["backups"]} == {"A", "B"}

"""What a newcomer reading only README.md and `--help` tripped on (scenario new3)."""

import pytest

from host_tools import cli as pingjia_cli


@pytest.mark.parametrize("command, words", [
    # `pingjia serve --help` showed `--port PORT` with no word of the 8080 it listens on
    ("serve", ["default 8080"]),
    # `pingjia export` writes CSV with no --format; its help listed five formats, no default
    ("export", ["csv (the default"]),
    # `--start 2026-11-23T09:00:00` started the device at 17:00 in the hall: nothing said so
    ("sim", ["without its offset is UTC"]),
    # `pingjia sim --collector URL` without the server's --db registered the device in
    # ./pingjia.db, and the server answered 403 unknown_device: --help gave no hint
    ("sim", ["--collector URL", "give --db the database that server uses"]),
])
def test_help_says_what_a_newcomer_tripped_on(cli, command, words):
    p = cli(command, "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for w in words:
        assert w in text, (w, text)


def test_every_read_only_command_is_a_command():
    assert pingjia_cli.READS <= set(pingjia_cli.COMMANDS)


@pytest.mark.parametrize("command", [["report"], ["export", "--format", "csv"],
                                     ["device", "list"], ["user", "list"], ["case", "list"]],
                         ids=lambda c: " ".join(c[:2]))
def test_a_read_on_a_database_that_is_not_there_is_refused_and_makes_none(tmp_path, cli,
                                                                           command):
    # `pingjia report` in the wrong folder (or with a mistyped --db) made an empty
    # pingjia.db there and answered "no ratings", as if the morning had none
    p = cli(*command, cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pingjia: cannot open the database")
    assert "pingjia.db" in lines[0] and "no such file" in lines[0]
    assert not list(tmp_path.iterdir())


def test_a_read_on_a_database_that_is_there_still_answers(tmp_path, cli):
    assert cli("device", "add", "b01-1", "--window", "B01", "--db", "hall.db").returncode == 0
    p = cli("report", "--db", "hall.db")
    assert p.returncode == 0, p.stderr
    assert "no ratings" in p.stdout


def test_the_readme_morning_with_a_sync_reaches_report_and_export(tmp_path, cli, roster_csv,
                                                                   monday_9):
    # README: `sed '/^quit/i sync' examples/morning.txt | make sim`, then export and report
    morning = (roster_csv.parent / "morning.txt").read_text(encoding="utf-8")
    script = morning.replace("\nquit\n", "\nsync\nquit\n")
    assert script != morning
    p = cli("sim", "--script", "--window", "B01", "--roster", str(roster_csv), "--start",
            monday_9, input=script)
    assert p.returncode == 0, p.stderr
    assert "ok: sent 20 records" in p.stdout
    rows = cli("export", "--format", "csv").stdout.lstrip("\ufeff").splitlines()
    assert rows[0] == "time,window,device,staff_no,staff_name,ticket,level,level_name,reason"
    assert [r.split(",")[3] + ":" + r.split(",")[6] for r in rows[1:]] == [
        "SB0101:2", "SB0101:4", "SB0102:1"]
    assert rows[2].endswith(",4,不满意,等候时间长")
    table = cli("report").stdout.splitlines()
    b01 = next(line.split() for line in table if line.startswith("B01"))
    # 3 ratings of 4 invitations (0003 timed out): 满意率 2/3, 差评率 1/3, index (100+66.7+0)/3
    assert b01[1:10] == ["3", "1", "1", "0", "1", "66.7%", "33.3%", "75.0%", "55.6"]


@pytest.mark.parametrize("command", [["report"], ["device", "add", "b01-1", "--window", "B01"]],
                         ids=lambda c: " ".join(c[:2]))
def test_a_directory_given_as_db_keeps_its_mode(tmp_path, cli, command):
    # `pingjia report --db /tmp` tightened /tmp to 0600 before SQLite refused it: every
    # other user (PostgreSQL's server among them) lost /tmp
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    p = cli(*command, "--db", str(shared))
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "cannot open the database" in p.stderr
    assert shared.stat().st_mode & 0o7777 == 0o1777


def test_min_ratings_without_a_period_is_refused(tmp_path, cli):
    # --help says "with --period"; without one it was taken and ignored (--pdf was refused)
    assert cli("device", "add", "b01-1", "--window", "B01", "--db", "hall.db").returncode == 0
    p = cli("report", "--db", "hall.db", "--min-ratings", "3")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("pingjia: --min-ratings needs --period")
    # with a period it still ranks, and its default is still 10
    p = cli("report", "--db", "hall.db", "--period", "2026-11", "--json")
    assert p.returncode == 0, p.stderr
    assert '"min_ratings": 10' in p.stdout
    p = cli("report", "--db", "hall.db", "--period", "2026-11", "--min-ratings", "3", "--json")
    assert p.returncode == 0, p.stderr
    assert '"min_ratings": 3' in p.stdout

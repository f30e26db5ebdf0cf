"""The schedules file: what it accepts, and how it says what is wrong (no store)."""

import textwrap

import pytest
from click.testing import CliRunner

from kodosumi_timer.cli import cli
from kodosumi_timer.system import SystemConfigError, SystemEntry, load_file, merge

QUICK = "/-/127.0.0.1/8001/quick/-/"
SLOW = "/-/127.0.0.1/8001/slow/-/"


def write(tmp_path, text: str):
    path = tmp_path / "schedules.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def rejected(tmp_path, text: str) -> SystemConfigError:
    with pytest.raises(SystemConfigError) as info:
        load_file(write(tmp_path, text))
    return info.value


def test_entries_with_defaults(tmp_path):
    entries = load_file(write(tmp_path, f"""
        - flow: {QUICK}
          cron: "0 9 * * MON-FRI"
          timezone: europe/berlin
          inputs: {{message: morning, day: 2027-01-04, shout: "on"}}
          title: Morning echo
        - flow: http://localhost:3370{SLOW}
          cron: "@hourly"
          enabled: false
          catchup: skip
          overlap: allow
    """))
    first, second = entries
    assert first.flow == QUICK and first.cron == "0 9 * * MON-FRI"
    assert first.timezone == "Europe/Berlin"  # canonical spelling
    # YAML reads the date as a date; it is stored as the text a form would send
    assert first.inputs == {"message": "morning", "day": "2027-01-04", "shout": "on"}
    assert first.enabled is True and first.catchup is None and first.overlap is None
    assert second.flow == SLOW  # a full panel URL is cut to its path
    assert (second.enabled, second.catchup, second.overlap) == (False, "skip", "allow")
    assert second.timezone == "UTC" and second.inputs == {}


def test_missing_or_empty_file_has_no_entries(tmp_path):
    assert load_file(tmp_path / "nothing.yaml") == []
    assert load_file(write(tmp_path, "")) == []
    assert load_file(write(tmp_path, "# only a comment\n")) == []
    with pytest.raises(SystemConfigError, match="no such file"):
        load_file(tmp_path / "nothing.yaml", missing_ok=False)


def test_bad_cron_names_entry_flow_and_field(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: "0 9 * * *"
        - flow: {SLOW}
          cron: "61 * * * *"
    """)
    assert (err.index, err.flow, err.field) == (2, SLOW, "cron")
    assert f"entry 2 (flow {SLOW}): field 'cron': minute 61 is out of range" in str(err)
    assert str(err).startswith(str(tmp_path / "schedules.yaml"))


def test_cron_that_never_fires_is_rejected(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: "0 0 30 2 *"
    """)
    assert err.field == "cron" and "never occurs in February" in str(err)


def test_unknown_key_is_rejected(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: "* * * * *"
          colour: blue
    """)
    assert (err.index, err.field) == (1, "colour")
    assert "unknown key (allowed: " in str(err) and "cron" in str(err)


def test_unknown_zone_and_missing_cron(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: "* * * * *"
          timezone: Mars/Olympus
        - flow: {SLOW}
    """)
    messages = [str(p) for p in err.problems]
    assert messages[0] == (f"entry 1 (flow {QUICK}): field 'timezone': unknown timezone "
                           "'Mars/Olympus'; use an IANA name such as Europe/Berlin")
    assert messages[1] == f"entry 2 (flow {SLOW}): field 'cron': is required"


def test_duplicate_flow_is_rejected(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: "* * * * *"
        - flow: {QUICK.rstrip('/')}
          cron: "0 * * * *"
    """)
    assert (err.index, err.field) == (2, "flow")
    assert "duplicate: entry 1 already schedules this flow" in str(err)


def test_bad_yaml_names_the_line(tmp_path):
    err = rejected(tmp_path, f"""
        - flow: {QUICK}
          cron: @daily
    """)
    assert "line 3" in str(err) and "not valid YAML" in str(err)
    assert "quote cron expressions" in str(err)


@pytest.mark.parametrize("text, message", [
    ("flow: x\ncron: '* * * * *'\n", "expected a list of entries"),
    ("- just a string\n", "entry 1: expected a mapping of keys, got str"),
    (f"- flow: {QUICK}\n  cron: '* * * * *'\n  inputs: [1, 2]\n", "field 'inputs'"),
    ("- flow: quick\n  cron: '* * * * *'\n", "is not a flow's panel URL"),
    (f"- flow: {QUICK}\n  cron: '* * * * *'\n  catchup: always\n", "field 'catchup'"),
])
def test_other_shapes_are_rejected(tmp_path, text, message):
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    with pytest.raises(SystemConfigError) as info:
        load_file(path)
    assert message in str(info.value)


def test_file_wins_over_the_flows_own_declaration():
    flow_default = SystemEntry(flow=QUICK, cron="* * * * *").declared_by("flow")
    other = SystemEntry(flow=SLOW, cron="* * * * *").declared_by("flow")
    from_file = SystemEntry(flow=QUICK, cron="0 9 * * *")
    merged = {e.flow: e for e in merge([from_file], [flow_default, other],
                                       names={QUICK: "Quick demo agent"})}
    assert merged[QUICK].cron == "0 9 * * *" and merged[QUICK].source == "file"
    assert merged[QUICK].expose_name == "Quick demo agent"
    assert merged[SLOW].source == "flow"


# ---- koco-timer check-config ------------------------------------------------------


def test_check_config_ok(tmp_path):
    path = write(tmp_path, f"""
        - flow: {QUICK}
          cron: "30 8 * * MON"
          timezone: Europe/Berlin
    """)
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK, 1 system schedule(s)" in result.output
    assert QUICK in result.output and "next " in result.output


def test_check_config_rejects_with_exit_code_1(tmp_path):
    path = write(tmp_path, f"""
        - flow: {QUICK}
          cron: "* * *"
    """)
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    assert f"entry 1 (flow {QUICK}): field 'cron': expected 5 fields" in result.output
    assert "Traceback" not in result.output


def test_check_config_default_file_from_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("KODO_TIMER_SCHEDULES", str(tmp_path / "absent.yaml"))
    result = CliRunner().invoke(cli, ["check-config"])
    assert result.exit_code == 1 and "absent.yaml: no such file" in result.output

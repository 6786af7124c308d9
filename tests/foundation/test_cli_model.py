"""`trapalert model download` explains itself when the file cannot be fetched (no internet here)."""

from click.testing import CliRunner

from functions.cli import cli


def test_unknown_model_is_named():
    r = CliRunner().invoke(cli, ["model", "download", "megadetector-v99"])
    assert r.exit_code != 0 and "unknown model 'megadetector-v99'" in r.output


def test_unreachable_server_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(cli, ["model", "download", "megadetector-v4.1", "--dir", str(tmp_path),
                                 "--url", "http://127.0.0.1:9/md_v4.1.0.pb"])
    assert r.exit_code != 0
    assert "Error:" in r.output and "127.0.0.1:9" in r.output
    assert not list(tmp_path.glob("*.pb"))

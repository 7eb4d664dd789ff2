"""Tables for people: what is in a cell is shown as it is, and piped output keeps lines whole."""

from __future__ import annotations

from kservectl.cli import console

URL = "http://wine-predictor.models.kservectl-a-long-cluster-name.example.com:52057/v2/models/wine/infer"


def test_brackets_in_headers_and_cells_are_text_not_markup(capsys):
    console.table(None, ["replicas [min-max]", "state"], [["1 [1-3]", "[bold]ready[/bold]"]])
    out = capsys.readouterr().out
    assert "replicas [min-max]" in out
    assert "1 [1-3]" in out and "[bold]ready[/bold]" in out


def test_piped_output_keeps_a_long_url_on_one_line(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    console.table("services", ["name", "url"], [["wine", URL]])
    assert URL in capsys.readouterr().out  # not folded at 80 columns


def test_columns_still_sets_the_width_when_given(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    console.table(None, ["name", "url"], [["wine", URL]])
    out = capsys.readouterr().out
    assert URL not in out and max(len(line) for line in out.splitlines()) <= 60

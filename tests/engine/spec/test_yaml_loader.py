"""engine.yamlfile: the one YAML loader refuses hostile or broken files quickly and clearly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import ConfigError
from engine.mapping.check import check_mapping_file
from engine.mapping.core import load_mapping
from engine.mapping.fixtures import run_fixtures
from engine.mapping.source import load_yaml_with_lines
from engine.yamlfile import YamlFileError, load_yaml

# "billion laughs": 9 levels of 9 aliases, ~387 million strings if expanded
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
SELF_REFERENCE = "a: &x [*x]\n"
NOT_UTF8 = "name: caf\u00e9\n".encode("latin-1")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def validate(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", "--project", str(project)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.yaml", BOMB)
    started = time.monotonic()
    with pytest.raises(YamlFileError) as caught:
        load_yaml(path)
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == f"{path}:2:8: YAML aliases (*a) are not supported in ml-connector files"
    assert isinstance(caught.value, ConfigError)


def test_a_self_reference_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "self.yaml", SELF_REFERENCE)
    with pytest.raises(ConfigError, match=r"self\.yaml:1:8: YAML aliases \(\*x\) are not supported"):
        load_yaml(path)


def test_merge_keys_need_aliases_and_are_refused_too(tmp_path: Path) -> None:
    path = write(tmp_path / "merge.yaml", "a:\n  <<: {b: 1}\n")
    with pytest.raises(ConfigError, match=r"merge\.yaml:2:3: YAML merge keys \(<<\) are not supported"):
        load_yaml(path)


def test_a_file_that_is_not_utf8_names_the_file_and_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.yaml", NOT_UTF8)
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert str(caught.value).startswith(f"{path}: not UTF-8 text (byte 0xe9 at offset 9)")


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.yaml", b"\xef\xbb\xbfname: caf\xc3\xa9\n")
    assert load_yaml(path).data == {"name": "caf\u00e9"}


def test_syntax_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "a: 1\nb: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3:1: invalid YAML: expected ',' or ']'"):
        load_yaml(path)


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.yaml", "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested more than 100 levels deep"):
        load_yaml(path)


def test_lines_and_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "doc.yaml", "a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\na: 3\n")
    doc = load_yaml(path)
    assert doc.data == {"a": 3}
    assert doc.key_lines[("a",)] == 6 and doc.lines[("a", "c", 1)] == 5
    assert doc.duplicate_messages() == [f"{path}:6: a: duplicate key (the later value would silently win)"]


def test_mapping_loader_reports_duplicate_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "mappings" / "m.yaml", "target: PurchaseOrders\nfields:\n  A: 1\n  A: 2\n")
    with pytest.raises(ConfigError, match=r"m\.yaml:4: fields\.A: duplicate key"):
        load_yaml_with_lines(path)


def test_mapping_loader_keeps_its_shape(tmp_path: Path) -> None:
    path = write(tmp_path / "mappings" / "m.yaml", "target: X\nfields:\n  A:\n    - 1\n")
    data, lines = load_yaml_with_lines(path)
    assert data == {"target": "X", "fields": {"A": [1]}}
    assert lines == {(): 1, ("target",): 1, ("fields",): 2, ("fields", "A"): 3, ("fields", "A", 0): 4}


@pytest.mark.parametrize("content", [BOMB, SELF_REFERENCE, NOT_UTF8])
def test_mapping_files_refuse_hostile_yaml(tmp_path: Path, content: str | bytes) -> None:
    path = write(tmp_path / "mappings" / "m.yaml", content)
    with pytest.raises(ConfigError):
        load_mapping(path)
    (problem,) = check_mapping_file(path)
    assert "not supported" in problem.message or "not UTF-8" in problem.message


def test_mapping_fixture_with_an_alias_fails_that_case_only(tmp_path: Path) -> None:
    write(tmp_path / "mappings" / "m.yaml", "target: PurchaseOrders\nfields:\n  DocType: \"'dDocument_Service'\"\n")
    write(tmp_path / "mappings" / "fixtures" / "m" / "bomb.yaml", BOMB)
    (result,) = run_fixtures(tmp_path)
    assert not result.passed
    assert "YAML aliases (*a) are not supported" in result.messages[0]


@pytest.mark.parametrize(("content", "expected"), [
    (BOMB, "pipelines/suppliers.yaml:2: YAML aliases (*a) are not supported in ml-connector files (column 8)"),
    (SELF_REFERENCE, "pipelines/suppliers.yaml:1: YAML aliases (*x) are not supported in ml-connector files"),
    (NOT_UTF8, "pipelines/suppliers.yaml: not UTF-8 text (byte 0xe9 at offset 9)"),
])
def test_validate_reports_hostile_pipeline_files(project: Path, capsys: pytest.CaptureFixture[str],
                                                 content: str | bytes, expected: str) -> None:
    write(project / "pipelines" / "suppliers.yaml", content)
    started = time.monotonic()
    code, output = validate(project, capsys)
    assert time.monotonic() - started < 5
    assert code == 1
    assert expected in output
    assert "Traceback" not in output


def test_validate_reports_duplicate_keys_in_the_project_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "ml-connector.yaml"
    text = path.read_text()
    first = next(line for line in text.splitlines() if line.startswith("state:"))
    write(path, text + first + "\n")
    code, output = validate(project, capsys)
    assert code == 1
    assert f"ml-connector.yaml:{len(text.splitlines()) + 1}: state: duplicate key (the later value would silently win)" in output
    assert "Traceback" not in output


def test_validate_reports_an_alias_in_the_project_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / "ml-connector.yaml"
    write(path, path.read_text() + "extra: *nothing\n")
    code, output = validate(project, capsys)
    assert code == 1
    assert "ml-connector.yaml:" in output and "YAML aliases (*nothing) are not supported" in output
    assert "Traceback" not in output

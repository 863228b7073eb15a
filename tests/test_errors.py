"""The reading primitives of sbmoe.io.errors: every message starts with the file (and line) and says
what was expected."""

import inspect
import json
import warnings

import pytest

from sbmoe.io.errors import (
    DataFormatError,
    InputError,
    InputWarning,
    decode_line,
    decode_text,
    finite_number,
    first_line,
    json_problem,
    read_json,
    read_yaml,
    text_lines,
    warn_input,
)


def decoding_error(text: str) -> json.JSONDecodeError:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    return caught.value


# ---- errors and warnings ----


def test_data_format_error_names_the_file_and_the_line():
    error = DataFormatError("runs/a.trec", 7, "score 'x' is not a number")
    assert str(error) == "runs/a.trec:7: score 'x' is not a number"
    assert (error.path, error.line) == ("runs/a.trec", 7)
    assert isinstance(error, InputError) and isinstance(error, ValueError)
    whole_file = DataFormatError("qrels/test.tsv", None, "empty file")
    assert str(whole_file) == "qrels/test.tsv: empty file" and whole_file.line is None


def caller_of_warn_input(path):
    warn_input(path, "2 judged documents are not in the corpus")


def test_warn_input_names_the_path_and_points_past_the_reader():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        caller_of_warn_input("data/qrels.tsv")
    assert len(caught) == 1
    assert caught[0].category is InputWarning
    assert str(caught[0].message) == "data/qrels.tsv: 2 judged documents are not in the corpus"
    # stacklevel 3: the warning points at whoever called the reader (this test), not at the reader
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)


def test_first_line_keeps_the_first_sentence():
    assert first_line(ValueError("Bad token. Expected a name.\nDetails follow")) == "Bad token"
    # a dot inside a number, or one not followed by a capital, ends no sentence
    text = "needs version 2.1 or newer. see the docs"
    assert first_line(ValueError(text)) == text
    assert first_line(ValueError("")) == "ValueError"
    long = first_line(ValueError("x" * 500), limit=20)
    assert long == "x" * 17 + "..." and len(long) == 20


def test_json_problem_is_a_whole_phrase_with_the_column():
    # '{"a": "x' : the string opened at column 7 is never closed; json's message ends in "starting at"
    assert json_problem(decoding_error('{"a": "x')) == "Unterminated string starting at column 7"
    assert json_problem(decoding_error("[1,")) == "Expecting value at column 4"
    assert json_problem(decoding_error("[1] x")) == "Extra data at column 5"


# ---- lines and numbers ----


def test_decode_line_drops_a_byte_order_mark_on_the_first_line_only():
    assert decode_line("f.tsv", 1, "\ufeffq1\td1\n".encode()) == "q1\td1\n"
    assert decode_line("f.tsv", 2, "\ufeffq1".encode()) == "\ufeffq1"
    with pytest.raises(DataFormatError) as caught:
        decode_line("f.tsv", 4, b"q1\td\xe91\n")
    assert str(caught.value) == "f.tsv:4: not UTF-8 text (byte 0xe9 at column 5)"


def test_finite_number_names_the_line_the_field_and_the_expectation():
    assert finite_number("run.trec", 3, "-1.5e2", "score", "a decimal number") == -150.0
    for text in ("abc", "nan", "inf", "-Infinity", ""):
        with pytest.raises(DataFormatError) as caught:
            finite_number("run.trec", 3, text, "score", "a decimal number")
        assert str(caught.value) == f"run.trec:3: score {text!r} is not a number (a decimal number)"
        assert caught.value.line == 3


def test_text_lines_numbers_lines_and_strips_line_endings(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_bytes(b"\xef\xbb\xbfquery-id\tcorpus-id\r\nq1\td1\n\nq2\td2")
    assert list(text_lines(path, "qrels", "query-id, corpus-id, score")) == [
        (1, "query-id\tcorpus-id"),
        (2, "q1\td1"),
        (3, ""),
        (4, "q2\td2"),
    ]


def test_text_lines_names_a_bad_byte_and_a_missing_file(tmp_path):
    path = tmp_path / "run.trec"
    path.write_bytes(b"q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq1 Q0 \xffd3 3 0.5 t\n")
    lines = text_lines(path, "run", "TREC run lines")
    assert next(lines) == (1, "q1 Q0 d1 1 2.0 t")  # lines before the bad one are read
    assert next(lines) == (2, "q1 Q0 d2 2 1.0 t")
    with pytest.raises(DataFormatError, match=rf"^{path}:3: not UTF-8 text \(byte 0xff at column 7\)$"):
        next(lines)
    missing = tmp_path / "none.trec"
    with pytest.raises(DataFormatError) as caught:
        list(text_lines(missing, "run", "TREC run lines"))
    assert str(caught.value) == f"{missing}: missing run file (expected TREC run lines)"
    with pytest.raises(DataFormatError) as caught:
        list(text_lines(tmp_path, "run", "TREC run lines"))
    assert str(caught.value) == f"{tmp_path}: a folder, not a run file (expected TREC run lines)"


def test_decode_text_finds_the_line_and_column_of_a_bad_byte():
    raw = b"line one\nline two\nab\x80cd\n"
    with pytest.raises(DataFormatError) as caught:
        decode_text("x.json", raw, "a JSON object")
    assert str(caught.value) == "x.json:3: not UTF-8 text (byte 0x80 at column 3); expected a JSON object"
    assert decode_text("x.json", "\ufeff{}".encode(), "a JSON object") == "{}"


# ---- JSON and YAML files ----


def test_read_json_reads_and_names_file_and_line(tmp_path):
    path = tmp_path / "evaluation.json"
    path.write_text('{"metrics": {"ndcg@10": 0.5}}\n')
    assert read_json(path, "an evaluation") == {"metrics": {"ndcg@10": 0.5}}
    path.write_text('{\n  "metrics": {\n    "ndcg@10": 0.5,\n  }\n}\n')  # trailing comma, line 4 column 3
    with pytest.raises(DataFormatError) as caught:
        read_json(path, "an evaluation")
    assert str(caught.value).startswith(f"{path}:4: not valid JSON (")
    assert str(caught.value).endswith(" at column 3); expected an evaluation")
    assert caught.value.line == 4
    path.write_text("  \n\n")
    with pytest.raises(DataFormatError, match=rf"^{path}: empty file \(expected an evaluation\)$"):
        read_json(path, "an evaluation")
    path.write_bytes(b'{"a": "\xc3"}')
    with pytest.raises(DataFormatError, match=rf"^{path}:1: not UTF-8 text \(byte 0xc3 at column 8\)"):
        read_json(path, "an evaluation")
    with pytest.raises(DataFormatError, match=rf"^{tmp_path / 'none.json'}: missing file \(expected an evaluation\)$"):
        read_json(tmp_path / "none.json", "an evaluation")


def test_read_yaml_reads_and_names_file_line_and_column(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("seed: 3\nsystems: [finetune, adapter\nepochs: 2\n")
    # the flow sequence opened on line 2 meets "epochs:" on line 3; the ':' is its 7th character
    with pytest.raises(DataFormatError) as caught:
        read_yaml(path, "a configuration")
    message = str(caught.value)
    assert message.startswith(f"{path}:3: not valid YAML (")
    assert message.endswith("at column 7); expected a configuration")
    assert caught.value.line == 3
    path.write_text("seed: 3\nsystems: [finetune, adapter]\n")
    assert read_yaml(path, "a configuration") == {"seed": 3, "systems": ["finetune", "adapter"]}
    path.write_text('{"seed": 3}')  # JSON is YAML
    assert read_yaml(path, "a configuration") == {"seed": 3}
    path.write_bytes(b"seed: 3\nname: caf\xe9\n")
    with pytest.raises(DataFormatError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at column 10\)"):
        read_yaml(path, "a configuration")
    with pytest.raises(DataFormatError, match=r"missing file \(expected a configuration\)$"):
        read_yaml(tmp_path / "none.yaml", "a configuration")

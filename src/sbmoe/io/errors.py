"""Errors and warnings about the inputs the library reads: files and configuration keys.

Every reader raises an :class:`InputError` (or a subclass) whose message starts with where the
problem is (``path:line``, ``path`` or a configuration key) and says what was expected. The
command line prints it as ``error: <message>`` and exits non-zero; the pipeline's configuration
checks stop the run with it before any job starts. Inputs that are usable but suspicious give an
:class:`InputWarning` that names them in the same way. :func:`text_lines`, :func:`read_json`
and :func:`read_yaml` are the reading primitives of the line-based, JSON and YAML formats.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import warnings
from pathlib import Path


class InputError(ValueError):
    """An input the library cannot use; the message names the file (and line) or the key."""

    path: str | None = None
    line: int | None = None


class DataFormatError(InputError):
    """A file that does not follow its format; ``path`` and ``line`` (or None) say where."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class InputWarning(UserWarning):
    """An input that is used, but not as given (e.g. judgements of documents absent from the corpus)."""


def warn_input(path: str | os.PathLike, message: str) -> None:
    warnings.warn(f"{path}: {message}", InputWarning, stacklevel=3)


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first sentence of an exception's message (third-party messages run over many lines)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.split(r"(?<=[a-z0-9)'\]])\. (?=[A-Z])", text, maxsplit=1)[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_problem(error: json.JSONDecodeError) -> str:
    """A JSON error as a whole phrase with its column (``error.msg`` can end mid-sentence, "... at")."""
    return f"{error.msg}{'' if error.msg.endswith(' at') else ' at'} column {error.colno}"


def decode_line(path: Path, number: int, raw: bytes) -> str:
    """Line ``number`` of a UTF-8 text file; a byte sequence that is not UTF-8 names the line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            path, number, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1})"
        ) from None
    return text.removeprefix("\ufeff") if number == 1 else text


def finite_number(path: str | os.PathLike, number: int, text: str, name: str, expected: str) -> float:
    """The finite number ``text`` at line ``number`` of ``path``, else an error naming ``name``
    (``score``) and, in parentheses, what was ``expected``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataFormatError(path, number, f"{name} {text!r} is not a number ({expected})")
    return value


def text_lines(path: str | os.PathLike, kind: str, expected: str):
    """Yield ``(line number, line)`` of a UTF-8 text file, line endings removed; a missing file is
    an :class:`InputError` naming it, its ``kind`` and the ``expected`` format."""
    path = Path(path)
    if not path.is_file():
        found = "a folder, not a" if path.is_dir() else "missing"
        raise DataFormatError(path, None, f"{found} {kind} file (expected {expected})")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = decode_line(path, number, raw).rstrip("\r\n")
            if "\r" in line:  # CR-only line ends (classic Mac OS) would read the whole file as one line
                raise DataFormatError(
                    path,
                    number,
                    f"a carriage return (CR) inside the line at column "
                    f"{line.index(chr(13)) + 1}, as in a file with CR-only line ends: "
                    f"expected {expected} on lines ending in LF (or CRLF)",
                )
            yield number, line


def decode_text(path: Path, raw: bytes, kind: str) -> str:
    """The content of a UTF-8 text file; bytes that are not UTF-8 name the line and column."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataFormatError(
            path, line, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column {column}); expected {kind}"
        ) from None


def read_json(path: str | os.PathLike, kind: str):
    """The parsed content of a UTF-8 JSON file holding ``kind`` (e.g. "a model configuration in JSON");
    a missing, empty, truncated or otherwise invalid file is an :class:`InputError` naming the file
    and line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, f"missing file (expected {kind})")
    text = decode_text(path, path.read_bytes(), kind)
    if not text.strip():
        raise DataFormatError(path, None, f"empty file (expected {kind})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"not valid JSON ({json_problem(error)}); expected {kind}") from None


class DuplicateKeyError(Exception):
    """A key given twice in one YAML mapping (PyYAML keeps the last silently)."""

    def __init__(self, key, line: int, first: int):
        super().__init__(f"duplicate key {key!r} (first on line {first}): the second would silently replace the first")
        self.key, self.line, self.first = key, line, first


@functools.cache
def _unique_key_loader():
    """A safe YAML loader that refuses a key given twice in one mapping, at any nesting level."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges, then overrides on purpose
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        if key in seen:
                            raise DuplicateKeyError(key, key_node.start_mark.line + 1, seen[key])
                    except TypeError:  # an unhashable key: SafeLoader's own error names it
                        continue
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", UniqueKeyLoader.construct_yaml_map)
    return UniqueKeyLoader


def parse_yaml(path: str | os.PathLike, text: str, kind: str):
    """The parsed YAML ``text`` of ``path``; invalid YAML, or a key given twice in a mapping at any
    level, is a :class:`DataFormatError` naming the file, the line and (for a duplicate) the key."""
    import yaml

    try:
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as error:
        raise DataFormatError(path, error.line, f"{error} (in {kind})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or first_line(error)
        column = f" at column {mark.column + 1}" if mark is not None else ""
        raise DataFormatError(
            path, mark.line + 1 if mark is not None else None, f"not valid YAML ({problem}{column}); expected {kind}"
        ) from None


def read_yaml(path: str | os.PathLike, kind: str):
    """The parsed content of a UTF-8 YAML (or JSON) file holding ``kind``, as :func:`read_json`; a key
    given twice in one mapping (PyYAML would keep the last) is an error naming the line and the key."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, f"missing file (expected {kind})")
    return parse_yaml(path, decode_text(path, path.read_bytes(), kind), kind)

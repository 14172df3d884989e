"""Read TOML tables with checks that name the exact key that is wrong.

Shared by board files and patch files: `Table.take("rate", float, minimum=0)` returns
the value or raises the file's error class with "FILE: cv.1.rate: ...". Unknown keys
are reported by `Table.finish()`, so a typo never passes silently.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional, Sequence, Type

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the module's Python 3.8
    import tomli as tomllib

from neurorave.common.errors import UserError


def load_toml(path: str, error: Type[UserError]) -> Dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a TOML file") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 text: this is some other kind of file
        raise error(f"{path}: not a TOML text file (byte {exc.start} is not UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None


def _type_name(kind: Any) -> str:
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(kind, getattr(kind, "__name__", str(kind)))


class Table:
    """One TOML table being read; `where` is its dotted key ("" at the top)."""

    def __init__(self, data: Any, where: str, source: str, error: Type[UserError]) -> None:
        self.source = source
        self.error = error
        self.where = where
        if not isinstance(data, dict):
            raise self.fail(where or "file", "must be a table")
        self.data = data
        self._used: set = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def fail(self, key: str, message: str) -> UserError:
        return self.error(f"{self.source}: {key}: {message}")

    def has(self, name: str) -> bool:
        return name in self.data

    def take(self, name: str, kind: Any, default: Any = ..., minimum: Optional[float] = None,
             maximum: Optional[float] = None, choices: Optional[Sequence[Any]] = None) -> Any:
        self._used.add(name)
        if name not in self.data:
            if default is ...:
                raise self.fail(self.key(name), "missing")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is an int in Python; a TOML true is never a valid number here.
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            raise self.fail(self.key(name), f"must be {_type_name(kind)}, not {value!r}")
        # TOML allows nan and inf; every comparison with nan is False, so bounds miss it.
        if kind is float and not math.isfinite(value):
            raise self.fail(self.key(name), f"{value!r} is not a finite number")
        if minimum is not None and value < minimum:
            raise self.fail(self.key(name), f"{value!r} is below the minimum {minimum!r}")
        if maximum is not None and value > maximum:
            raise self.fail(self.key(name), f"{value!r} is above the maximum {maximum!r}")
        if choices is not None and value not in choices:
            listed = ", ".join(repr(c) if not isinstance(c, str) else c for c in choices)
            raise self.fail(self.key(name), f"{value!r} is not one of {listed}")
        return value

    def table(self, name: str, required: bool = True) -> Optional[Table]:
        self._used.add(name)
        if name not in self.data:
            if required:
                raise self.fail(self.key(name), "missing table")
            return None
        return Table(self.data[name], self.key(name), self.source, self.error)

    def tables(self, name: str, required: bool = True) -> List[Table]:
        """An array of tables ([[name]]), each with its index in error messages."""
        self._used.add(name)
        if name not in self.data:
            if required:
                raise self.fail(self.key(name), "missing")
            return []
        items = self.data[name]
        if not isinstance(items, list):
            raise self.fail(self.key(name), "must be an array of tables ([[" + name + "]])")
        return [Table(item, f"{self.key(name)}[{i}]", self.source, self.error)
                for i, item in enumerate(items)]

    def sub_tables(self) -> Dict[str, Table]:
        """Every key of this table as a sub-table (for [cv.1], [gate.2]...)."""
        result = {}
        for name in self.data:
            self._used.add(name)
            result[name] = Table(self.data[name], self.key(name), self.source, self.error)
        return result

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self._used]
        if unknown:
            raise self.fail(self.key(unknown[0]), "unknown key")

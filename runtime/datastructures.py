"""Werkzeug's data structures as scoring scripts use them (MultiDict, Headers, options headers), without Werkzeug.

Azure's inference server hands scripts Flask's objects; these behave the same for what a script reads and
writes, so a script written against Flask runs unchanged. The runtime is installed into every user
environment, so it carries no dependency for this.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

_MISSING = object()


class BadRequest(Exception):
    """The request does not parse as the script asked (werkzeug's 400)."""

    code = 400


class BadRequestKeyError(BadRequest, KeyError):
    """A missing key in request.args / form / files / headers (a KeyError, as in werkzeug)."""

    def __init__(self, key: Any) -> None:
        KeyError.__init__(self, key)

    def __str__(self) -> str:
        return f"400 Bad Request: {self.args[0]!r} is not in the request"


class UnsupportedMediaType(BadRequest):
    """get_json() on a body that is not declared as JSON (werkzeug's 415)."""

    code = 415


def _convert(value: Any, type: Callable[[Any], Any] | None) -> Any:  # noqa: A002
    return value if type is None else type(value)


class MultiDict(dict):  # type: ignore[type-arg]
    """werkzeug's MultiDict: `d[k]` is the first value, `d.getlist(k)` all of them, in order."""

    def __init__(self, mapping: Any = None) -> None:
        super().__init__()
        if mapping is None:
            return
        if isinstance(mapping, MultiDict):
            for key, values in mapping.lists():
                dict.__setitem__(self, key, list(values))
            return
        pairs: Iterable[tuple[Any, Any]] = mapping.items() if isinstance(mapping, Mapping) else mapping
        for key, value in pairs:
            if isinstance(mapping, Mapping) and isinstance(value, list | tuple):
                if value:
                    dict.setdefault(self, key, []).extend(value)
            else:
                dict.setdefault(self, key, []).append(value)

    def __getitem__(self, key: Any) -> Any:
        if dict.__contains__(self, key):
            values = dict.__getitem__(self, key)
            if values:
                return values[0]
        raise BadRequestKeyError(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, [value])

    def __iter__(self) -> Iterator[Any]:
        return iter(dict.keys(self))

    def add(self, key: Any, value: Any) -> None:
        """Add a value, keeping the earlier ones."""
        dict.setdefault(self, key, []).append(value)

    def get(self, key: Any, default: Any = None, type: Callable[[Any], Any] | None = None) -> Any:  # noqa: A002
        """The first value, converted by `type`; `default` when missing or when the conversion fails."""
        try:
            value = self[key]
        except KeyError:
            return default
        try:
            return _convert(value, type)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: Any, type: Callable[[Any], Any] | None = None) -> list[Any]:  # noqa: A002
        """Every value of `key` (converted by `type`, skipping those that do not convert)."""
        values = dict.get(self, key, [])
        if type is None:
            return list(values)
        out = []
        for value in values:
            try:
                out.append(type(value))
            except (ValueError, TypeError):
                pass
        return out

    def setlist(self, key: Any, values: Iterable[Any]) -> None:
        """Replace every value of `key`."""
        dict.__setitem__(self, key, list(values))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The first value of `key`, set to `default` first when missing."""
        if key not in self:
            self[key] = default
        return self[key]

    def setlistdefault(self, key: Any, default_list: Iterable[Any] | None = None) -> list[Any]:
        """The list of `key`'s values, set to `default_list` first when missing."""
        if key not in self:
            dict.__setitem__(self, key, list(default_list or ()))
        return dict.__getitem__(self, key)  # type: ignore[no-any-return]

    def items(self, multi: bool = False) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """(key, first value) pairs, or every pair with multi=True."""
        for key, values in dict.items(self):
            if multi:
                for value in values:
                    yield key, value
            elif values:
                yield key, values[0]

    def lists(self) -> Iterator[tuple[Any, list[Any]]]:
        """(key, every value) pairs."""
        for key, values in dict.items(self):
            yield key, list(values)

    def keys(self) -> Iterator[Any]:  # type: ignore[override]
        return iter(dict.keys(self))

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        """The first value of each key."""
        for values in dict.values(self):
            if values:
                yield values[0]

    def listvalues(self) -> Iterator[list[Any]]:
        """Every key's list of values."""
        return (list(values) for values in dict.values(self))

    def to_dict(self, flat: bool = True) -> dict[Any, Any]:
        """A plain dict: first values, or lists with flat=False."""
        return dict(self.items()) if flat else dict(self.lists())

    def update(self, mapping: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        """Add the values of another mapping (werkzeug's update extends, it does not replace)."""
        for key, value in MultiDict(mapping).items(multi=True):
            self.add(key, value)
        for key, value in kwargs.items():
            self.add(key, value)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove `key`; its first value."""
        if dict.__contains__(self, key):
            values = dict.pop(self, key)
            return values[0] if values else default
        if default is _MISSING:
            raise BadRequestKeyError(key)
        return default

    def poplist(self, key: Any) -> list[Any]:
        """Remove `key`; every value."""
        return list(dict.pop(self, key, []))

    def copy(self) -> MultiDict:
        """A mutable copy."""
        return MultiDict(self)

    def to_list(self) -> list[tuple[Any, Any]]:
        return list(self.items(multi=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return dict(self.lists()) == dict(other.lists())
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.items(multi=True))!r})"


class ImmutableMultiDict(MultiDict):
    """What request.args, form, files and cookies are: reading works, writing raises TypeError."""

    def _immutable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__!r} objects are immutable")

    __setitem__ = __delitem__ = add = setlist = setdefault = setlistdefault = _immutable  # type: ignore[assignment]
    update = pop = poplist = clear = popitem = _immutable  # type: ignore[assignment]

    def __init__(self, mapping: Any = None) -> None:
        super().__init__()
        for key, values in MultiDict(mapping).lists():
            dict.__setitem__(self, key, values)


class CombinedMultiDict(ImmutableMultiDict):
    """request.values: the query arguments, then the form fields."""

    def __init__(self, dicts: Iterable[MultiDict]) -> None:
        super().__init__()
        self.dicts = list(dicts)
        for part in self.dicts:
            for key, values in part.lists():
                dict.setdefault(self, key, []).extend(values)


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


class Headers:
    """werkzeug's Headers: ordered (name, value) pairs, repeatable, looked up without regard to case."""

    def __init__(self, defaults: Any = None) -> None:
        self._list: list[tuple[str, str]] = []
        if defaults is not None:
            self.extend(defaults)

    # -- reading

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._list[key]
        lower = key.lower()
        for name, value in self._list:
            if name.lower() == lower:
                return value
        raise BadRequestKeyError(key)

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        """The first value of the header (converted by `type`), or `default`."""
        try:
            value = self[key]
        except KeyError:
            return default
        try:
            return _convert(value, type)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str, type: Callable[[str], Any] | None = None) -> list[Any]:  # noqa: A002
        """Every value of the header, in order."""
        lower = key.lower()
        out = []
        for name, value in self._list:
            if name.lower() == lower:
                try:
                    out.append(_convert(value, type))
                except (ValueError, TypeError):
                    pass
        return out

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        lower = key.lower()
        return any(name.lower() == lower for name, _ in self._list)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._list))

    def __len__(self) -> int:
        return len(self._list)

    def __bool__(self) -> bool:
        return bool(self._list)

    def keys(self, lower: bool = False) -> Iterator[str]:
        for name, _ in self._list:
            yield name.lower() if lower else name

    def values(self) -> Iterator[str]:
        for _, value in self._list:
            yield value

    def items(self, lower: bool = False) -> Iterator[tuple[str, str]]:
        for name, value in self._list:
            yield (name.lower() if lower else name), value

    def to_wsgi_list(self) -> list[tuple[str, str]]:
        """The (name, value) list a WSGI server sends."""
        return list(self._list)

    def copy(self) -> Headers:
        return type(self)(self._list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return sorted((k.lower(), v) for k, v in self._list) == sorted((k.lower(), v) for k, v in other._list)

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "".join(f"{name}: {value}\r\n" for name, value in self._list) + "\r\n"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"

    # -- writing

    def add(self, key: str, value: Any, **params: Any) -> None:
        """Add a value, keeping earlier ones; keyword arguments become `; name=value` parameters."""
        self._list.append((key, _header_value(value, params)))

    def add_header(self, key: str, value: Any, **params: Any) -> None:
        self.add(key, value, **params)

    def set(self, key: str, value: Any, **params: Any) -> None:
        """Replace the header's values with this one, keeping its place."""
        text = _header_value(value, params)
        lower = key.lower()
        for index, (name, _) in enumerate(self._list):
            if name.lower() == lower:
                self._list[index] = (key, text)
                self._list[index + 1 :] = [(k, v) for k, v in self._list[index + 1 :] if k.lower() != lower]
                return
        self._list.append((key, text))

    def setlist(self, key: str, values: Iterable[Any]) -> None:
        """Replace the header's values with these."""
        self.remove(key)
        for value in values:
            self.add(key, value)

    def __setitem__(self, key: str | int, value: Any) -> None:
        if isinstance(key, int):
            self._list[key] = (value[0], str(value[1]))
        else:
            self.set(key, value)

    def setdefault(self, key: str, default: Any) -> str:
        """The header's value, set to `default` first when missing."""
        if key in self:
            return str(self[key])
        self.set(key, default)
        return str(default)

    def extend(self, *args: Any, **kwargs: Any) -> None:
        """Add every value of a mapping, a list of pairs or another Headers."""
        for source in (*args, kwargs):
            pairs = _pairs(source)
            for name, value in pairs:
                self.add(name, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Replace the headers named by a mapping or pairs (a list value sets several)."""
        for source in (*args, kwargs):
            seen: set[str] = set()
            for name, value in _pairs(source, keep_lists=True):
                values = value if isinstance(value, list | tuple) else [value]
                if name.lower() not in seen:
                    self.remove(name)
                    seen.add(name.lower())
                for item in values:
                    self.add(name, item)

    def remove(self, key: str) -> None:
        """Drop every value of the header."""
        lower = key.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != lower]

    def __delitem__(self, key: str | int) -> None:
        if isinstance(key, int):
            del self._list[key]
        else:
            self.remove(key)

    def pop(self, key: str | int | None = None, default: Any = _MISSING) -> Any:
        """Remove the header and return its first value (the last pair when no key is given)."""
        if key is None:
            return self._list.pop()
        if isinstance(key, int):
            return self._list.pop(key)
        try:
            value = self[key]
        except KeyError:
            if default is _MISSING:
                raise
            return default
        self.remove(key)
        return value

    def popitem(self) -> tuple[str, str]:
        return self._list.pop()

    def clear(self) -> None:
        self._list.clear()


def _pairs(source: Any, keep_lists: bool = False) -> Iterator[tuple[str, Any]]:
    if isinstance(source, Headers):
        yield from source.items()
    elif isinstance(source, MultiDict):
        yield from source.items(multi=True)
    elif isinstance(source, Mapping):
        for name, value in source.items():
            if isinstance(value, list | tuple) and not keep_lists:
                for item in value:
                    yield name, item
            else:
                yield name, value
    else:
        for name, value in source:
            yield name, value


class EnvironHeaders(Headers):
    """request.headers: the request's headers, names capitalised as werkzeug shows them; read-only."""

    def __init__(self, lower: Mapping[str, str]) -> None:
        # Names arrive lower-cased from the server, one entry per name (repeats joined with ", "): looked up
        # in that dict on the hot path, and capitalised only when a script lists them.
        self._lower = lower

    @property
    def _list(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(_title(name), value) for name, value in self._lower.items()]

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._list[key]
        try:
            return self._lower[key.lower()]
        except KeyError:
            raise BadRequestKeyError(key) from None

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:  # noqa: A002
        value = self._lower.get(key.lower(), _MISSING)
        if value is _MISSING:
            return default
        try:
            return _convert(value, type)
        except (ValueError, TypeError):
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def __len__(self) -> int:
        return len(self._lower)

    def __bool__(self) -> bool:
        return bool(self._lower)

    def _immutable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__!r} objects are immutable")

    add = add_header = set = setlist = setdefault = extend = update = remove = pop = popitem = clear = _immutable  # type: ignore[assignment]
    __setitem__ = __delitem__ = _immutable  # type: ignore[assignment]

    def to_dict(self) -> dict[str, str]:
        """A plain dict with capitalised names (what dict(request.headers) also gives)."""
        return dict(self._list)

    def copy(self) -> Headers:  # a mutable copy, as werkzeug gives
        return Headers(self._list)


def _header_value(value: Any, params: Mapping[str, Any]) -> str:
    text = str(value)
    for key, item in params.items():
        if item is None:
            continue
        name = key.replace("_", "-")
        if item is True:
            text += f"; {name}"
        else:
            text += f"; {name}={_quote(str(item))}"
    return text


_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")


def _quote(value: str) -> str:
    if _TOKEN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_options_header(value: str | None) -> tuple[str, dict[str, str]]:
    """`text/html; charset=utf-8` → ("text/html", {"charset": "utf-8"}), as werkzeug parses it."""
    if not value:
        return "", {}
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in _split_params(rest):
        name, sep, item = part.partition("=")
        name = name.strip().lower()
        if not name or not sep:
            continue
        item = item.strip()
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if name.endswith("*") and "''" in item:  # RFC 2231: charset''percent-encoded
            name, item = name[:-1], unquote(item.split("''", 1)[1])
        params[name] = item
    return main.strip(), params


def _split_params(text: str) -> Iterator[str]:
    # Split on `;` outside quotes.
    current, quoted, escaped = "", False, False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\" and quoted:
            current += char
            escaped = True
        elif char == '"':
            current += char
            quoted = not quoted
        elif char == ";" and not quoted:
            yield current
            current = ""
        else:
            current += char
    if current.strip():
        yield current


def dump_options_header(main: str, params: Mapping[str, Any]) -> str:
    """("text/html", {"charset": "utf-8"}) → `text/html; charset=utf-8`."""
    return _header_value(main, params)


# Text types get `; charset=utf-8` when a mimetype is set, as werkzeug's get_content_type decides.
_TEXT_TYPES = {
    "application/ecmascript",
    "application/javascript",
    "application/sql",
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
}


def content_type_for(mimetype: str, charset: str = "utf-8") -> str:
    """The Content-Type werkzeug writes for a mimetype: text types carry the charset."""
    if mimetype.startswith("text/") or mimetype in _TEXT_TYPES or mimetype.endswith("+xml"):
        if "charset" not in mimetype:
            return f"{mimetype}; charset={charset}"
    return mimetype


def is_json_mimetype(mimetype: str) -> bool:
    """application/json and application/*+json, as Flask decides."""
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

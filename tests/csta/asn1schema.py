"""A reader of the ECMA-285 ASN.1 modules, for the ECMA-323 conformance test.

Owns the parse of ``reference/ecma-285-asn1/`` (one module per file, ITU-T X.680 notation)
into the shapes that decide ECMA-323 XML: SEQUENCE / SET components (name, OPTIONAL,
DEFAULT), CHOICE alternatives, SEQUENCE OF / SET OF, ENUMERATED names, BIT STRING named bits,
tagged types (tags do not appear in XML, so they are dropped), references across modules
through IMPORTS ... FROM, and the ROS ``OPERATION ::= { ARGUMENT X RESULT Y ... }`` objects
(X.880) that give each service its argument and result types. Constraints (``SIZE``, value
ranges) are skipped: XML element names and nesting do not depend on them.

Why hand-written: asn1tools 0.169 (a maintained pure-Python ASN.1 compiler) was tried on these
modules and refuses 175 of the 268 files ("Expected '.'" at ``{ ARGUMENT``), because the
OPERATION class is imported from X.880's Remote-Operations-Information-Objects, which is not
part of ECMA-285, so the object syntax cannot be resolved. A small recursive-descent parser
over exactly the notation these modules use is shorter than patching that in, and it stays
independent of uacsta's codec (the point of the test that uses it). When written, its reading
of all 979 type assignments was compared with asn1tools' on the same modules with the
OPERATION/ERROR objects cut out: component names, OPTIONAL/DEFAULT, nesting, ENUMERATED names
and named bits were identical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

__all__ = [
    "ASN1_DIR",
    "AsnType",
    "Component",
    "Module",
    "Operation",
    "Resolved",
    "Schema",
    "SchemaError",
    "load_schema",
    "parse_module_text",
]

#: ``shared/`` sits beside the repository clone (in CI and in every work tree).
ASN1_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ecma-285-asn1"

Kind = Literal[
    "SEQUENCE",
    "SET",
    "CHOICE",
    "SEQUENCE OF",
    "SET OF",
    "ENUMERATED",
    "BIT STRING",
    "INTEGER",
    "BOOLEAN",
    "NULL",
    "REAL",
    "OCTET STRING",
    "STRING",  # every character string type (IA5String, VisibleString, ...)
    "TIME",  # GeneralizedTime, UTCTime
    "OBJECT IDENTIFIER",
    "REF",
]

_CHARACTER_STRINGS = frozenset(
    {
        "IA5String",
        "VisibleString",
        "PrintableString",
        "NumericString",
        "UTF8String",
        "GraphicString",
        "GeneralString",
        "TeletexString",
        "T61String",
        "BMPString",
        "UniversalString",
        "ISO646String",
    }
)
_TIMES = frozenset({"GeneralizedTime", "UTCTime"})


class SchemaError(Exception):
    """The modules could not be read, or a name does not resolve."""


@dataclass(frozen=True, slots=True)
class Component:
    """One SEQUENCE / SET component or CHOICE alternative."""

    name: str
    type: AsnType
    optional: bool = False
    default: str | None = None

    @property
    def required(self) -> bool:
        return not self.optional and self.default is None


@dataclass(frozen=True, slots=True)
class AsnType:
    """A type as written; ``module`` is where it is written (references resolve from there)."""

    kind: Kind
    module: str
    components: tuple[Component, ...] = ()  # SEQUENCE, SET, CHOICE
    element: AsnType | None = None  # SEQUENCE OF, SET OF
    names: tuple[str, ...] = ()  # ENUMERATED, BIT STRING, INTEGER named values
    ref: str | None = None  # REF: the type reference


@dataclass(frozen=True, slots=True)
class Resolved:
    """A type with its references followed; ``name`` is the last type name on the way."""

    type: AsnType
    name: str | None


@dataclass(frozen=True, slots=True)
class Operation:
    """A ROS OPERATION object: the service's argument and result types."""

    name: str
    module: str
    argument: AsnType | None
    result: AsnType | None


@dataclass(slots=True)
class Module:
    name: str
    path: Path
    types: dict[str, AsnType] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # symbol -> module name
    operations: dict[str, Operation] = field(default_factory=dict)
    errors: dict[str, AsnType] = field(default_factory=dict)  # ERROR objects' PARAMETER


# --- tokens ----------------------------------------------------------------------------------

# X.680 §12.6: a comment runs from "--" to the next "--" or to the end of the line.
_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t\n\f\v\xa0]+)
  | (?P<comment>--[^\n]*?(?:--|$))
  | (?P<assign>::=)
  | (?P<ellipsis>\.\.\.)
  | (?P<range>\.\.)
  | (?P<word>[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)
  | (?P<number>-?[0-9]+)
  | (?P<string>"[^"]*")
  | (?P<punct>[{}()\[\],;:|.<>@!^&])
    """,
    re.VERBOSE | re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    line: int


def _tokenize(text: str, path: Path) -> list[_Token]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    tokens: list[_Token] = []
    pos = 0
    line = 1
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise SchemaError(f"{path.name}:{line}: unexpected character {text[pos]!r}")
        kind = match.lastgroup
        chunk = match.group()
        if kind not in ("space", "comment"):
            tokens.append(_Token(chunk, line))
        line += chunk.count("\n")
        pos = match.end()
    return tokens


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over one module (X.680 §13 module definition, the subset used)."""

    def __init__(self, tokens: list[_Token], path: Path) -> None:
        self.tokens = tokens
        self.pos = 0
        self.path = path
        self.module = ""

    # token helpers

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.tokens[index].text if index < len(self.tokens) else ""

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise self.error("unexpected end of module")
        text = self.tokens[self.pos].text
        self.pos += 1
        return text

    def expect(self, text: str) -> None:
        got = self.take()
        if got != text:
            self.pos -= 1
            raise self.error(f"expected {text!r}, found {got!r}")

    def accept(self, text: str) -> bool:
        if self.peek() == text:
            self.pos += 1
            return True
        return False

    def error(self, message: str) -> SchemaError:
        line = self.tokens[min(self.pos, len(self.tokens) - 1)].line if self.tokens else 0
        return SchemaError(f"{self.path.name}:{line}: {message}")

    def skip_balanced(self, open_: str, close: str) -> None:
        """Skip ``open_ ... close`` with nesting (OIDs, constraints, values, tags)."""
        self.expect(open_)
        depth = 1
        while depth:
            token = self.take()
            if token == open_:
                depth += 1
            elif token == close:
                depth -= 1

    # module

    def parse_module(self) -> Module:
        self.module = self.take()
        module = Module(self.module, self.path)
        if self.peek() == "{":
            self.skip_balanced("{", "}")
        self.expect("DEFINITIONS")
        while self.peek() != "::=":  # tag default, extensibility
            self.take()
        self.expect("::=")
        self.expect("BEGIN")
        if self.accept("EXPORTS"):
            while self.take() != ";":
                pass
        if self.accept("IMPORTS"):
            self.parse_imports(module)
        while not self.accept("END"):
            self.parse_assignment(module)
        return module

    def parse_imports(self, module: Module) -> None:
        symbols: list[str] = []
        while True:
            token = self.take()
            if token == ";":
                if symbols:
                    raise self.error(f"imported symbols without FROM: {symbols}")
                return
            if token == ",":
                continue
            if token == "FROM":
                source = self.take()
                for symbol in symbols:
                    module.imports[symbol] = source
                symbols = []
                if self.peek() == "{":
                    self.skip_balanced("{", "}")
                continue
            symbols.append(token)

    def parse_assignment(self, module: Module) -> None:
        name = self.take()
        if name[0].isupper():
            if self.peek() == "{":  # parameterised type: not used in ECMA-285
                raise self.error(f"parameterised assignment {name} is not supported")
            self.expect("::=")
            if name in module.types:
                raise self.error(f"{name} assigned twice")
            module.types[name] = self.parse_type()
            return
        # A value or information object: ``name CLASS ::= value``.
        class_name = self.take()
        if class_name[0].isupper() and self.peek() == "::=":
            self.expect("::=")
            if class_name == "OPERATION":
                module.operations[name] = self.parse_operation(name)
                return
            if class_name == "ERROR":
                parameter = self.parse_object_fields().get("PARAMETER")
                if parameter is not None:
                    module.errors[name] = parameter
                return
        else:  # a value of a constructed type: ``name SEQUENCE {...} ::= value``
            self.pos -= 1
            self.parse_type()
            self.expect("::=")
        self.skip_value()

    def parse_operation(self, name: str) -> Operation:
        fields = self.parse_object_fields()
        return Operation(name, self.module, fields.get("ARGUMENT"), fields.get("RESULT"))

    def parse_object_fields(self) -> dict[str, AsnType]:
        """The type-valued fields of a ROS object in its defined syntax (X.880 §9)."""
        found: dict[str, AsnType] = {}
        self.expect("{")
        while not self.accept("}"):
            token = self.peek()
            if token in ("ARGUMENT", "RESULT", "PARAMETER"):
                self.take()
                found[token] = self.parse_type()
            elif token == "{":
                self.skip_balanced("{", "}")
            else:
                self.take()
        return found

    def skip_value(self) -> None:
        if self.peek() == "{":
            self.skip_balanced("{", "}")
        else:
            self.take()

    # types

    def parse_type(self) -> AsnType:
        while self.peek() == "[":  # tags never show in XML
            self.skip_balanced("[", "]")
            if self.peek() in ("IMPLICIT", "EXPLICIT"):
                self.take()
        token = self.take()
        kind: Kind
        asn: AsnType
        if token in ("SEQUENCE", "SET"):
            if self.peek() == "{":
                kind = "SEQUENCE" if token == "SEQUENCE" else "SET"
                asn = AsnType(kind, self.module, components=self.parse_components(True))
            else:
                self.skip_constraints(allow_size=True)
                self.expect("OF")
                if self.peek()[:1].islower() and self.peek(1)[:1].isupper():
                    self.take()  # ``SEQUENCE OF item Type``: the item name
                kind = "SEQUENCE OF" if token == "SEQUENCE" else "SET OF"
                asn = AsnType(kind, self.module, element=self.parse_type())
        elif token == "CHOICE":
            asn = AsnType("CHOICE", self.module, components=self.parse_components(False))
        elif token == "ENUMERATED":
            asn = AsnType("ENUMERATED", self.module, names=self.parse_named_values())
        elif token == "BIT":
            self.expect("STRING")
            names = self.parse_named_values() if self.peek() == "{" else ()
            asn = AsnType("BIT STRING", self.module, names=names)
        elif token == "INTEGER":
            names = self.parse_named_values() if self.peek() == "{" else ()
            asn = AsnType("INTEGER", self.module, names=names)
        elif token == "OCTET":
            self.expect("STRING")
            asn = AsnType("OCTET STRING", self.module)
        elif token == "OBJECT":
            self.expect("IDENTIFIER")
            asn = AsnType("OBJECT IDENTIFIER", self.module)
        elif token in ("BOOLEAN", "NULL", "REAL"):
            asn = AsnType(token, self.module)  # type: ignore[arg-type]
        elif token in _CHARACTER_STRINGS:
            asn = AsnType("STRING", self.module, ref=token)
        elif token in _TIMES:
            asn = AsnType("TIME", self.module, ref=token)
        elif token[:1].isupper():
            if self.peek() == ".":  # Module.Type
                self.take()
                token = self.take()
            asn = AsnType("REF", self.module, ref=token)
        else:
            self.pos -= 1
            raise self.error(f"expected a type, found {token!r}")
        self.skip_constraints(allow_size=False)
        return asn

    def skip_constraints(self, *, allow_size: bool) -> None:
        while True:
            if self.peek() == "(":
                self.skip_balanced("(", ")")
            elif allow_size and self.peek() == "SIZE":
                self.take()
                self.skip_balanced("(", ")")
            else:
                return

    def parse_components(self, with_markers: bool) -> tuple[Component, ...]:
        components: list[Component] = []
        self.expect("{")
        if self.accept("}"):
            return ()
        while True:
            if self.accept("..."):
                pass  # extension marker
            else:
                name = self.take()
                if not name[:1].islower():
                    self.pos -= 1
                    raise self.error(f"expected a component name, found {name!r}")
                asn = self.parse_type()
                optional = False
                default: str | None = None
                if with_markers:
                    if self.accept("OPTIONAL"):
                        optional = True
                    elif self.accept("DEFAULT"):
                        start = self.pos
                        self.skip_value()
                        default = " ".join(t.text for t in self.tokens[start : self.pos])
                components.append(Component(name, asn, optional, default))
            if self.accept("}"):
                break
            self.expect(",")
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise self.error(f"duplicate component names in {names}")
        return tuple(components)

    def parse_named_values(self) -> tuple[str, ...]:
        names: list[str] = []
        self.expect("{")
        while not self.accept("}"):
            token = self.take()
            if token in (",", "..."):
                continue
            if not token[:1].islower():
                self.pos -= 1
                raise self.error(f"expected a value name, found {token!r}")
            names.append(token)
            if self.peek() == "(":
                self.skip_balanced("(", ")")
        return tuple(names)


# --- the schema ------------------------------------------------------------------------------


class Schema:
    """Every module, with lookups that follow IMPORTS the way X.680 §13.16 does."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self._operations: dict[str, Operation] = {}
        self._defined_in: dict[str, list[str]] = {}
        for module in modules.values():
            for name, operation in module.operations.items():
                if name in self._operations:
                    raise SchemaError(f"operation {name} defined twice")
                self._operations[name] = operation
            for type_name in module.types:
                self._defined_in.setdefault(type_name, []).append(module.name)

    @property
    def operations(self) -> dict[str, Operation]:
        return dict(self._operations)

    def operation(self, name: str) -> Operation:
        try:
            return self._operations[name]
        except KeyError:
            raise SchemaError(f"no OPERATION named {name}") from None

    def error_parameter(self, name: str) -> AsnType:
        """The PARAMETER type of an ERROR object (``universalFailure``)."""
        for module in self.modules.values():
            if name in module.errors:
                return module.errors[name]
        raise SchemaError(f"no ERROR named {name}")

    def lookup(self, name: str, module: str) -> tuple[AsnType, str]:
        """The type ``name`` as seen from ``module``: its own assignment or an import."""
        seen: set[str] = set()
        current = module
        while current not in seen:
            seen.add(current)
            mod = self.modules.get(current)
            if mod is None:
                raise SchemaError(f"{name}: module {current} is not among the modules read")
            found = mod.types.get(name)
            if found is not None:
                return found, current
            source = mod.imports.get(name)
            if source is None:
                raise SchemaError(f"{name} is neither defined in nor imported by {current}")
            current = source
        raise SchemaError(f"{name}: import cycle through {sorted(seen)}")

    def type(self, name: str, module: str | None = None) -> AsnType:
        """A named type; without ``module`` the name must be defined in exactly one module."""
        if module is None:
            modules = self._defined_in.get(name, [])
            if len(modules) != 1:
                where = ", ".join(modules) or "no module"
                raise SchemaError(f"{name} is defined in {where}; name the module")
            module = modules[0]
        return self.lookup(name, module)[0]

    def resolve(self, asn: AsnType, name: str | None = None) -> Resolved:
        """Follow references until a structural type; keeps the names passed on the way."""
        chain: list[str] = [] if name is None else [name]
        for _ in range(64):
            if asn.kind != "REF":
                return Resolved(asn, chain[-1] if chain else None)
            assert asn.ref is not None
            chain.append(asn.ref)
            asn = self.lookup(asn.ref, asn.module)[0]
        raise SchemaError(f"reference loop: {' -> '.join(chain[:8])} ...")


def parse_module_text(text: str, path: Path) -> Module:
    return _Parser(_tokenize(text, path), path).parse_module()


@cache
def load_schema(directory: Path = ASN1_DIR) -> Schema:
    """Read every ``*.asn1`` module below ``directory`` (once per process)."""
    if not directory.is_dir():
        raise SchemaError(
            f"the ECMA-285 ASN.1 modules are missing: {directory} does not exist "
            "(CI and work trees have shared/ beside the repository clone)"
        )
    modules: dict[str, Module] = {}
    for path in sorted(directory.glob("*.asn1")):
        module = parse_module_text(path.read_text(encoding="utf-8"), path)
        if module.name in modules:
            raise SchemaError(f"module {module.name} in {path.name} and elsewhere")
        modules[module.name] = module
    if not modules:
        raise SchemaError(f"no *.asn1 modules in {directory}")
    return Schema(modules)

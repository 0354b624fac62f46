"""C/C++ identifier checks for the symbol names the generated sources declare.

The one list of C/C++ keywords and the one set of rules: the profile schema (`mcu.symbol`) asks
`symbol_problem` before anything is built, and the code generator asks `validate_symbol`, so a name
the generator would refuse never gets past the profile. Imports nothing heavy (no TensorFlow).
"""

from __future__ import annotations

import re

from edgebuild.errors import UsageError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# C23 and C++23 keywords plus the alternative operator spellings: none of them can name an array.
C_CPP_KEYWORDS = frozenset(
    """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class co_await co_return co_yield compl concept const const_cast
    consteval constexpr constinit continue decltype default delete do double dynamic_cast
    else enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires restrict return short signed sizeof static
    static_assert static_cast struct switch template this thread_local throw true try
    typedef typeid typename typeof typeof_unqual union unsigned using virtual void volatile
    wchar_t while xor xor_eq
    _Alignas _Alignof _Atomic _BitInt _Bool _Complex _Decimal128 _Decimal32 _Decimal64
    _Generic _Imaginary _Noreturn _Static_assert _Thread_local
    """.split()
)


def _bad_characters(symbol: str) -> str:
    bad = sorted({c for c in symbol if not (c.isascii() and (c.isalnum() or c == "_"))})
    return "it contains " + ", ".join(repr(c) for c in bad) if bad else "it starts with a digit"


def _is_reserved(symbol: str) -> bool:
    return symbol.startswith("__") or (symbol.startswith("_") and symbol[1:2].isupper())


def symbol_problem(symbol: object) -> str | None:
    """Why `symbol` cannot name a C/C++ array (a short phrase), or None when it can."""
    if not isinstance(symbol, str) or not symbol:
        return "empty; use a C identifier such as 'g_model'"
    if not _IDENTIFIER.match(symbol):
        return f"not a C identifier (letters, digits, _; no leading digit): {_bad_characters(symbol)}"
    if symbol in C_CPP_KEYWORDS:
        return f"a C/C++ keyword, which cannot name an array; pick another name, for example 'g_{symbol}_model'"
    if _is_reserved(symbol):
        return (
            "reserved for the compiler and standard library (it starts with '__' or '_' and an upper-case "
            "letter); pick a name such as 'g_model'"
        )
    return None


def validate_symbol(symbol: str, *, what: str = "C symbol name") -> str:
    """Return `symbol` if it can name a C/C++ array; UsageError saying why not otherwise."""
    if symbol_problem(symbol) is None:
        return symbol
    if not isinstance(symbol, str) or not symbol:
        raise UsageError(f"The {what} is empty. Pass a C identifier such as 'g_model'.")
    if not _IDENTIFIER.match(symbol):
        raise UsageError(
            f"The {what} {symbol!r} is not a valid C identifier: {_bad_characters(symbol)}. "
            "Use letters, digits and underscores, not starting with a digit (for example 'g_model')."
        )
    if symbol in C_CPP_KEYWORDS:
        raise UsageError(
            f"The {what} {symbol!r} is a C/C++ keyword. Pick another name, for example 'g_{symbol}_model'."
        )
    raise UsageError(
        f"The {what} {symbol!r} is reserved for the compiler and standard library "
        "(it starts with '__' or '_' and an upper-case letter). Pick a name such as 'g_model'."
    )

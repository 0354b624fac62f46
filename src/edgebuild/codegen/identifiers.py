"""C/C++ identifier checks for the symbol names the generated sources declare."""

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


def validate_symbol(symbol: str, *, what: str = "C symbol name") -> str:
    """Return `symbol` if it can name a C/C++ array; UsageError saying why not otherwise."""
    if not isinstance(symbol, str) or not symbol:
        raise UsageError(f"The {what} is empty. Pass a C identifier such as 'g_model'.")
    if not _IDENTIFIER.match(symbol):
        bad = sorted({c for c in symbol if not (c.isascii() and (c.isalnum() or c == "_"))})
        if bad:
            detail = "it contains " + ", ".join(repr(c) for c in bad)
        else:
            detail = "it starts with a digit"
        raise UsageError(
            f"The {what} {symbol!r} is not a valid C identifier: {detail}. "
            "Use letters, digits and underscores, not starting with a digit (for example 'g_model')."
        )
    if symbol in C_CPP_KEYWORDS:
        raise UsageError(
            f"The {what} {symbol!r} is a C/C++ keyword. Pick another name, for example 'g_{symbol}_model'."
        )
    if symbol.startswith("__") or (symbol.startswith("_") and symbol[1:2].isupper()):
        raise UsageError(
            f"The {what} {symbol!r} is reserved for the compiler and standard library "
            "(it starts with '__' or '_' and an upper-case letter). Pick a name such as 'g_model'."
        )
    return symbol

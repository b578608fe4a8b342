"""Bars against the peers: their side-by-side figure (scenario BP) when it was measured
in this run, the anchor otherwise."""

from __future__ import annotations

from typing import Any

from pgbatch.bench._model import Bar

LIB_KEYS = {"pgqueuer-asyncpg": "pgqueuer_asyncpg", "pgqueuer-psycopg": "pgqueuer_psycopg",
            "procrastinate": "procrastinate"}
LIB_NAMES = {"pgqueuer-asyncpg": "PGQueuer (asyncpg)", "pgqueuer-psycopg": "PGQueuer (psycopg)",
             "procrastinate": "Procrastinate"}


def figure_key(lib: str, what: str) -> str:
    """The key of peer ``lib``'s figure ``what`` (e.g. ``BP.pgqueuer_asyncpg.p1``)."""
    return f"BP.{LIB_KEYS[lib]}.{what}"


def measured(results: dict[str, Any], lib: str, what: str) -> float | None:
    """The median of peer ``lib``'s figure ``what`` in this run, or None."""
    res = results.get("BP")
    if res is None:
        return None
    key = figure_key(lib, what)
    for fig in res.figures:
        if fig.key == key:
            median: float | None = fig.median
            return median
    return None



def best_peer(results: dict[str, Any], what: str, higher: bool = True) -> str | None:
    """The peer library with the best median of figure ``what`` in this run, or None."""
    found = [(m, lib) for lib in LIB_KEYS if (m := measured(results, lib, what)) is not None]
    if not found:
        return None
    return (max(found) if higher else min(found))[1]


def peer_bar(results: dict[str, Any], what: str, op: str, factor: float, anchor: float,
             label: str, lib: str | None = None) -> Bar:
    """A bar against a peer's figure ``what``: ``factor`` x the side-by-side figure of
    ``lib`` (the best peer when None) when BP measured it, else ``factor`` x ``anchor``.
    The bar's text says which."""
    chosen = lib if lib is not None else best_peer(results, what, higher=op == ">=")
    times = "" if factor == 1 else f"{factor:g}x "
    if chosen is not None and measured(results, chosen, what) is not None:
        return Bar(op, f"{op.replace('>=', '≥').replace('<=', '≤')} {times}{LIB_NAMES[chosen]} "
                       f"{label} (side by side, {figure_key(chosen, what)})",
                   ref=figure_key(chosen, what), factor=factor)
    return Bar(op, f"{op.replace('>=', '≥').replace('<=', '≤')} {times}{label} anchor "
                   f"{anchor:,.0f} = {factor * anchor:,.0f} (anchor: not measured side by side)",
               value=factor * anchor)

"""The best (smallest) figure of several rounds, per way of doing a thing, and its table."""

from __future__ import annotations

Best = dict[str, dict[str, float]]


def keep_best(best: Best, name: str, figures: dict[str, float]) -> None:
    """Keep, for each of ``figures``, the smallest value ``name`` has had in any round."""
    kept = best.setdefault(name, {})
    for key, value in figures.items():
        kept[key] = min(kept.get(key, float("inf")), value)


def print_best(best: Best, title: str, name_width: int, column_width: int, digits: int) -> None:
    """One line of column names (headed by ``title``), then one line per way."""
    keys = list(next(iter(best.values())))
    print(f"{title:{name_width}}" + "".join(f"{key:>{column_width}}" for key in keys))
    for name, figures in best.items():
        print(
            f"{name:{name_width}}"
            + "".join(f"{figures[key]:{column_width}.{digits}f}" for key in keys)
        )

"""What the figures share: saving a figure as PDF and PNG atomically, the palettes and FT's grey."""

from __future__ import annotations

from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sbmoe.io.atomic import atomic_path

FT_COLOUR = "0.55"
PNG_DPI = 200


def save_figure(figure: Figure, pdf_path: str | Path, png_path: str | Path) -> None:
    """Save ``figure`` as PDF and PNG, each atomically."""
    FigureCanvasAgg(figure)
    for path, fmt in ((pdf_path, "pdf"), (png_path, "png")):
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=PNG_DPI, bbox_inches="tight")


def colours(count: int, name: str = "tab10") -> list:
    """``count`` colours of the palette ``name`` (tab20 past ten colours)."""
    palette = colormaps[name if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]

"""The handbook's shared figure theme and NHS identity colours.

Colours are from the NHS identity guidelines (colour palette). Topic modules
(``helpers.plots.funnel``, ``.spc``, ``.evaluation``, ``.value``) take a result
table and return a matplotlib ``Figure``; they compute nothing new.
"""

from __future__ import annotations

import seaborn as sns
from matplotlib.text import Text

#: NHS identity colours (https://www.england.nhs.uk/nhsidentity/identity-guidelines/colours/)
NHS: dict[str, str] = {
    "blue": "#005EB8",
    "dark_blue": "#003087",
    "bright_blue": "#0072CE",
    "light_blue": "#41B6E6",
    "aqua_blue": "#00A9CE",
    "dark_grey": "#425563",
    "mid_grey": "#768692",
    "pale_grey": "#E8EDEE",
    "dark_green": "#006747",
    "green": "#009639",
    "warm_yellow": "#FFB81C",
    "orange": "#ED8B00",
    "dark_red": "#8A1538",
    "pink": "#AE2573",
    "purple": "#330072",
    "black": "#231F20",
    "white": "#FFFFFF",
}

#: A colour-blind-safe order for categorical series (blue, orange, grey, aqua, purple).
PALETTE: list[str] = [
    NHS["blue"],
    NHS["orange"],
    NHS["dark_grey"],
    NHS["aqua_blue"],
    NHS["purple"],
    NHS["dark_green"],
]


def set_theme(font_scale: float = 1.0) -> None:
    """Apply the handbook's seaborn theme: white grid, NHS palette, readable text."""
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette=PALETTE,
        font_scale=font_scale,
        rc={
            "figure.figsize": (8, 5),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.titleweight": "bold",
            "axes.titlesize": 12,
            "axes.titlelocation": "left",
            "axes.edgecolor": NHS["mid_grey"],
            "grid.color": NHS["pale_grey"],
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "nhs-value-handbook",
        },
    )


#: The width of the book's text column in CSS pixels (sphinx-book-theme in a 1,280-pixel window);
#: a figure drawn wider is scaled down to it, and its text with it.
PAGE_WIDTH_PX = 700
#: The smallest text a figure may show at page width, in points (as displayed).
MIN_TEXT_PT = 9.0


def smallest_text_pt(fig, page_width_px: float = PAGE_WIDTH_PX) -> float:
    """The smallest visible text of ``fig``, in points as a reader sees it at the book's page width.

    The notebook shows a figure as a PNG at ``figure.dpi``, cropped to its
    tight bounding box; the page shows an image wider than ``page_width_px``
    scaled down to it. A CSS pixel is 0.75 pt.
    """
    renderer = fig.canvas.get_renderer()
    width_px = fig.get_tightbbox(renderer).width * fig.dpi
    scale = min(1.0, page_width_px / width_px)
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible()
        and t.get_text().strip()
        and (t.axes is None or t.axes.get_visible())
        and (t.get_window_extent(renderer).width > 0)
    ]
    return min(sizes) / 72 * fig.dpi * scale * 0.75

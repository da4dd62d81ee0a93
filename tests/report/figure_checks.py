"""Checks on drawn figures shared by the plot tests."""

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text


def texts_outside(fig) -> list[str]:
    """The texts of ``fig`` (titles, axis labels, legends, annotations) that do not lie wholly inside it once
    drawn, as ``'text' [x0, x1] x [y0, y1]`` in pixels; wrapped titles are measured as wrapped. Tick labels
    are left out: matplotlib keeps labels of ticks outside the view limits, undrawn."""
    canvas = FigureCanvasAgg(fig) if not isinstance(fig.canvas, FigureCanvasAgg) else fig.canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    outside = []
    for text in _texts(fig):
        if not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5:
            outside.append(
                f"{text.get_text()!r} [{box.x0:.0f}, {box.x1:.0f}] x [{box.y0:.0f}, {box.y1:.0f}] "
                f"in {width:.0f} x {height:.0f}"
            )
    return outside


def _texts(fig) -> list[Text]:
    texts = [fig._suptitle, *fig.texts, *(t for legend in fig.legends for t in legend.get_texts())]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    return [t for t in texts if t is not None]

"""Altair charts of a study: fronts with error bars (also the scatter matrix's cells),
parallel coordinates, ``x`` by family, a learned trial's learning curve, convergence and
overlaid fronts.

Each chart's data is worked out apart from its drawing where there is more than a frame to
draw (:func:`front_data` then :func:`front_chart`, :func:`parallel_data` then
:func:`parallel_chart`; :func:`front_scatter` and :func:`parallel_coordinates` do both).
Every chart that can select a trial carries one point selection named ``SELECTION`` on the
field ``key``; the pages turn a click into the trial selected everywhere.
"""

from app.charts._compare import convergence_chart, overlay_fronts
from app.charts._front import FrontData, front_chart, front_data, front_scatter, matrix_cells
from app.charts._learning import learning_curve_chart, learning_curve_data
from app.charts._parallel import (
    ParallelData,
    parallel_chart,
    parallel_coordinates,
    parallel_data,
)
from app.charts._style import (
    KNEE_COLOUR,
    LEGEND,
    PADDING,
    SELECTED_COLOUR,
    SELECTION,
    padded_domain,
    sense_title,
)
from app.charts._x import x_chart

__all__ = [
    "KNEE_COLOUR",
    "LEGEND",
    "PADDING",
    "SELECTED_COLOUR",
    "SELECTION",
    "FrontData",
    "ParallelData",
    "convergence_chart",
    "front_chart",
    "front_data",
    "front_scatter",
    "learning_curve_chart",
    "learning_curve_data",
    "matrix_cells",
    "overlay_fronts",
    "padded_domain",
    "parallel_chart",
    "parallel_coordinates",
    "parallel_data",
    "sense_title",
    "x_chart",
]

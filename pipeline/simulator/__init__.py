"""Seeded subscriber simulator (see :mod:`pipeline.simulator.core`)."""

from pipeline.simulator.core import DayResult, SimConfig, Simulator
from pipeline.simulator.encode import TYPE_NAMES
from pipeline.simulator.scenarios import SCENARIOS

__all__ = ["SCENARIOS", "TYPE_NAMES", "DayResult", "SimConfig", "Simulator"]

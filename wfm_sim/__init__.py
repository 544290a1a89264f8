"""wfm_sim: the factory that turns simulator footage into trained world models.

Subpackages follow the data flow: ``sources`` (simulator recorders), ``data`` (footage and
training windows), ``training`` (world-model training loops), ``evaluation`` (metrics).
"""

from wfm_sim._headless import configure_headless_rendering

configure_headless_rendering()

__version__ = "0.1.0"

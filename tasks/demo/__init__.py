"""Tools for the demo and the tests, not stages of the engine: the synthetic shop generator (``synth``)
and the local AWS (a moto server on loopback). No stage imports it.
"""

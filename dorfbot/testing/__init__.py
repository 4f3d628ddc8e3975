"""Helpers for running dorfbot against a real, throwaway Matrix homeserver.

Used by the integration tests, the benchmarks and the ``dorfbot demo`` command.
"""

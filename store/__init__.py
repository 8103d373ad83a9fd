"""The data layer: every FiftyOne read and write of the plugin.

Imports only ``methods`` (arrays) and FiftyOne; no operators, no execution
context. The operators above it (``operators/``) call these functions; the
detector registry (:mod:`store.registry`) says what each detector writes and
how to read it. See docs/architecture.md.
"""

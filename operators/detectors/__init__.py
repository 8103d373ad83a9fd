"""The detector operators: one class per detector, its facts from
:mod:`store.registry`, its arrays from ``methods/``, its reads and writes
through ``store/`` (:class:`operators.base.DetectorOperator` does the
writing, locking, run record and SDK call)."""

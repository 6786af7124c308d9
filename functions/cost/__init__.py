"""Time and cost before upload: the dated price and throughput tables and the estimates built on them.

- ``prices.json``: unit prices with their date, region, currency and the source page of each price.
- ``throughput.json``: images/s of one detector replica per model and hardware, each with its basis.
- ``tables.py``: loads both into the domain's types (``functions.domain.capacity``).
- ``estimate.py``: ``estimate_batch`` and ``estimate_park``, what `trapalert plan` and `batch submit` print.
"""

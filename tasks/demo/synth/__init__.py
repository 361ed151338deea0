"""Demo shop generator: a believable pet-and-home online shop, built from a seed.

``generate_shop`` returns the tables of the input data contract
(``tasks.data.contract.SPECS``), the optional ``point_movements`` included, as
pandas frames; ``write_shop`` writes them as CSV or Parquet, one file per
table.  Same arguments, same bytes: every random number comes
from ``numpy.random.default_rng`` streams derived from the seed, and nothing reads
the wall clock.

The shop, in short:

* Catalog: cat and dog food and toys plus eight general categories, lognormal prices
  per category, a launch catalogue on the first day and new arrivals later.  Some
  products sell out and come back; a few are discontinued.
* Customers: ru / pl / en locales with native names, the phone formats people type,
  emails on reserved example domains only, a little dirt (bad emails and phones).
* Purchases follow BG/NBD: each buyer has a Gamma-distributed purchase rate and a
  Beta-distributed chance to drop out after each repeat purchase.  They run on a
  demand clock that is faster on busy weekdays, in November-December and before
  23 February and 8 March.  Pet owners buy from their pet's categories and some
  re-buy their usual food at a regular interval.
* Fulfilment: processing, paid, handed to carrier, shipped, delivered against a
  promised date (about 8% late), with cancellations and returns.
* Behaviour: views, carts and wishlists around purchases and in plain browsing
  sessions; reviews some days after delivery, worse after late ones and returns.
* Loyalty points (at the default 1 point per unit): about a third of repeat
  orders spend part of the previous order's points, an undone order gives them
  back, and some late deliveries earn a goodwill credit, so the demo's
  statements show balances net of spending.

Internally a time is int64 seconds since 00:00 UTC of the first day, and customers,
products and orders are int64 row positions in their final, time-sorted tables.
The generator is vectorised: Python loops run over categories, locales, zones,
days and purchase rounds, never over customers or orders.
"""

from __future__ import annotations

from tasks.demo.synth.common import DEFAULT_END, EXTRA_COLUMNS
from tasks.demo.synth.frames import generate_shop
from tasks.demo.synth.writing import write_shop

__all__ = ["DEFAULT_END", "EXTRA_COLUMNS", "generate_shop", "write_shop"]

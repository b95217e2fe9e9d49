"""The library's entry points: ``archlab.Model`` (one model, traced once, every analysis) and the
functions that take a model by name, spec or ``nn.Module`` (``archlab.count``, ``archlab.memory``,
``archlab.analyze`` ...). Each makes one ``Model`` and, where a measurement is asked for
(``--measure``, ``--latency``, ``--engine real|fvcore``), joins the meta analysis with the real
run of ``archlab.measure``. The CLI calls these; nothing below imports them."""

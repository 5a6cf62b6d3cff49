"""Evidence: shadow records and late fraud labels turned into a promotion decision.

Pure logic is kept apart from I/O, so the statistics are tested without a broker:

* :mod:`retrain.evidence.comparison` -- a challenger against production on the same
  transactions (pure: iterables of decoded records in, a :class:`ShadowComparison` out);
* :mod:`retrain.evidence.topics` -- Kafka I/O: read the scores and labels topics whole, send labels;
* :mod:`retrain.evidence.labels` -- label files (JSON Lines or CSV), checked line by line;
* :mod:`retrain.evidence.cli` -- ``shadowline analyze`` and ``shadowline labels send``;
* the topic archive (docs/archive.md): :mod:`~retrain.evidence.layout` (the Parquet layout),
  :mod:`~retrain.evidence.archiver` (``shadowline archive``), :mod:`~retrain.evidence.archive_read`
  (:class:`Paired` from the archive with DuckDB), :mod:`~retrain.evidence.replay`
  (``shadowline replay``: archived traffic through a candidate), and their commands in
  :mod:`~retrain.evidence.archive_cli`.
"""

"""Everything with state or I/O: settings, database, blob stores, mirror sources, use cases."""

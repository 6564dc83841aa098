"""Pure planning: from resolved config to inventories, variables and batches. No I/O here."""

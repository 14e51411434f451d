"""What both receivers do with a request: enrich (sidecar), deduplicate, hand on, forward."""

"""Domain packs: one package per domain (credit, web, host, flow, ...), each with its event schema,
parsers, default policy or rules, detectors and simulator."""

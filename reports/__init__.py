"""The report: model, JSON schema, renderers, atomic writing and signatures."""

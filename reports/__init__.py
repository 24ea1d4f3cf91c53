"""Customer- and finance-facing documents rendered from the lake with jinja2."""

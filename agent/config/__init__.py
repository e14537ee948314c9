"""Policy and inventory files: parsed at the edge into validated objects."""

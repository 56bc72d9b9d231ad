"""HTTP blueprints, one per resource; the app factory registers them."""

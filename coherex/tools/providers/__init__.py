"""The built-in tool providers, one module each; registry.py lists them."""

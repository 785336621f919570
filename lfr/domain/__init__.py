"""The pure domain core: values, rules and ports. Imports nothing but the standard library and numpy."""

"""Small adapters the project's tests load by name, by module:attr and by file path."""

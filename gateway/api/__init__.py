"""HTTP routes: thin, parse -> pipeline -> schema."""

"""What the plugin and the core say to each other: one typed, versioned document per request
and result (`document.py` has the rules), and errors as JSON (`error.py`)."""

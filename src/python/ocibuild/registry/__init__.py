"""Registry client: transport with auth challenges, and push of an OCI layout."""

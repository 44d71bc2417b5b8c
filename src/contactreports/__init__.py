"""contactreports: what exactly happened with one contact, computed as a background job."""

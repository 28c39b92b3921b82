"""The console: the institution's web program and the one public admin API (`/v1/`)."""

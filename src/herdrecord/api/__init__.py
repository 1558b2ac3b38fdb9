"""The HTTP service's JSON API (FastAPI routes, models, errors, the writer); the app that
serves it together with the pages is made by `herdrecord.server.create_app`."""

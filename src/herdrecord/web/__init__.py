"""The web pages for vets and analysts, served by the HTTP service (`pages.install_pages`)."""

"""The web pages for vets and analysts, served by the HTTP service (`install_pages`)."""

from herdrecord.web.pages import install_pages

__all__ = ["install_pages"]

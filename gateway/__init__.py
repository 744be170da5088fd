"""Audience-split API gateway for the tax-lien scraping platform."""

__version__ = "0.1.0"

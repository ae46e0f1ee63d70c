"""Advertisers, scrapes, vehicles and their images, the review page, manual fixes and their history."""

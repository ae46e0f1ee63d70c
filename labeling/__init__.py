"""Crowd labeling: campaigns, items, leases, votes, consensus, gold, adjudication, the phone UI."""
